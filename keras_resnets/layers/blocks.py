"""Residual blocks: the lecture's `ResBlock`, bottlenecks, their pre-activation versions and
a fully-connected block, each with a plain twin (``residual=False``).

All blocks compute ``y = post(shortcut(x) + drop(F(x)))``. The residual function ``F`` is a
chain of linear maps ``W_i`` (convolutions, or `Dense` for vectors), each with a batch norm and
an activation ``σ``: ``F(x) = BN(W_2 σ(BN(W_1 x)))`` after He et al. (2015), whose blocks end
with ``post = σ``; ``F(x) = W_2 σ(BN(W_1 σ(BN(x))))`` after He et al. (2016), whose
pre-activation blocks have no ``post`` and feed their projection shortcut ``σ(BN(x))`` too.
``drop`` is optional stochastic depth (Huang et al. 2016). Which layers a block holds is its
`keras_resnets.design.anatomy.Anatomy`, named there as here (``self.conv1``, ``self.bn1``, ...);
each kind writes its ``residual_function`` out in the anatomy's order (tests/test_block_spec.py
checks the two agree). Sub-layers are called through `_ResidualBlock._apply` (PyTorch's fast
path, see `keras_resnets.layers.fast`).
"""

import keras

from keras_resnets.design.anatomy import EXPANSION, block_anatomy, needs_shortcut_layer
from keras_resnets.design.choices import DROP_MODES
from keras_resnets.design.plan import conv_output_size
from keras_resnets.design.validation import check_choice, check_int, check_number, check_probability
from keras_resnets.layers.activations import check_activation, make_activation
from keras_resnets.layers.common import (
    batch_norm,
    builds_in_its_dtype_policy,
    channel_axis,
    check_odd_kernel,
    conv_layers,
    resolve_data_format,
)
from keras_resnets.layers.fast import call_sublayer
from keras_resnets.layers.shortcut import Shortcut
from keras_resnets.layers.stochastic_depth import StochasticDepth


_UNIT_KEYS = {"conv": "linear", "norm": "bn", "act": "act"}
"""The keys of a linear map's layers in `_ResidualBlock.units`."""


