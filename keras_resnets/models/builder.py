"""`build_resnet`: one builder from an `Architecture` to a functional `keras.Model`."""

import weakref

import keras

from keras_resnets.design.architecture import coerce_architecture
from keras_resnets.layers import (
    BottleneckBlock,
    DenseResBlock,
    HighwayConv2D,
    HighwayDense,
    PreActBottleneckBlock,
    PreActResBlock,
    ResBlock,
)
from keras_resnets.layers.activations import make_activation
from keras_resnets.layers.common import batch_norm, channel_axis, conv_layers, resolve_data_format
from keras_resnets.layers.initializers import LooksLinear
from keras_resnets.runtime.precision import dtype_policy_scope

_BLOCK_CLASSES = {
    ("basic", False): ResBlock,
    ("basic", True): PreActResBlock,
    ("bottleneck", False): BottleneckBlock,
    ("bottleneck", True): PreActBottleneckBlock,
    ("dense", False): DenseResBlock,
}
_PLANS = weakref.WeakKeyDictionary()  # a Keras model has no field for it; see `plan_of`


def build_resnet(architecture=None, /, **fields):
    """Builds the `keras.Model` an architecture describes, from its `Architecture.plan`.

    Args:
        architecture: an `Architecture`, a dict of its fields or its JSON; ``None`` builds
            from ``fields`` alone.
        **fields: `Architecture` fields, overriding those of ``architecture``.

    Returns:
        A functional `keras.Model` whose blocks are named ``stage{s}_block{b}``, computing in
        the architecture's ``dtype_policy`` (by default bfloat16 on CPUs with AMX or AVX-512 BF16, else
        float32: `keras_resnets.runtime.precision`).

    Raises:
        ValueError: a field is wrong; the message names it, its value and what is allowed.

    Example:
    >>> from keras_resnets import count_params, presets
    >>> model = build_resnet(presets.mnist_resnet())
    >>> count_params(model)["trainable"]
    117802
    >>> build_resnet(presets.mnist_resnet(), residual=False).count_params() == model.count_params()
    True
    """
    arch = coerce_architecture(architecture, **fields)
    with dtype_policy_scope(arch.dtype_policy):
        model = _build(arch, arch.plan())
    _PLANS[model] = arch.plan()
    return model


def plan_of(model):
    """The `Architecture.plan` that `build_resnet` built ``model`` from in this process, or
    None (a model loaded from a file, cloned or made otherwise).

    Example:
    >>> from keras_resnets import presets
    >>> plan_of(build_resnet(presets.mnist_resnet())).macs()
    90329504
    >>> plan_of(keras.Sequential()) is None
    True
    """
    return _PLANS.get(model)


def _build(arch, plan):
    """The layers of ``plan`` as a functional model, in the current dtype policy."""
    data_format = resolve_data_format(arch.data_format)
    shape = arch.input_shape
    if len(shape) == 3 and data_format == "channels_first":
        shape = (shape[2], shape[0], shape[1])
    axis = channel_axis(len(shape) + 1, data_format)
    inputs = keras.Input(shape, name="input")
    x = inputs
    for layer in _stem(arch, plan.stem, axis, data_format):
        x = layer(x)
    for spec in plan.blocks:
        x = _block(arch, spec, data_format)(x)
    if plan.head.post_norm:
        if arch.batch_norm:
            x = batch_norm(axis, arch.bn_momentum, arch.bn_epsilon, "post_bn")(x)
        x = make_activation(arch.activation, axis, name="post_act")(x)
    for layer in _head(arch, data_format):
        x = layer(x)
    return keras.Model(inputs, x, name=arch.name)


