"""Proposed library changes, measured before they are made (``--proposals``).

Each proposal is applied by monkeypatching, inside one benchmark worker process only, so the
benchmark can put "ours as it would be" next to "ours as it is" in the same run. Nothing here
is imported by keras_resnets; when a proposal lands in the library, its entry goes away.

- ``where_relu`` (JAX): the ReLUs of the blocks as ``ops.where(x <= 0, 0, x)``. XLA:CPU
  duplicates an effectively-unary op (``max(x, 0)``) with its whole producer chain into every
  consumer; through the residual stream that chain is every earlier block, so the work grows
  with the square of the depth. A ``select`` has two full-size operands, so XLA materialises it
  once. Same values, NaN and gradient at 0 as ``relu``; slower on eager backends (two ops).
- ``fused_batch_norm`` (PyTorch): the training step of `BatchNormalization` through
  ``torch.nn.functional.batch_norm`` (one fused kernel, channels-last aware) instead of Keras'
  composite of ``ops.moments`` and five elementwise ops. (torch's running variance is the
  unbiased one; the sketch keeps that difference.)
"""

PROPOSALS = {
    # With the duplication gone, XLA's loop fusion pays again: keep it (only YNN flags).
    "where_relu": {"backends": ("jax",),
                   "title": "ReLU as ops.where(x <= 0, 0, x) in keras_resnets' layers",
                   "env": {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type="
                                        "LIBRARY_FUSION_TYPE_REDUCE"}},
    "fused_batch_norm": {"backends": ("torch",),
                         "title": "BatchNormalization training through torch's fused batch_norm"},
}


def apply(name):
    """Applies the proposal ``name`` to this process (call before building the model)."""
    if name == "where_relu":
        _apply_where_relu()
    elif name == "fused_batch_norm":
        _apply_fused_batch_norm()
    else:
        raise ValueError(f"proposal={name!r} is not known; choose one of {sorted(PROPOSALS)}.")


def _apply_where_relu():
    import keras
    from keras import ops

    import keras_resnets.builders as builders
    import keras_resnets.layers.activations as activations
    import keras_resnets.layers.blocks as blocks

    class WhereReLU(keras.layers.Layer):
        def call(self, x):
            return ops.where(ops.less_equal(x, 0), ops.cast(0, x.dtype), x)

        def compute_output_shape(self, input_shape):
            return input_shape

    original = activations.make_activation

    def make_activation(activation, axis=None, name=None):
        if activation == "relu":
            return WhereReLU(name=name)
        return original(activation, axis, name)

    for module in (activations, blocks, builders):
        module.make_activation = make_activation


def _apply_fused_batch_norm():
    import torch.nn.functional as F
    from keras.src.layers.normalization import batch_normalization as module

    original = module.BatchNormalization.call

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm or self.synchronized:
            return original(self, inputs, training=training, mask=mask)
        axis = self.axis if self.axis >= 0 else inputs.ndim + self.axis
        x = inputs if axis == 1 else inputs.movedim(axis, 1)
        y = F.batch_norm(
            x, self.moving_mean.value, self.moving_variance.value,
            weight=self.gamma.value if self.scale else None,
            bias=self.beta.value if self.center else None,
            training=True, momentum=1.0 - self.momentum, eps=self.epsilon,
        )
        return y if axis == 1 else y.movedim(1, axis)

    module.BatchNormalization.call = call