class _ResidualBlock(keras.layers.Layer):
    """Shared machinery; subclasses name their ``kind`` of block (`block_anatomy`)."""

    preactivation = False

    def __init__(
        self,
        nb_channels,
        kernel_size=3,
        strides=1,
        *,
        shortcut="B",
        residual=True,
        survival_probability=1.0,
        drop_mode="batch",
        activation="relu",
        use_bias=False,
        batch_norm=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        zero_init_last_bn=False,
        kernel_initializer="he_normal",
        data_format=None,
        seed=None,
        dropout=0.0,
        avg_down=False,
        shortcut_batch_norm=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        survival_probability = self._check_arguments(
            nb_channels, kernel_size, strides, shortcut, residual, survival_probability, drop_mode,
            activation, dropout,
        )
        self.nb_channels = nb_channels
        self.kernel_size = kernel_size
        self.strides = strides
        self.shortcut = shortcut
        self.residual = residual
        self.survival_probability = float(survival_probability)
        self.drop_mode = drop_mode
        self.activation = activation
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.zero_init_last_bn = zero_init_last_bn
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = resolve_data_format(data_format)
        self.seed = seed
        self.dropout = float(dropout)
        self.avg_down = bool(avg_down)
        self.shortcut_batch_norm = bool(shortcut_batch_norm)
        self.dropout_layer = (
            keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy, name="dropout")
            if dropout > 0
            else None
        )
        self.drop = (
            StochasticDepth(survival_probability, drop_mode, seed=seed, dtype=self.dtype_policy,
                            name="stochastic_depth")
            if survival_probability < 1.0
            else None
        )

    def _check_arguments(self, nb_channels, kernel_size, strides, shortcut, residual,
                         survival_probability, drop_mode, activation, dropout):
        """Raises a `ValueError` for the first bad argument; returns ``survival_probability``
        as a float."""
        check_int("nb_channels", nb_channels)
        check_odd_kernel(kernel_size)
        check_int("strides", strides)
        check_activation(activation)
        needs_shortcut_layer(shortcut, 0, 0, 1)  # validates the option
        check_choice("drop_mode", drop_mode, DROP_MODES)
        survival_probability = check_probability("survival_probability", survival_probability)
        check_number("dropout", dropout, 0, 1, high_open=True)
        if survival_probability < 1.0 and not residual:
            raise ValueError(
                "stochastic depth (survival_probability < 1) needs residual=True: dropping the "
                "branch of a plain block would cut the network."
            )
        if activation == "crelu" and residual and not self.preactivation:
            raise ValueError(
                "activation='crelu' doubles the width after the sum, so the next shortcut would "
                "not line up: use it with residual=False."
            )
        return survival_probability

    # -- the layers ----------------------------------------------------------------------
    def _anatomy(self, in_channels):
        """The block's `keras_resnets.design.anatomy.Anatomy` on inputs ``in_channels`` wide."""
        return block_anatomy(self.kind, in_channels, self.nb_channels, self.kernel_size,
                             self.strides, **self._anatomy_arguments())

    def _anatomy_arguments(self):
        return {"preactivation": self.preactivation, "activation": self.activation,
                "batch_norm": self.batch_norm, "use_bias": self.use_bias, "dropout": self.dropout,
                "shortcut": self.shortcut, "shortcut_batch_norm": self.shortcut_batch_norm,
                "avg_down": self.avg_down, "residual": self.residual}

    def _linear(self, layer):
        """The layers of a convolution of the anatomy (padded as in the paper)."""
        return conv_layers(
            layer.filters, layer.kernel_size, layer.strides, use_bias=layer.use_bias,
            groups=layer.groups, kernel_initializer=self._fresh_initializer(),
            data_format=self.data_format, name=layer.name,
        )

    def _fresh_initializer(self):
        """A copy of ``kernel_initializer`` for one layer.

        An unseeded Keras initialiser draws its seed once, at construction: one instance shared
        by two layers of the same shape would give them identical weights.
        """
        init = self.kernel_initializer
        return type(init).from_config(init.get_config())

    def _make(self, layer, zero_scale=False):
        """The Keras layers of one `keras_resnets.design.anatomy.Layer`."""
        if layer.kind == "conv":
            return self._linear(layer)
        if layer.kind == "norm":
            return [batch_norm(self._axis, self.bn_momentum, self.bn_epsilon, layer.name, zero_scale)]
        if layer.kind == "act":
            return [make_activation(layer.activation, self._axis, name=layer.name)]
        return [self.dropout_layer]

    @builds_in_its_dtype_policy
    def build(self, input_shape):
        self._axis = channel_axis(len(input_shape), self.data_format)
        self.anatomy = anatomy = self._anatomy(input_shape[self._axis])
        norms = [layer for layer in anatomy.branch if layer.kind == "norm"]
        zero = norms[-1] if norms and self.zero_init_last_bn else None
        made = {layer.name: self._make(layer, zero_scale=layer == zero) for layer in anatomy.branch}
        self._name_sublayers(anatomy, made)
        self.shortcut_layer = None
        if anatomy.shortcut:
            self.shortcut_layer = Shortcut(
                self.shortcut, anatomy.shortcut[-1].filters, anatomy.strides,
                batch_norm=self.batch_norm and self.shortcut_batch_norm,
                bn_momentum=self.bn_momentum, bn_epsilon=self.bn_epsilon,
                kernel_initializer=self._fresh_initializer(), data_format=self.data_format,
                avg_down=self.avg_down, name="shortcut",
            )
        self.post_activation = self._make(anatomy.post[0])[0] if anatomy.post else None
        self._build_sublayers(tuple(input_shape), [made[layer.name] for layer in anatomy.branch])
        self.built = True

    def _name_sublayers(self, anatomy, made):
        """The branch's layers as attributes named as in the anatomy (``conv1``, ``bn1``,
        ``act1``, ...; ``conv1_pad`` pads a strided ``conv1``); ``None`` for those this block
        leaves out, which `_apply` passes over."""
        for i in range(1, len(anatomy.convs) + 1):
            for name in (f"conv{i}_pad", f"conv{i}", f"bn{i}", f"act{i}"):
                setattr(self, name, None)
        for layer in anatomy.branch:
            if layer.kind == "conv":
                *pad, conv = made[layer.name]
                setattr(self, layer.name, conv)
                setattr(self, f"{layer.name}_pad", pad[0] if pad else None)
            elif layer.kind != "dropout":  # `dropout` is the rate: the layer is `dropout_layer`
                setattr(self, layer.name, made[layer.name][0])

    @property
    def units(self):
        """The branch's layers as earlier versions held them, ``[{"linear": [...], "bn": ...,
        "act": ...}, ...]``: the path of their variables in those versions' weight files.

        Keras' loader looks for each sub-layer first under its attribute (``conv1``, ...);
        in an earlier file it finds none there, and loads it from here instead. A property:
        Keras tracks no layer twice, and saves each under its attribute.
        """
        units = {}
        for layer in self.anatomy.branch:
            if layer.kind in _UNIT_KEYS:
                sub = getattr(self, layer.name)
                if layer.kind == "conv":
                    pad = getattr(self, f"{layer.name}_pad")
                    sub = [pad, sub] if pad is not None else [sub]
                units.setdefault(layer.name[-1], {})[_UNIT_KEYS[layer.kind]] = sub
        return list(units.values())

    def _build_sublayers(self, input_shape, branch):
        """Builds every sub-layer on the shape it sees in `call`, in `call`'s order."""
        shape = x_hat = input_shape
        for i, layers in enumerate(branch):
            if i == self.anatomy.shares:
                x_hat = shape
            for layer in layers:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        for layer in (self.drop, self.post_activation):  # they see the branch's output
            if layer is not None:
                layer.build(shape)
        if self.shortcut_layer is not None:
            self.shortcut_layer.build(x_hat)

    # -- the equations ---------------------------------------------------------------------
    def call(self, x, training=False):
        """``y = σ(x + F(x))`` (He et al. 2015); ``y = σ(F(x))`` in the plain twin."""
        if self._drops_per_batch(training):
            return self._call_stochastic_depth(x, training)
        h = self.residual_function(x, training)
        if self.residual:  # the plain twin has no x
            h = self._apply(self.drop, h, training)  # stochastic depth (Huang et al. 2016)
            h = self._apply(self.shortcut_layer, x, training) + h
        return self._apply(self.post_activation, h)

    def preactivated(self, x, training):
        """``x̂``, what ``F`` (and a projection) sees: ``x`` in a post-activation block."""
        return x

    def _shortcut(self, x, x_hat, training):
        """The identity, or the shortcut layer: on ``x̂`` where it projects the branch's input
        (He et al. 2016), on ``x`` for option A."""
        return self._apply(self.shortcut_layer, x_hat if self.anatomy.shares else x, training)

    def _drops_per_batch(self, training):
        """Whether this call draws Huang et al.'s one keep-or-drop for the whole mini-batch."""
        return bool(training) and self.drop is not None and self.drop.mode == "batch"

    def _apply(self, layer, h, training=None):
        """``layer(h)``, through `call_sublayer` (PyTorch's fast path); ``None`` is a layer the
        block leaves out (no batch norm, no dropout, no projection: the identity)."""
        if layer is None:
            return h
        if training is None:
            return call_sublayer(self, layer, h)
        return call_sublayer(self, layer, h, training=training)

    def _zero(self):
        """0, with a zero gradient for every weight of the block. A skipped branch's weights
        then get a zero gradient on every backend, as in a graph; PyTorch's autograd would give
        them none, and Keras would leave them out of the optimizer's step (momentum too). It has
        the branch's dtype, bfloat16 under a mixed policy, whose weights are float32."""
        ops = keras.ops
        zero = 0.0 * ops.sum(ops.stack([ops.sum(w) for w in self.trainable_weights]))
        return ops.cast(zero, self.compute_dtype)

    def _call_stochastic_depth(self, inputs, training):
        """Huang et al.'s rule as they compute it: one draw per mini-batch, and a dropped branch
        is not computed at all (nor are its batch-norm statistics updated), so a training step
        costs the blocks that survive. ``ops.cond`` runs one side; both sides return the new
        values of the block's non-trainable variables, so that the batch-norm updates made on
        the side that ran leave the conditional (``jax.lax.cond`` cannot assign variables)."""
        seeds = {id(v) for v in self.drop.variables}
        state = [v for v in self.variables if not v.trainable and id(v) not in seeds]

        def side(keep):
            def run():
                mapping = [(v, v.value) for v in self.variables]
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    # x̂ is F's input, and a projection's in a pre-activation block
                    sees_x_hat = keep or self.anatomy.shares
                    x_hat = self.preactivated(inputs, training) if sees_x_hat else inputs
                    branch = self.residual_function(x_hat, training) if keep else self._zero()
                    out = self._shortcut(inputs, x_hat, training) + branch
                return out, [scope.get_current_value(v) for v in state]
            return run

        h, values = keras.ops.cond(self.drop.draw(), side(True), side(False))
        for variable, value in zip(state, values):
            variable.assign(value)
        return self._apply(self.post_activation, h)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = channel_axis(len(shape), self.data_format)
        anatomy = self._anatomy(shape[axis])
        for conv in anatomy.convs:
            for i in range(1, len(shape)):
                if i != axis:
                    shape[i] = conv_output_size(shape[i], conv.kernel_size, conv.strides)
        shape[axis] = anatomy.out_channels
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(),
            "nb_channels": self.nb_channels,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "shortcut": self.shortcut,
            "residual": self.residual,
            "survival_probability": self.survival_probability,
            "drop_mode": self.drop_mode,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "batch_norm": self.batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "zero_init_last_bn": self.zero_init_last_bn,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "data_format": self.data_format,
            "seed": self.seed,
            "dropout": self.dropout,
            "avg_down": self.avg_down,
            "shortcut_batch_norm": self.shortcut_batch_norm,
        }


