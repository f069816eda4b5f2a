"""ReLU, batch normalisation and convolution as Keras computes them, on each backend's
fastest path.

Both keep Keras' weights, statistics and results; only how a backend computes them changes
(benchmarks/RESULTS.md measures each change):

- `ReLU`: on JAX, ``where(x <= 0, 0, x)`` instead of ``max(x, 0)``. XLA:CPU fuses an
  effectively unary op such as ``max(x, 0)`` into every consumer together with its producers;
  along a residual stream those are all the earlier blocks, so the work grows with the square
  of the depth. A select of two full-size operands is computed once.
- `BatchNormalization`: on PyTorch, a training step runs one fused kernel
  (``torch.ops.aten.native_batch_norm``) instead of Keras' composite of ``moments`` and five
  elementwise ops, and inference one kernel instead of three. The moving statistics follow
  Keras (the biased batch variance).
- `Conv2D`: on PyTorch, one ``conv2d`` call on the tensor as it lies in memory, with the bias
  inside. Keras copies a channels-last input twice per convolution (to channels-first and
  back to channels-last memory) and adds the bias in a separate pass.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class ReLU(keras.layers.Layer):
    """``max(x, 0)``; computed as a select on JAX (see the module's docstring).

    Example:
    >>> keras.ops.convert_to_numpy(ReLU()(keras.ops.convert_to_tensor([-1.0, 0.0, 2.0]))).tolist()
    [0.0, 0.0, 2.0]
    """

    def call(self, inputs):
        if keras.backend.backend() == "jax":
            return ops.where(inputs <= 0, ops.zeros((), inputs.dtype), inputs)
        return ops.relu(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="keras_resnets")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, with one fused kernel for float32 training and
    inference on PyTorch (see the module's docstring); the same weights and the same
    statistics.

    Example:
    >>> bn = BatchNormalization(momentum=0.5)
    >>> y = bn(keras.ops.convert_to_tensor([[1.0], [3.0]]), training=True)
    >>> keras.ops.convert_to_numpy(y)[:, 0].round(3).tolist()
    [-1.0, 1.0]
    >>> [float(bn.moving_mean[0]), float(bn.moving_variance[0])]
    [1.0, 1.0]
    """

    def fuses(self, inputs, mask=None):
        """Whether a call on ``inputs`` takes the fused path, in training or inference."""
        return (keras.backend.backend() == "torch" and mask is None and not self.synchronized
                and keras.backend.standardize_dtype(inputs.dtype) == self.moving_mean.dtype)

    def call(self, inputs, training=None, mask=None):
        if not self.fuses(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch

        training = bool(training) and self.trainable
        axis = self.axis % inputs.ndim
        x = inputs if axis == 1 else inputs.movedim(axis, 1)
        gamma = self.gamma.value if self.scale else None
        beta = self.beta.value if self.center else None
        if not training:
            y = torch.nn.functional.batch_norm(
                x, self.moving_mean.value, self.moving_variance.value, gamma, beta,
                training=False, eps=self.epsilon)
            return y if axis == 1 else y.movedim(1, axis)
        y, mean, inverse_std = torch.ops.aten.native_batch_norm(
            x, gamma, beta, None, None, True, 0.0, self.epsilon)
        with torch.no_grad():
            variance = inverse_std.pow(-2) - self.epsilon
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(moving.value * self.momentum + batch * (1.0 - self.momentum))
        return y if axis == 1 else y.movedim(1, axis)


@keras.saving.register_keras_serializable(package="keras_resnets")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D`, with one ``conv2d`` call and no copies on PyTorch (see the
    module's docstring); the same weights and the same results.

    Example:
    >>> conv = Conv2D(4, 3, padding="same", data_format="channels_last")
    >>> tuple(conv(keras.ops.ones((2, 8, 8, 3))).shape)
    (2, 8, 8, 4)
    """

    def torch_padding(self, inputs):
        """The symmetric padding per spatial axis that the fused path passes to ``conv2d``,
        or ``None`` where Keras pads asymmetrically (or the backend is not PyTorch)."""
        if keras.backend.backend() != "torch" or self.lora_enabled:
            return None
        if self.padding == "valid":
            return (0, 0)
        spatial = inputs.shape[1:3] if self.data_format == "channels_last" else inputs.shape[2:]
        padding = []
        for size, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
            span = (k - 1) * d + 1
            total = max(0, (-(-size // s) - 1) * s + span - size)  # Keras' 'same'
            if total % 2:
                return None
            padding.append(total // 2)
        return tuple(padding)

    def call(self, inputs):
        padding = self.torch_padding(inputs)
        if padding is None:
            return super().call(inputs)
        import torch

        channels_last = self.data_format == "channels_last"
        x = inputs.permute(0, 3, 1, 2) if channels_last else inputs
        strides = self.strides
        if self.kernel_size == (1, 1):
            # A strided 1x1 convolution is a subsampling and a 1x1 convolution. PyTorch 2.13's
            # CPU kernel gets the strided weight gradient wrong for some shapes (3 or 4 input
            # channels at 8x8 among those tested; Keras' own path too); subsampling avoids it.
            x, strides = x[:, :, ::strides[0], ::strides[1]], (1, 1)
        y = torch.nn.functional.conv2d(
            x, self.kernel.value.permute(3, 2, 0, 1), self.bias.value if self.use_bias else None,
            stride=strides, padding=padding, dilation=self.dilation_rate, groups=self.groups)
        y = y.permute(0, 2, 3, 1) if channels_last else y
        return y if self.activation is None else self.activation(y)
