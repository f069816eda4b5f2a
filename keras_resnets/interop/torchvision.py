"""Weights in and out of torchvision: our models' variables under torchvision's state-dict keys.

The mapping from our layer names to torchvision's module names lives here and only here
(`torchvision_key`). It covers the torchvision form of the family: post-activation basic or
bottleneck blocks with option-B projections, no convolution biases, a 7x7 stem with max
pooling (``resnet18..152``, ResNeXt and Wide ResNet); a model of another form is refused.

Convolution kernels are ``(kh, kw, in, out)`` in Keras and ``(out, in, kh, kw)`` in torch in
either data format, so weights move between data formats and backends unchanged.

Example:
>>> from keras_resnets import Stage, build_resnet, presets
>>> model = build_resnet(presets.resnet(  # ResNet-18's form, narrower and shorter
...     18, input_shape=(32, 32, 3), classes=10, stages=(Stage(1, 16), Stage(1, 32, 2))))
>>> state = to_torchvision(model)
>>> state["layer2.0.downsample.0.weight"].shape
(32, 16, 1, 1)
>>> from_torchvision(state, model)  # torchvision's own state dicts load the same way
>>> from_torchvision({**state, "fc.weight": state["fc.weight"][:5]}, model)
Traceback (most recent call last):
...
ValueError: fc.weight: expected shape (10, 32), found (5, 32).
"""

import os
import re

import keras
import numpy as np

from keras_resnets.design.names import parse_block_name
from keras_resnets.runtime.internals import nested_layers

# Our leaf names -> torchvision's parameter and buffer names.
_LEAVES = {
    "kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
    "moving_mean": "running_mean", "moving_variance": "running_var",
}
_MODULES = {"stem_conv": "conv1", "stem_bn": "bn1", "classifier": "fc"}
_SUBLAYER = re.compile(r"conv\d+|bn\d+|shortcut/projection|shortcut/bn")  # inside a block
_SHORTCUT = {"shortcut/projection": "downsample.0", "shortcut/bn": "downsample.1"}
CLASSIFIER = "fc"
"""The prefix of the classifier's keys (skipped when a model has no top)."""


def torchvision_key(path):
    """The torchvision state-dict key of one of our variable paths, or ``None``.

    Example:
    >>> torchvision_key("stage3_block2/shortcut/bn/moving_variance")
    'layer3.1.downsample.1.running_var'
    >>> torchvision_key("stem_conv/bias") is None
    True
    """
    layer, _, leaf = path.rpartition("/")
    if leaf not in _LEAVES or (leaf == "bias" and layer != "classifier"):
        return None
    block, _, sub = layer.partition("/")
    stage_index = parse_block_name(block)
    if stage_index and _SUBLAYER.fullmatch(sub):
        stage, index = stage_index
        module = f"layer{stage}.{index - 1}.{_SHORTCUT.get(sub, sub)}"
    elif layer in _MODULES:
        module = _MODULES[layer]
    else:
        return None
    return f"{module}.{_LEAVES[leaf]}"


def _torch_shape(shape):
    shape = tuple(shape)
    if len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    return shape[::-1] if len(shape) == 2 else shape


def _to_torch_layout(value):
    if value.ndim == 4:  # (kh, kw, in, out) -> (out, in, kh, kw)
        return value.transpose(3, 2, 0, 1)
    return value.T if value.ndim == 2 else value


def _from_torch_layout(value):
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value.T if value.ndim == 2 else value


_BLOCK_FORM = {"preactivation": False, "shortcut": "B", "residual": True, "use_bias": False,
               "batch_norm": True, "activation": "relu", "avg_down": False,
               "shortcut_batch_norm": True}
"""Torchvision's blocks; stochastic depth and dropout have no weights and are allowed."""


def _check_form(model):
    """Raises a `ValueError` unless ``model`` has torchvision's form (see the module)."""
    names = {layer.name: layer for layer in model.layers}
    stem = names.get("stem_conv")
    if (stem is None or stem.kernel_size != (7, 7) or stem.strides != (2, 2)
            or "stem_pool" not in names):
        raise ValueError(f"model {model.name!r} has no 7x7 stride-2 stem_conv with stem_pool: "
                         "torchvision's ResNets have one, so this model has no torchvision "
                         "state dict.")
    for layer in nested_layers(model):
        if not hasattr(layer, "nb_channels"):  # only our residual blocks have it
            continue
        for name, wanted in _BLOCK_FORM.items():
            if getattr(layer, name) != wanted:
                raise ValueError(
                    f"{layer.name} has {name}={getattr(layer, name)!r}; torchvision's ResNets "
                    f"have {name}={wanted!r}, so this model has no torchvision state dict.")


