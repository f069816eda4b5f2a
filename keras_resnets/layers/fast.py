"""ReLU, batch normalisation, convolution and calls of sub-layers as Keras computes them, on
each backend's fastest path.

All four keep Keras' weights, statistics and results; only how a backend computes them changes
(benchmarks/RESULTS.md measures each change):

- `ReLU`: on JAX, ``where(x <= 0, 0, x)`` instead of ``max(x, 0)``. XLA:CPU fuses an
  effectively unary op such as ``max(x, 0)`` into every consumer together with its producers;
  along a residual stream those are all the earlier blocks, so the work grows with the square
  of the depth. A select of two full-size operands is computed once.
- `BatchNormalization`: a training step runs one fused kernel (PyTorch's
  ``native_batch_norm``, TensorFlow's ``FusedBatchNormV3``) instead of Keras' composite of
  ``moments`` and five elementwise ops, and its gradient one kernel too (on PyTorch the
  kernel also moves the statistics, in place, as ``torch.nn.BatchNorm2d``'s); inference one
  kernel instead of three. The moving variance follows PyTorch: it is updated with the unbiased
  batch variance (``unbiased_variance=True``), on every path and backend; Keras' own layer
  uses the biased one (``unbiased_variance=False``).
- `Conv2D`: on PyTorch, one ``conv2d`` call on the tensor as it lies in memory, with the bias
  inside. Keras copies a channels-last input twice per convolution (to channels-first and
  back to channels-last memory) and adds the bias in a separate pass.
- `call_sublayer`: on PyTorch, a block calls its built sub-layers' ``call`` directly where
  Keras' ``Layer.__call__`` would change nothing. PyTorch runs Keras eagerly, so that Python
  runs on every step: about 7% of a training step of the MNIST ResNet.
"""

import keras
from keras import ops

from keras_resnets.runtime.internals import batch_moments, remat_mode, torch_call_hooks


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
    """`keras.layers.BatchNormalization`, with one fused kernel for training and inference on
    PyTorch and TensorFlow (see the module's docstring), and PyTorch's moving variance.

    The fused kernels take inputs in the statistics' dtype, or in bfloat16 or float16 with
    float32 statistics (a mixed policy); they compute the statistics in float32 either way.

    In training, the batch is normalised with its biased variance (as Keras and PyTorch do),
    but the moving variance is updated with the unbiased one, ``n / (n - 1)`` times larger for
    ``n`` values per channel, as ``torch.nn.BatchNorm2d`` does: one training step moves the
    statistics exactly as PyTorch's, so weights trained on either side mean the same.

    Args:
        unbiased_variance: ``True`` (PyTorch's rule, the default) or ``False`` (Keras' rule:
            the biased variance). Masked and renormalised calls always use Keras' rule.
        **kwargs: those of `keras.layers.BatchNormalization`.

    Example:
    >>> bn = BatchNormalization(momentum=0.5)
    >>> y = bn(keras.ops.convert_to_tensor([[1.0], [3.0]]), training=True)
    >>> keras.ops.convert_to_numpy(y)[:, 0].round(3).tolist()
    [-1.0, 1.0]
    >>> [float(bn.moving_mean[0]), float(bn.moving_variance[0])]  # 0.5 * 1 + 0.5 * 2
    [1.0, 1.5]
    """

    def __init__(self, *args, unbiased_variance=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.unbiased_variance = bool(unbiased_variance)

    def fuses(self, inputs, mask=None):
        """Whether a call on ``inputs`` takes the fused path, in training or inference."""
        backend = keras.backend.backend()
        if backend == "tensorflow":  # FusedBatchNormV3 takes images, channels last or first
            fusable = len(inputs.shape) == 4 and self.axis % 4 in (1, 3)
        else:
            fusable = backend == "torch"
        if not fusable or mask is not None or self.synchronized or self.renorm:
            return False
        dtype, statistics = keras.backend.standardize_dtype(inputs.dtype), self.moving_mean.dtype
        return dtype == statistics or (dtype in ("bfloat16", "float16") and statistics == "float32")

    def call(self, inputs, training=None, mask=None):
        training = bool(training) and self.trainable
        if not self.fuses(inputs, mask):
            if training and self.unbiased_variance and mask is None and not self.renorm:
                return self._train_step(inputs)
            return super().call(inputs, training=training, mask=mask)
        if keras.backend.backend() == "torch":
            outputs, moments = self._torch_batch_norm(inputs, training)
        else:
            outputs, moments = self._tensorflow_batch_norm(inputs, training)
        if moments is not None:
            self._update_moving_statistics(*moments)
        return outputs

    def _train_step(self, inputs):
        """Keras' own training path, with the moving variance updated by the unbiased one."""
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, variance = batch_moments(self, x)
        count = ops.cast(ops.size(x), x.dtype) / x.shape[self.axis]
        self._update_moving_statistics(mean, variance * (count / ops.maximum(count - 1.0, 1.0)))
        gamma, beta = self._scale_and_offset()
        y = ops.batch_normalization(
            x, mean, variance, axis=self.axis, epsilon=self.epsilon,
            offset=None if beta is None else ops.cast(beta, x.dtype),
            scale=None if gamma is None else ops.cast(gamma, x.dtype))
        return ops.cast(y, self.compute_dtype)

    def _update_moving_statistics(self, mean, variance):
        for moving, batch in zip((self.moving_mean, self.moving_variance), (mean, variance)):
            batch = ops.cast(batch, moving.dtype)
            moving.assign(moving.value * self.momentum + batch * (1.0 - self.momentum))

    def get_config(self):
        return {**super().get_config(), "unbiased_variance": self.unbiased_variance}

    def _scale_and_offset(self):
        return (self.gamma.value if self.scale else None,
                self.beta.value if self.center else None)

    def _torch_batch_norm(self, inputs, training):
        """The normalised inputs and, in training, the batch mean and variance."""
        import torch

        axis = self.axis % inputs.ndim
        x = inputs if axis == 1 else inputs.movedim(axis, 1)
        gamma, beta = self._scale_and_offset()
        if not training:
            y = torch.nn.functional.batch_norm(
                x, self.moving_mean.value, self.moving_variance.value, gamma, beta,
                training=False, eps=self.epsilon)
            moments = None
        elif self._torch_updates_in_place(x):
            # The kernel moves the statistics itself, in place, as torch.nn.BatchNorm2d's: the
            # same rule (unbiased variance), and none of the dozen small ops and Keras
            # assignments per layer and step of `_update_moving_statistics`.
            y, _, _ = torch.ops.aten.native_batch_norm(
                x, gamma, beta, self.moving_mean.value, self.moving_variance.value, True,
                1.0 - self.momentum, self.epsilon)
            moments = None
        else:
            y, mean, inverse_std = torch.ops.aten.native_batch_norm(
                x, gamma, beta, None, None, True, 0.0, self.epsilon)
            variance = inverse_std.pow(-2) - self.epsilon  # the biased batch variance
            if self.unbiased_variance:
                count = x.numel() // x.shape[1]
                variance = variance * (count / max(count - 1, 1))
            moments = (mean.detach(), variance.detach())
        return (y if axis == 1 else y.movedim(1, axis)), moments

    def _torch_updates_in_place(self, x):
        """Whether PyTorch's kernel may update the moving statistics in place: PyTorch's rule,
        more than one value per channel, and the variables' own storage (a stateless call,
        such as ``stateless_call``, gets their new values through its scope instead)."""
        from keras.src.backend.common.stateless_scope import in_stateless_scope

        return (self.unbiased_variance and x.numel() > x.shape[1] and not in_stateless_scope())

    def _tensorflow_batch_norm(self, inputs, training):
        """The normalised inputs and, in training, the batch mean and variance."""
        import tensorflow as tf

        channels = inputs.shape[self.axis]
        gamma, beta = self._scale_and_offset()
        gamma = tf.ones([channels], self.moving_mean.dtype) if gamma is None else gamma
        beta = tf.zeros([channels], self.moving_mean.dtype) if beta is None else beta
        data_format = "NHWC" if self.axis % 4 == 3 else "NCHW"
        if not training:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, self.moving_mean.value, self.moving_variance.value,
                epsilon=self.epsilon, data_format=data_format, is_training=False)
            return y, None
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format=data_format,
            is_training=True)
        if self.unbiased_variance:  # what the kernel returns
            return y, (mean, variance)
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, variance.dtype)
        return y, (mean, variance * ((count - 1.0) / count))


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


