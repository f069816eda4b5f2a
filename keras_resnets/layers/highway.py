"""Highway layers (Srivastava et al. 2015): ``y = T(x) · H(x) + (1 - T(x)) · x``, with the
layers of their `keras_resnets.design.anatomy.Anatomy`."""

import keras
from keras import ops

from keras_resnets.design.anatomy import block_anatomy
from keras_resnets.design.validation import check_number
from keras_resnets.layers.activations import check_activation, make_activation
from keras_resnets.layers.common import (
    batch_norm,
    builds_in_its_dtype_policy,
    channel_axis,
    check_odd_kernel,
    resolve_data_format,
)
from keras_resnets.layers.fast import Conv2D, call_sublayer


class _Highway(keras.layers.Layer):
    """Shared gating; subclasses create the linear maps of ``H`` and ``T`` (`_linear`) and
    say their ``kernel_size``."""

    kernel_size = 1

    def __init__(
        self,
        activation="relu",
        transform_gate_bias=-2.0,
        residual=True,
        use_bias=True,
        batch_norm=False,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer="he_normal",
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_activation(activation)
        if activation == "crelu":
            raise ValueError("activation='crelu' changes the width, which a highway layer keeps.")
        self.activation = activation
        self.transform_gate_bias = check_number("transform_gate_bias", transform_gate_bias)
        self.residual = residual
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = resolve_data_format(data_format)

    @builds_in_its_dtype_policy
    def build(self, input_shape):
        axis = channel_axis(len(input_shape), self.data_format)
        width = input_shape[axis]
        anatomy = block_anatomy(
            "highway", width, width, self.kernel_size, activation=self.activation,
            batch_norm=self.batch_norm, use_bias=self.use_bias, residual=self.residual)
        made = {layer.name: self._make(layer, axis, "he_normal", "zeros") for layer in anatomy.branch}
        bias = keras.initializers.Constant(self.transform_gate_bias)
        gates = [self._make(layer, axis, self.kernel_initializer, bias) for layer in anatomy.gate]
        # Attributes as earlier versions named them: weight files keep the variables there.
        self.transform, self.bn, self.act = made["transform"], made.get("bn"), made["act"]
        self.gate = gates[0] if gates else None
        for layer in (self.transform, self.bn, self.act, self.gate):  # each keeps the shape
            if layer is not None:
                layer.build(input_shape)
        self.built = True

    def _make(self, layer, axis, kernel_initializer, bias_initializer):
        """The Keras layer of one `keras_resnets.design.anatomy.Layer`."""
        if layer.kind == "conv":
            return self._linear(layer.filters, kernel_initializer, bias_initializer,
                                layer.use_bias, layer.name)
        if layer.kind == "norm":
            return batch_norm(axis, self.bn_momentum, self.bn_epsilon, layer.name)
        return make_activation(layer.activation, axis, name=layer.name)

    def call(self, x, training=False):
        """``y = T·H(x) + (1 - T)·x``, ``T = sigmoid(W_T x + b_T)`` (Srivastava et al. 2015);
        ``y = H(x)`` in the plain twin."""
        h = call_sublayer(self, self.transform, x)
        if self.bn is not None:
            h = call_sublayer(self, self.bn, h, training=training)
        h = call_sublayer(self, self.act, h)
        if self.gate is None:  # the plain twin
            return h
        t = ops.sigmoid(call_sublayer(self, self.gate, x))
        return t * h + (1.0 - t) * x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "activation": self.activation,
            "transform_gate_bias": self.transform_gate_bias,
            "residual": self.residual,
            "use_bias": self.use_bias,
            "batch_norm": self.batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "data_format": self.data_format,
        }


_HIGHWAY_ARGS = """
    Args:
        activation: the non-linearity of ``H`` (a name of `ACTIVATIONS`, not ``"crelu"``).
        transform_gate_bias: initial bias of the transform gate ``T``; negative values start
            the layer close to carrying its input (the paper uses -1 to -3).
        residual: ``False`` gives the plain twin ``y = H(x)`` (no gate).
        use_bias: whether ``H`` has a bias.
        batch_norm: whether ``H`` is batch-normalised (not in the paper).
        bn_momentum, bn_epsilon: batch-norm settings.
        kernel_initializer: initialiser of the gate's kernel.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras' setting).
"""


@keras.saving.register_keras_serializable(package="keras_resnets")
class HighwayDense(_Highway):
    __doc__ = (
        """A fully-connected highway layer; the width is the input's.

    Example:
    >>> tuple(HighwayDense()(keras.ops.ones((2, 50))).shape)
    (2, 50)
"""
        + _HIGHWAY_ARGS
    )

    def _linear(self, units, kernel_initializer, bias_initializer, use_bias, name):
        return keras.layers.Dense(
            units, use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, name=name,
        )


@keras.saving.register_keras_serializable(package="keras_resnets")
class HighwayConv2D(_Highway):
    __doc__ = (
        """A convolutional highway layer with 'same' padding; the width is the input's.

    Example:
    >>> tuple(HighwayConv2D(3, data_format="channels_last")(keras.ops.ones((1, 8, 8, 16))).shape)
    (1, 8, 8, 16)
"""
        + _HIGHWAY_ARGS
        + "        kernel_size: odd size of the kernels of ``H`` and ``T``.\n"
    )

    def __init__(self, kernel_size=3, **kwargs):
        check_odd_kernel(kernel_size)
        self.kernel_size = kernel_size
        super().__init__(**kwargs)

    def _linear(self, filters, kernel_initializer, bias_initializer, use_bias, name):
        return Conv2D(
            filters, self.kernel_size, padding="same", use_bias=use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            data_format=self.data_format, name=name,
        )

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}