def _pairs(model):
    """``[(variable, torchvision key)]`` for every variable of ``model``."""
    _check_form(model)
    pairs = []
    for variable in model.weights:
        if "seed_generator" in variable.path:  # stochastic depth's state, not a weight
            continue
        key = torchvision_key(variable.path)
        if key is None:
            raise ValueError(
                f"{variable.path} has no torchvision counterpart: this model is not of "
                "torchvision's ResNet form (see keras_resnets.interop.torchvision).")
        pairs.append((variable, key))
    return pairs


def _tracked(pairs):
    """The ``num_batches_tracked`` keys of the batch norms among ``pairs``."""
    return [key.replace(".running_mean", ".num_batches_tracked")
            for _, key in pairs if key.endswith(".running_mean")]


def to_torchvision(model):
    """The state dict of ``model`` as torchvision names it: ``{key: numpy array}``.

    Loads with ``torchvision_model.load_state_dict({k: torch.from_numpy(v) ...})`` (strict).
    Keras does not count batches, so every ``num_batches_tracked`` is 0.

    Args:
        model: a model of torchvision's form (e.g. ``keras_resnets.resnet50()``).

    Raises:
        ValueError: the model is of another form; the message names the first variable or
            block that has no torchvision counterpart.
    """
    state = {}
    for variable, key in _pairs(model):
        value = keras.ops.convert_to_numpy(variable)
        state[key] = np.ascontiguousarray(_to_torch_layout(value))
        if key.endswith(".running_var"):
            state[key.replace(".running_var", ".num_batches_tracked")] = np.array(0, np.int64)
    return state


def from_torchvision(state_dict, model):
    """Loads a torchvision state dict into ``model``: all of it, or nothing.

    Args:
        state_dict: ``{key: tensor or array}`` as ``torchvision_model.state_dict()`` or
            `to_torchvision` give, or the path of a ``.pth``/``.pt`` file saved with
            ``torch.save`` (read with torch when it is installed, else without it) or of an
            ``.npz`` file of such a dict. ``num_batches_tracked`` entries may be absent.
        model: a model of torchvision's form whose shapes match the state dict.

    Raises:
        ValueError: a key is missing, extra or of another shape (the message names the first
            one with the expected and found shapes), or the model is not of torchvision's
            form. Nothing has been assigned then.
    """
    if isinstance(state_dict, (str, os.PathLike)):
        state_dict = read_state_dict(state_dict)
    pairs = _pairs(model)
    values = []
    for variable, key in pairs:
        expected = _torch_shape(variable.shape)
        if key not in state_dict:
            raise ValueError(f"{key}: missing from the state dict (expected shape {expected}).")
        value = _numpy(state_dict[key])
        if value.shape != expected:
            raise ValueError(f"{key}: expected shape {expected}, found {value.shape}.")
        values.append(_from_torch_layout(value))
    known = {key for _, key in pairs} | set(_tracked(pairs))
    extra = [key for key in state_dict if key not in known]
    if extra:
        raise ValueError(f"{extra[0]}: not a key of this model (found shape "
                         f"{_numpy(state_dict[extra[0]]).shape}); {len(extra)} extra key(s).")
    for (variable, _), value in zip(pairs, values):
        variable.assign(value.astype(variable.dtype))


def _numpy(value):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def without_classifier(state_dict):
    """``state_dict`` without the classifier's keys, for a model built with ``include_top=False``.

    Example:
    >>> sorted(without_classifier({"fc.weight": 0, "fc.bias": 0, "conv1.weight": 0}))
    ['conv1.weight']
    """
    return {k: v for k, v in state_dict.items() if not k.startswith(f"{CLASSIFIER}.")}


def read_state_dict(path):
    """The state dict in a ``.pth``/``.pt`` file (``torch.save``) or an ``.npz`` file.

    A torch file is read with ``torch.load(weights_only=True)`` when torch is installed and
    with `keras_resnets.interop.torchfile` otherwise, so TensorFlow and JAX users need no torch.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"weights={path!r}: no such file.")
    if path.endswith(".npz"):
        with np.load(path) as data:
            return dict(data)
    try:
        import torch
    except ImportError:
        from keras_resnets.interop import torchfile

        return torchfile.load(path)
    return torch.load(path, map_location="cpu", weights_only=True)
