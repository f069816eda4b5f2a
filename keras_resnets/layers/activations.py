"""CReLU (Shang et al. 2016; Balduzzi et al. 2017) and the activation factory of the blocks."""

import keras
from keras import ops

from keras_resnets.design.choices import ACTIVATIONS
from keras_resnets.design.validation import check_choice, fail, is_int
from keras_resnets.layers.fast import ReLU


@keras.saving.register_keras_serializable(package="keras_resnets")
class CReLU(keras.layers.Layer):
    """Concatenated ReLU with interleaved channels: the width doubles.

    ``Φ(x)[2q] = relu(x[q])`` and ``Φ(x)[2q + 1] = relu(-x[q])`` (0-based), the order of the
    lecture, so that a following layer initialised with `LooksLinear` computes ``W · x``.

    Args:
        axis: the channel axis; ``None`` follows ``keras.config.image_data_format()`` for
            images and is ``-1`` for vectors.

    Example:
    >>> y = CReLU()(keras.ops.convert_to_tensor([[1.0, -2.0]]))
    >>> keras.ops.convert_to_numpy(y).tolist()
    [[1.0, 0.0, 0.0, 2.0]]
    """

    def __init__(self, axis=None, **kwargs):
        super().__init__(**kwargs)
        if axis is not None and not is_int(axis):
            fail("axis", axis, "an integer or None")
        self.axis = axis

    def _channel_axis(self, rank):
        if self.axis is not None:
            return self.axis % rank
        if rank > 2 and keras.config.image_data_format() == "channels_first":
            return 1
        return rank - 1

    def call(self, inputs):
        axis = self._channel_axis(len(inputs.shape))
        pair = ops.stack([ops.relu(inputs), ops.relu(-inputs)], axis=axis + 1)
        shape = list(ops.shape(inputs))
        shape[axis] = shape[axis] * 2
        shape[0] = -1
        return ops.reshape(pair, shape)

    def compute_output_shape(self, input_shape):
        axis = self._channel_axis(len(input_shape))
        shape = list(input_shape)
        shape[axis] = None if shape[axis] is None else 2 * shape[axis]
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def check_activation(activation):
    """Raises a `ValueError` unless ``activation`` is one of `ACTIVATIONS`."""
    check_choice("activation", activation, ACTIVATIONS)


def make_activation(activation, axis=None, name=None):
    """A new layer applying ``activation`` (a name from `ACTIVATIONS`)."""
    check_activation(activation)
    if activation == "crelu":
        return CReLU(axis=axis, name=name)
    if activation == "relu":
        return ReLU(name=name)
    return keras.layers.Activation(activation, name=name)
