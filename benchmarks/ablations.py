"""Library changes measured against their absence, in one run (``--ablations``).

A change to keras_resnets that makes it faster is measured twice in the same benchmark run:
ours as it is, and ours with the change undone here, by monkeypatching inside one worker
process. The gap between the two rows is what the change gave.

- ``keras_relu`` (JAX): `keras_resnets.layers.fast.ReLU` computes ``max(x, 0)`` again instead
  of a select; XLA:CPU then duplicates each block's elementwise tail into every consumer.
- ``keras_batch_norm`` (TensorFlow, PyTorch): `keras_resnets.layers.fast.BatchNormalization`
  trains through Keras' composite of ``moments`` and elementwise ops again, not the fused kernel.
- ``keras_conv`` (PyTorch): `keras_resnets.layers.fast.Conv2D` convolves through Keras' own
  path again: two copies of a channels-last input and a separate bias pass.
- ``keras_sublayer_calls`` (PyTorch): blocks call their sub-layers through ``Layer.__call__``
  again, not `keras_resnets.layers.fast.call_sublayer`'s direct ``call``.
- ``keras_moving_statistics`` (PyTorch): the fused batch norm moves its statistics through
  Keras' assignments again, not inside PyTorch's kernel, in place.
"""

ABLATIONS = {
    "keras_relu": {"backends": ("jax",), "title": "ReLU as max(x, 0), as keras.layers.ReLU"},
    "keras_batch_norm": {"backends": ("tensorflow", "torch"),
                         "title": "batch normalisation through Keras' composite ops"},
    "keras_conv": {"backends": ("torch",), "title": "convolution through Keras' own path"},
    "keras_sublayer_calls": {"backends": ("torch",),
                             "title": "sub-layers called through Layer.__call__"},
    "keras_moving_statistics": {"backends": ("torch",),
                                "title": "moving statistics through Keras' assignments"},
}


def apply(name):
    """Undoes the change ``name`` in this process (call before building the model)."""
    from keras import ops

    from keras_resnets.layers import fast

    if name == "keras_relu":
        fast.ReLU.call = lambda self, inputs: ops.relu(inputs)
    elif name == "keras_batch_norm":
        fast.BatchNormalization.fuses = lambda self, inputs, mask=None: False
    elif name == "keras_conv":
        fast.Conv2D.torch_padding = lambda self, inputs: None
    elif name == "keras_sublayer_calls":
        fast.calls_directly = lambda parent, layer, inputs: False
    elif name == "keras_moving_statistics":
        fast.BatchNormalization._torch_updates_in_place = lambda self, x: False
    else:
        raise ValueError(f"ablation={name!r} is not known; choose one of {sorted(ABLATIONS)}.")
