"""Every private Keras and PyTorch attribute the package reads, here and nowhere else.

Checked against Keras 3.15.1 and PyTorch 2.13.0 (with JAX 0.10.2 and TensorFlow 2.21.0). A
new version may rename any of them; then this module is the one to change. Why each:

- `nested_layers`: Keras has no public walk of the layers inside a layer (``Model.layers``
  holds only the top level); ``Layer._flatten_layers`` is the walk Keras itself uses.
- `batch_moments`: `keras_resnets.layers.fast.BatchNormalization` reuses Keras' own batch
  mean and variance (``BatchNormalization._moments``, which handles every dtype and axis)
  and changes only the moving variance's update.
- `remat_mode` and `torch_call_hooks`: `keras_resnets.layers.fast.calls_directly` skips
  ``Layer.__call__`` only where it would do nothing, and nothing public says whether a layer
  rematerialises (``_remat_mode``), whether a `torch.nn.Module` hook is set, on the module
  (``_forward_hooks`` and its three siblings) or globally
  (``torch.nn.modules.module._has_any_global_hook``), or whether ``torch.jit.trace`` is
  tracing (``torch._C._get_tracing_state``).

Example:
>>> import keras
>>> outer = keras.Sequential([keras.layers.Dense(1, name="inner")], name="outer")
>>> model = keras.Sequential([keras.Input((2,)), outer])
>>> [layer.name for layer in nested_layers(model) if isinstance(layer, keras.layers.Dense)]
['inner']
>>> remat_mode(outer) is None
True
"""


def nested_layers(layer):
    """Every layer inside ``layer``, at any depth, in order (``layer`` itself left out)."""
    return list(layer._flatten_layers(include_self=False, recursive=True))


def batch_moments(layer, x):
    """The mean and (biased) variance of ``x`` over all axes but ``layer.axis``, as a Keras
    `keras.layers.BatchNormalization` computes them in training."""
    return layer._moments(x, None)


def remat_mode(layer):
    """The rematerialisation mode ``layer`` was made under (`keras.RematScope`), or None."""
    return getattr(layer, "_remat_mode", None)


def torch_call_hooks(layer):
    """On PyTorch: whether ``Layer.__call__`` of ``layer`` would run a hook (the module's own
    or a global one) or be recorded by ``torch.jit.trace``."""
    import torch
    from torch.nn.modules import module

    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks
                or layer._backward_pre_hooks or module._has_any_global_hook()
                or torch._C._get_tracing_state() is not None)
