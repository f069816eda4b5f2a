"""ReLU and batch normalisation as Keras computes them, on each backend's fastest path.

Both keep Keras' weights, statistics and results; only how a backend computes them changes
(benchmarks/RESULTS.md measures each change):

- `ReLU`: on JAX, ``where(x <= 0, 0, x)`` instead of ``max(x, 0)``. XLA:CPU fuses an
  effectively unary op such as ``max(x, 0)`` into every consumer together with its producers;
  along a residual stream those are all the earlier blocks, so the work grows with the square
  of the depth. A select of two full-size operands is computed once.
- `BatchNormalization`: on PyTorch, a training step runs one fused kernel
  (``torch.ops.aten.native_batch_norm``) instead of Keras' composite of ``moments`` and five
  elementwise ops. The moving statistics follow Keras (the biased batch variance).
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
    """`keras.layers.BatchNormalization`, with one fused kernel for float32 training steps on
    PyTorch (see the module's docstring); the same weights and the same statistics.

    Example:
    >>> bn = BatchNormalization(momentum=0.5)
    >>> y = bn(keras.ops.convert_to_tensor([[1.0], [3.0]]), training=True)
    >>> keras.ops.convert_to_numpy(y)[:, 0].round(3).tolist()
    [-1.0, 1.0]
    >>> [float(bn.moving_mean[0]), float(bn.moving_variance[0])]
    [1.0, 1.0]
    """

    def fuses(self, inputs, training, mask=None):
        """Whether a call on ``inputs`` takes the fused path."""
        return (keras.backend.backend() == "torch" and bool(training) and self.trainable
                and mask is None and not self.synchronized
                and keras.backend.standardize_dtype(inputs.dtype) == self.moving_mean.dtype)

    def call(self, inputs, training=None, mask=None):
        if not self.fuses(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch

        axis = self.axis % inputs.ndim
        x = inputs if axis == 1 else inputs.movedim(axis, 1)
        y, mean, inverse_std = torch.ops.aten.native_batch_norm(
            x, self.gamma.value if self.scale else None, self.beta.value if self.center else None,
            None, None, True, 0.0, self.epsilon)
        with torch.no_grad():
            variance = inverse_std.pow(-2) - self.epsilon
            for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
                moving.assign(moving.value * self.momentum + batch * (1.0 - self.momentum))
        return y if axis == 1 else y.movedim(1, axis)
