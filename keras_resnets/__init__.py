"""keras_resnets: the residual networks of the lecture as portable Keras 3 layers and builders.

Runs unchanged on TensorFlow, JAX and PyTorch (``KERAS_BACKEND``). Importing the package
before Keras or the backend switches on the fastest measured CPU settings
(`keras_resnets.environment`). The import then loads every name below, which also registers
the layers for ``keras.saving.load_model``; only the command line (``python -m keras_resnets``,
``keras-resnets``) loads them on first use, so that ``--help`` starts no backend.

Example:
>>> import keras_resnets
>>> model = keras_resnets.mnist_resnet()
>>> keras_resnets.count_params(model)["trainable"]
117802
"""

import importlib
import os
import sys

from keras_resnets.environment import check_backend, use_fast_cpu_settings

__version__ = "0.1.0"

_COMMAND_LINE = sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0]) == "keras-resnets"

try:  # before Keras is imported: its own error is a long traceback
    check_backend()
except ValueError as error:
    if _COMMAND_LINE:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    raise
use_fast_cpu_settings()  # before anything imports the backend: it reads them once, at import

_MODELS = (
    "cifar_resnet", "cifar_wide_resnet", "crelu_net", "highway_net", "mnist_resnet", "resnet18",
    "resnet18d", "resnet34", "resnet34d", "resnet50", "resnet50d", "resnet101", "resnet101d",
    "resnet152", "resnet152d", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
    "wide_resnet50_2", "wide_resnet101_2",
)
# Public name -> the module that defines it.
_EXPORTS = {
    "Architecture": "architecture", "Stage": "architecture", "Stem": "architecture",
    "build_resnet": "builders", "feature_extractor": "features",
    "decode_predictions": "imagenet", "preprocess_input": "imagenet",
    "LooksLinear": "initializers", "Limits": "limits", "estimate": "limits",
    "set_limits": "limits", "PRESETS": "presets", "get_preset": "presets", "Run": "runs",
    "RunStore": "runs", "count_params": "summary", "format_summary": "summary",
    "parameter_table": "summary", "stage_table": "summary",
    "IMAGENET_WEIGHTS": "torchvision_weights", "Recipe": "training", "resume": "training",
    "train": "training", **dict.fromkeys(_MODELS, "models"),
}
_SUBPACKAGES = ("interop", "layers", "presets")
__all__ = sorted([*_EXPORTS, *_SUBPACKAGES])


def __getattr__(name):
    """Loads a public name on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})


if not _COMMAND_LINE:
    for _name in __all__:
        __getattr__(_name)