def call_sublayer(parent, layer, inputs, **kwargs):
    """``layer(inputs, **kwargs)``, for a built ``layer`` that ``parent.call`` calls.

    On PyTorch this is ``layer.call(inputs, **kwargs)`` where ``Layer.__call__`` would change
    nothing (see `calls_directly`); elsewhere, and on TensorFlow and JAX (which trace a step
    once, so the Python costs nothing per step), the usual ``layer(inputs, **kwargs)``.

    Example:
    >>> block = keras.layers.Layer(name="block")
    >>> relu = ReLU()
    >>> relu.build((3,))
    >>> x = keras.ops.convert_to_tensor([-1.0, 0.0, 2.0])
    >>> keras.ops.convert_to_numpy(call_sublayer(block, relu, x)).tolist()
    [0.0, 0.0, 2.0]
    """
    if calls_directly(parent, layer, inputs):
        return layer.call(inputs, **kwargs)
    return layer(inputs, **kwargs)


def calls_directly(parent, layer, inputs):
    """Whether `call_sublayer` skips ``Layer.__call__``: PyTorch, eager tensors, and nothing
    that ``__call__`` does applies. It would build the layer, convert the inputs to its dtype,
    enter its autocast scope (the parent's already holds when the dtype policies match), run
    quantized or rematerialised calls, add an activity-regularisation loss, and run
    ``torch.nn.Module`` hooks (its own or global ones) and ``torch.jit.trace``."""
    if keras.backend.backend() != "torch" or not layer.built:
        return False
    import torch

    return (isinstance(inputs, torch.Tensor)
            and layer.dtype_policy.name == parent.dtype_policy.name
            and keras.backend.standardize_dtype(inputs.dtype) == layer.input_dtype
            and getattr(layer, "quantization_mode", None) is None
            and remat_mode(layer) is None
            and layer.activity_regularizer is None
            and not torch_call_hooks(layer))
