"""keras_resnets: the residual networks of the lecture as portable Keras 3 layers and builders.

Runs unchanged on TensorFlow, JAX and PyTorch (``KERAS_BACKEND``). Importing the package
before Keras or the backend switches on the fastest measured CPU settings
(`keras_resnets.runtime.environment`). The import then loads every name below, which also registers
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

from keras_resnets.runtime.environment import check_backend, use_fast_cpu_settings

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
    "Architecture": "design.architecture", "Stage": "design.architecture",
    "Stem": "design.architecture", "Limits": "design.limits", "estimate": "design.limits",
    "set_limits": "design.limits", "PRESETS": "design.presets", "get_preset": "design.presets",
    "LooksLinear": "layers.initializers", "build_resnet": "models.builder",
    "feature_extractor": "models.features", "count_params": "models.summary",
    "format_summary": "models.summary", "parameter_table": "models.summary",
    "stage_table": "models.summary", "decode_predictions": "interop.imagenet",
    "preprocess_input": "interop.imagenet", "IMAGENET_WEIGHTS": "interop.weights",
    "Run": "runs.store", "RunStore": "runs.store", "load_pretrained": "runs.pretrained",
    "Recipe": "training.recipe", "resume": "training.loop", "train": "training.loop",
    **dict.fromkeys(_MODELS, "models.networks"),
}
# Subpackages loaded with the package, and `presets`, which the README imports from the top.
_SUBPACKAGES = {"design": "design", "interop": "interop", "layers": "layers", "models": "models",
                "presets": "design.presets"}
__all__ = sorted([*_EXPORTS, *_SUBPACKAGES])


def __getattr__(name):
    """Loads a public name on first use (PEP 562)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{_SUBPACKAGES[name]}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})


if not _COMMAND_LINE:
    for _name in __all__:
        __getattr__(_name)