_BLOCK_ARGS = """
    Args:
        nb_channels: width of the block{width}.
        kernel_size: odd size of the spatial kernels.
        strides: subsampling of the first block of a stage (1 elsewhere).
        shortcut: ``"A"`` (subsample + zero channels, no weights), ``"B"`` (projection where
            the shape changes) or ``"C"`` (projection in every block); see `Shortcut`.
        residual: ``False`` gives the plain twin: the same layers without the skip.
        survival_probability: stochastic depth ``p_l``; 1 disables it.
        drop_mode: ``"batch"`` (Huang et al.) or ``"sample"`` (drop path); see `StochasticDepth`.
        activation: a name of `ACTIVATIONS`; ``"crelu"`` doubles the width.
        use_bias: whether the convolutions have biases (the lecture's do).
        batch_norm: whether batch normalisation follows (precedes) each convolution.
        bn_momentum, bn_epsilon: batch-norm settings; the defaults match PyTorch's.
        zero_init_last_bn: start the last batch norm of the branch at zero scale (Goyal et al.
            2017), so the block starts as the identity.
        kernel_initializer: initialiser of the convolutions, projection shortcut included
            (``LooksLinear()`` after a CReLU).
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras' setting).
        seed: seed of the stochastic-depth draws and of the dropout.
        dropout: rate of a `Dropout` before the branch's second linear layer (Wide ResNet,
            Zagoruyko & Komodakis 2016); 0 adds no layer.
        avg_down: average-pool downsampling in a strided projection shortcut (ResNet-D).
        shortcut_batch_norm: ``False`` leaves out the batch norm after a projection shortcut
            (Wide ResNet's, and pre-activation ResNets' in Torch).
"""


