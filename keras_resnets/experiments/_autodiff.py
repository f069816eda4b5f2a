"""Gradients with respect to inputs, on every backend: the only module that imports one.

`keras.ops` has no backend-agnostic autodiff, so `input_gradient` has one short branch per
backend (`tf.GradientTape`, `jax.grad`, `torch.autograd`).
"""

import keras
import numpy as np


def input_gradient(fn, x):
    """The gradient of ``sum(fn(x))`` with respect to ``x``, as a NumPy array.

    ``fn`` is a model or any function of Keras ops and layers. It runs in a
    `keras.StatelessScope`, so no variable changes (batch-norm statistics included). A
    vector-Jacobian product ``v^T J`` is ``input_gradient(lambda h: fn(h) * v, x)``.

    Args:
        fn: a callable from a tensor to a tensor.
        x: the input, anything `keras.ops.convert_to_tensor` takes.

    Returns:
        A float NumPy array of the shape of ``x``.

    Example:
    >>> input_gradient(lambda x: x**2, np.array([1.0, -2.0], "float32")).tolist()
    [2.0, -4.0]
    """
    x = keras.ops.convert_to_tensor(np.asarray(keras.ops.convert_to_numpy(x), "float32"))

    def total(inputs):
        with keras.StatelessScope():
            return keras.ops.sum(fn(inputs))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            value = total(x)
        gradient = tape.gradient(value, x)
    elif backend == "jax":
        import jax

        gradient = jax.grad(total)(x)
    elif backend == "torch":
        import torch

        x = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(total(x), x)
    else:
        raise ValueError(
            f"KERAS_BACKEND={backend!r} is not supported: 'tensorflow', 'jax' or 'torch'."
        )
    return keras.ops.convert_to_numpy(gradient)