def _stem(arch, spec, axis, data_format):
    if spec is None:
        return []
    stem = arch.stem
    if stem.kind == "dense":
        return _stem_tail(arch, axis, data_format, [
            keras.layers.Dense(stem.filters, use_bias=stem.use_bias, name="stem_dense")])
    if stem.kind == "conv":
        (filters, kernel_size, strides), = spec.convs
        return _stem_tail(arch, axis, data_format, conv_layers(
            filters, kernel_size, strides, use_bias=stem.use_bias,
            kernel_initializer="he_normal", data_format=data_format, name="stem_conv"))
    layers = []  # the deep stem: conv-BN-act twice, then a conv and the stem's own tail
    for i, (filters, kernel_size, strides) in enumerate(spec.convs, start=1):
        layers += conv_layers(filters, kernel_size, strides, use_bias=stem.use_bias,
                              kernel_initializer="he_normal", data_format=data_format,
                              name=f"stem_conv{i}")
        if i < len(spec.convs):
            if stem.batch_norm:
                layers.append(batch_norm(axis, arch.bn_momentum, arch.bn_epsilon, f"stem_bn{i}"))
            layers.append(make_activation(arch.activation, axis, name=f"stem_act{i}"))
    return _stem_tail(arch, axis, data_format, layers)


def _stem_tail(arch, axis, data_format, layers):
    """``layers``, then the stem's batch norm, activation and max pooling."""
    stem = arch.stem
    if stem.batch_norm:
        layers.append(batch_norm(axis, arch.bn_momentum, arch.bn_epsilon, "stem_bn"))
    if stem.activation:
        layers.append(make_activation(arch.activation, axis, name="stem_act"))
    if stem.pool:
        layers += [
            keras.layers.ZeroPadding2D(1, data_format=data_format, name="stem_pool_pad"),
            keras.layers.MaxPooling2D(3, strides=2, data_format=data_format, name="stem_pool"),
        ]
    return layers


def _block(arch, spec, data_format):
    """The layer of one `BlockSpec`."""
    if spec.kind == "highway":
        vectors = len(arch.input_shape) == 1
        cls = HighwayDense if vectors else HighwayConv2D
        extra = {} if vectors else {"kernel_size": spec.kernel_size}
        return cls(
            activation=arch.activation, transform_gate_bias=arch.transform_gate_bias,
            residual=arch.residual, use_bias=arch.use_bias, batch_norm=arch.batch_norm,
            bn_momentum=arch.bn_momentum, bn_epsilon=arch.bn_epsilon,
            data_format=data_format, name=spec.name, **extra,
        )
    extra = {}
    if spec.preactivate is not None:
        extra["preactivate"] = spec.preactivate
    if spec.kind != "dense":
        extra.update(kernel_size=spec.kernel_size, strides=spec.strides)
    if spec.kind == "bottleneck":
        extra.update(groups=arch.groups, width_per_group=arch.width_per_group)
    return _BLOCK_CLASSES[(spec.kind, arch.preactivation)](
        spec.channels,
        shortcut=arch.shortcut,
        residual=arch.residual,
        survival_probability=spec.survival_probability,
        drop_mode=arch.drop_mode,
        activation=arch.activation,
        use_bias=arch.use_bias,
        batch_norm=arch.batch_norm,
        bn_momentum=arch.bn_momentum,
        bn_epsilon=arch.bn_epsilon,
        zero_init_last_bn=arch.zero_init_last_bn,
        kernel_initializer=LooksLinear() if arch.looks_linear else "he_normal",
        data_format=data_format,
        seed=None if arch.seed is None else arch.seed + spec.number,
        dropout=spec.dropout,
        avg_down=arch.avg_down,
        shortcut_batch_norm=arch.shortcut_batch_norm,
        name=spec.name,
        **extra,
    )


def _head(arch, data_format):
    layers = []
    if arch.pooling == "avg":
        layers.append(keras.layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool"))
    elif arch.pooling == "max":
        layers.append(keras.layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool"))
    elif arch.pooling == "flatten":
        layers.append(keras.layers.Flatten(data_format=data_format, name="flatten"))
    if arch.pool_activation and arch.pooling is not None:
        layers.append(make_activation(arch.activation, -1, name="pool_act"))
    if arch.include_top:
        layers.append(
            keras.layers.Dense(
                arch.classes,
                activation=arch.classifier_activation,
                kernel_initializer=LooksLinear() if arch.looks_linear else "glorot_uniform",
                # Logits and probabilities in the weights' precision, float32 under a mixed policy.
                dtype=keras.config.dtype_policy().variable_dtype,
                name="classifier",
            )
        )
    return layers