@keras.saving.register_keras_serializable(package="keras_resnets")
class ResBlock(_ResidualBlock):
    __doc__ = (
        """The lecture's block: conv → BN → ReLU → conv → BN, + x, ReLU (He et al. 2015).

    Example:
    >>> from keras_resnets import count_params
    >>> block = ResBlock(16, 3, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 28, 28, 16))).shape)
    (1, 28, 28, 16)
    >>> count_params(block)
    {'trainable': 4672, 'non_trainable': 64, 'total': 4736}
"""
        + _BLOCK_ARGS.format(width="")
    )

    kind = "basic"

    def residual_function(self, x, training=False):
        """``F(x) = BN(W_2 σ(BN(W_1 x)))`` (He et al. 2015, Fig. 2)."""
        run = self._apply
        h = run(self.conv1, run(self.conv1_pad, x))
        h = run(self.act1, run(self.bn1, h, training))
        h = run(self.dropout_layer, h, training)  # Wide ResNet's, between the convolutions
        return run(self.bn2, run(self.conv2, h), training)


_BOTTLENECK_ARGS = (
    "        expansion: output width over ``nb_channels`` (4 in the paper).\n"
    "        groups: cardinality: groups of the kxk convolution (ResNeXt; 1 in ResNet).\n"
    "        width_per_group: inner width per group per 64 ``nb_channels`` (torchvision's\n"
    "            ``width_per_group``; 128 and groups=1 is Wide ResNet-50-2).\n"
)


