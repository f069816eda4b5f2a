"""The shortcut of a residual block whose shape changes: options A, B and C of He et al. (2015)."""

import keras
from keras import ops

from keras_resnets.design.anatomy import shortcut_layers
from keras_resnets.design.choices import SHORTCUT_OPTIONS
from keras_resnets.design.validation import check_int, fail
from keras_resnets.layers.common import (
    batch_norm,
    builds_in_its_dtype_policy,
    channel_axis,
    resolve_data_format,
)
from keras_resnets.layers.fast import Conv2D, call_sublayer


@keras.saving.register_keras_serializable(package="keras_resnets")
class Shortcut(keras.layers.Layer):
    """The identity path of a block whose output shape differs from its input's.

    - Option ``"A"``: keeps one activation in ``strides`` along each spatial axis and appends
      ``filters - C`` zero channels. It has no weights.
    - Options ``"B"`` and ``"C"``: a 1x1 convolution with stride ``strides`` (a `Dense` layer for
      vectors) followed by batch normalisation. With ``avg_down`` (ResNet-D, He et al. 2019)
      a strided projection first averages each ``strides x strides`` window (partial windows
      at the edge over their pixels only) and then convolves with stride 1, so that no
      activation is skipped. The layers are those of
      `keras_resnets.design.anatomy.shortcut_layers`.

    Args:
        option: ``"A"``, ``"B"`` or ``"C"``.
        filters: the output width.
        strides: the spatial subsampling factor (1 for vectors).
        batch_norm: whether a projection is followed by batch normalisation.
        bn_momentum, bn_epsilon: its settings.
        kernel_initializer: initialiser of the projection.
        avg_down: average-pool downsampling before a projection (ResNet-D).
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras' setting).

    Example:
    >>> shortcut = Shortcut("A", filters=32, strides=2, data_format="channels_last")
    >>> tuple(shortcut(keras.ops.ones((1, 8, 8, 16))).shape)
    (1, 4, 4, 32)
    >>> shortcut.count_params()
    0
    """

    def __init__(
        self,
        option,
        filters,
        strides=1,
        batch_norm=True,
        bn_momentum=0.9,
        bn_epsilon=1e-5,
        kernel_initializer="he_normal",
        data_format=None,
        avg_down=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if option not in SHORTCUT_OPTIONS:
            raise ValueError(
                f"shortcut={option!r} is not supported; choose one of {SHORTCUT_OPTIONS}."
            )
        check_int("filters", filters)
        check_int("strides", strides)
        self.option = option
        self.filters = filters
        self.strides = strides
        self.batch_norm = batch_norm
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.data_format = resolve_data_format(data_format)
        self.avg_down = bool(avg_down)

    @builds_in_its_dtype_policy
    def build(self, input_shape):
        rank = len(input_shape)
        self._axis = channel_axis(rank, self.data_format)
        in_channels = input_shape[self._axis]
        if rank == 2 and self.strides != 1:
            fail("strides", self.strides, "1 for a shortcut on vectors")
        if self.option == "A" and in_channels > self.filters:
            raise ValueError(
                f"shortcut option 'A' can only add channels: input has {in_channels}, "
                f"filters={self.filters}. Use option 'B' or 'C'."
            )
        self.pool = self.projection = self.bn = None
        for layer in shortcut_layers(self.option, in_channels, self.filters, self.strides,
                                     batch_norm=self.batch_norm, avg_down=self.avg_down):
            if layer.kind != "zero_pad":  # option A's, which `_zero_pad` computes
                made = self._make(layer, rank)
                setattr(self, layer.name, made)  # weight files keep its variables there
                made.build(input_shape)
                input_shape = made.compute_output_shape(input_shape)
        self.built = True

    def _make(self, layer, rank):
        """The Keras layer of one `keras_resnets.design.anatomy.Layer`: ``pool``,
        ``projection`` or ``bn``."""
        if layer.kind == "norm":
            return batch_norm(self._axis, self.bn_momentum, self.bn_epsilon, name=layer.name)
        if layer.kind == "pool":
            # 'same' pooling averages a partial edge window over its pixels only: PyTorch's
            # AvgPool2d(ceil_mode=True, count_include_pad=False), as in timm's avg_down.
            return keras.layers.AveragePooling2D(
                layer.kernel_size, layer.strides, padding="same", data_format=self.data_format,
                name=layer.name)
        if rank == 2:
            return keras.layers.Dense(layer.filters, use_bias=layer.use_bias,
                                      kernel_initializer=self.kernel_initializer, name=layer.name)
        return Conv2D(layer.filters, 1, strides=layer.strides, use_bias=layer.use_bias,
                      kernel_initializer=self.kernel_initializer, data_format=self.data_format,
                      name=layer.name)

    def call(self, x, training=False):
        """Option A's zero padding, else the projection ``BN(W_s x)`` (He et al. 2015, eq. 2),
        average-pooled first with ``avg_down`` (ResNet-D)."""
        if self.option == "A":
            return self._zero_pad(x)
        if self.pool is not None:
            x = call_sublayer(self, self.pool, x)
        x = call_sublayer(self, self.projection, x)
        if self.bn is not None:
            x = call_sublayer(self, self.bn, x, training=training)
        return x

    def _zero_pad(self, inputs):
        """Option A: one position in ``strides`` kept, zero channels appended."""
        x = inputs
        s = self.strides
        if s != 1:
            x = x[:, :, ::s, ::s] if self._axis == 1 else x[:, ::s, ::s, :]
        extra = self.filters - inputs.shape[self._axis]
        if extra:
            pad = [[0, 0]] * len(inputs.shape)
            pad[self._axis] = [0, extra]
            x = ops.pad(x, pad)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = channel_axis(len(shape), self.data_format)
        for i in range(1, len(shape)):
            if i != axis and shape[i] is not None:
                shape[i] = (shape[i] - 1) // self.strides + 1
        shape[axis] = self.filters
        return tuple(shape)

    def get_config(self):
        return {
            **super().get_config(),
            "option": self.option,
            "filters": self.filters,
            "strides": self.strides,
            "batch_norm": self.batch_norm,
            "bn_momentum": self.bn_momentum,
            "bn_epsilon": self.bn_epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "data_format": self.data_format,
            "avg_down": self.avg_down,
        }