@keras.saving.register_keras_serializable(package="keras_resnets")
class BottleneckBlock(_ResidualBlock):
    __doc__ = (
        """The bottleneck block of ResNet-50/101/152: 1x1 reduce, kxk (strided), 1x1 expand.

    The stride sits on the kxk convolution, as in torchvision ("ResNet v1.5"). The inner
    width is `keras_resnets.design.anatomy.bottleneck_width` (``nb_channels`` by default); with ``groups > 1`` the kxk
    convolution is grouped: ResNeXt's aggregated transformations (Xie et al. 2017).

    Example:
    >>> block = BottleneckBlock(64, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 56, 56, 64))).shape)
    (1, 56, 56, 256)
    >>> resnext = BottleneckBlock(64, groups=32, width_per_group=4, data_format="channels_last")
    >>> tuple(resnext(keras.ops.ones((1, 8, 8, 256))).shape)
    (1, 8, 8, 256)
    >>> from keras_resnets import count_params
    >>> count_params(resnext)["trainable"]
    71168
"""
        + _BLOCK_ARGS.format(width=" inside; the output has ``expansion * nb_channels``")
        + _BOTTLENECK_ARGS
    )

    def __init__(self, nb_channels, kernel_size=3, strides=1, *, expansion=EXPANSION, groups=1,
                 width_per_group=64, **kwargs):
        check_int("expansion", expansion)
        check_int("groups", groups)
        check_int("width_per_group", width_per_group)
        self.expansion = expansion
        self.groups = groups
        self.width_per_group = width_per_group
        super().__init__(nb_channels, kernel_size, strides, **kwargs)

    kind = "bottleneck"

    def residual_function(self, x, training=False):
        """``F(x) = BN(W_3 σ(BN(W_2 σ(BN(W_1 x)))))``: 1x1 reduce, kxk, 1x1 expand (He et al.
        2015, Fig. 5)."""
        run = self._apply
        h = run(self.act1, run(self.bn1, run(self.conv1, x), training))
        h = run(self.dropout_layer, h, training)  # Wide ResNet's, before the kxk convolution
        h = run(self.act2, run(self.bn2, run(self.conv2, run(self.conv2_pad, h)), training))
        return run(self.bn3, run(self.conv3, h), training)

    def _anatomy_arguments(self):
        return {**super()._anatomy_arguments(), "groups": self.groups,
                "width_per_group": self.width_per_group, "expansion": self.expansion}

    def get_config(self):
        return {**super().get_config(), "expansion": self.expansion, "groups": self.groups,
                "width_per_group": self.width_per_group}


class _PreActivation:
    """Mixin: BN → activation → conv units (He et al. 2016), no activation after the sum."""

    preactivation = True

    def __init__(self, *args, preactivate=True, **kwargs):
        self.preactivate = preactivate
        super().__init__(*args, **kwargs)

    def _anatomy_arguments(self):
        return {**super()._anatomy_arguments(), "preactivate": self.preactivate}

    def call(self, x, training=False):
        """``y = x + F(x̂)``, ``x̂ = σ(BN(x))`` (He et al. 2016); ``y = F(x̂)`` in the plain twin."""
        if self._drops_per_batch(training):
            return self._call_stochastic_depth(x, training)
        x_hat = self.preactivated(x, training)
        h = self.residual_function(x_hat, training)
        if self.residual:  # the plain twin has no x
            h = self._apply(self.drop, h, training)  # stochastic depth (Huang et al. 2016)
            h = self._shortcut(x, x_hat, training) + h
        return h

    def preactivated(self, x, training):
        """``x̂ = σ(BN(x))``; ``x`` with ``preactivate=False`` (no ``bn1``, ``act1``)."""
        return self._apply(self.act1, self._apply(self.bn1, x, training))

    def get_config(self):
        return {**super().get_config(), "preactivate": self.preactivate}


_PREACT_ARGS = (
    "        preactivate: ``False`` for the first block after a stem that already ends with\n"
    "            BN-ReLU, as in the paper.\n"
)


@keras.saving.register_keras_serializable(package="keras_resnets")
class PreActResBlock(_PreActivation, ResBlock):
    __doc__ = (
        """Pre-activation `ResBlock`: BN → ReLU → conv → BN → ReLU → conv, + x (He et al. 2016).

    Example:
    >>> tuple(PreActResBlock(16, data_format="channels_last")(keras.ops.ones((1, 8, 8, 16))).shape)
    (1, 8, 8, 16)
"""
        + _BLOCK_ARGS.format(width="")
        + _PREACT_ARGS
    )

    def residual_function(self, x_hat, training=False):
        """``F(x̂) = W_2 σ(BN(W_1 x̂))`` (He et al. 2016, Fig. 1b)."""
        run = self._apply
        h = run(self.conv1, run(self.conv1_pad, x_hat))
        h = run(self.act2, run(self.bn2, h, training))
        h = run(self.dropout_layer, h, training)  # Wide ResNet's, between the convolutions
        return run(self.conv2, h)


@keras.saving.register_keras_serializable(package="keras_resnets")
class PreActBottleneckBlock(_PreActivation, BottleneckBlock):
    __doc__ = (
        """Pre-activation `BottleneckBlock` (He et al. 2016).

    Example:
    >>> block = PreActBottleneckBlock(16, data_format="channels_last")
    >>> tuple(block(keras.ops.ones((1, 8, 8, 64))).shape)
    (1, 8, 8, 64)
"""
        + _BLOCK_ARGS.format(width=" inside; the output has ``expansion * nb_channels``")
        + _BOTTLENECK_ARGS
        + _PREACT_ARGS
    )

    def residual_function(self, x_hat, training=False):
        """``F(x̂) = W_3 σ(BN(W_2 σ(BN(W_1 x̂))))`` (He et al. 2016)."""
        run = self._apply
        h = run(self.act2, run(self.bn2, run(self.conv1, x_hat), training))
        h = run(self.dropout_layer, h, training)  # Wide ResNet's, before the kxk convolution
        h = run(self.act3, run(self.bn3, run(self.conv2, run(self.conv2_pad, h)), training))
        return run(self.conv3, h)


@keras.saving.register_keras_serializable(package="keras_resnets")
class DenseResBlock(ResBlock):
    __doc__ = (
        """A fully-connected residual block: Linear → BN → ReLU → Linear → BN, + x, ReLU.

    ``kernel_size`` and ``strides`` must stay 1; a width change uses a `Dense` projection
    (options B, C) or zero features (option A).

    Example:
    >>> tuple(DenseResBlock(200)(keras.ops.ones((4, 200))).shape)
    (4, 200)
"""
        + _BLOCK_ARGS.format(width=" (units)")
    )

    def __init__(self, nb_channels, kernel_size=1, strides=1, **kwargs):
        if kernel_size != 1 or strides != 1:
            raise ValueError(
                f"DenseResBlock has no spatial axes: kernel_size={kernel_size} and "
                f"strides={strides} must both be 1."
            )
        super().__init__(nb_channels, kernel_size, strides, **kwargs)

    kind = "dense"

    def _linear(self, layer):
        return [
            keras.layers.Dense(
                layer.filters, use_bias=layer.use_bias,
                kernel_initializer=self._fresh_initializer(), name=layer.name,
            )
        ]
