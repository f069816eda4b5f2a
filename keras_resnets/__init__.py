"""keras_resnets: the residual networks of the lecture as portable Keras 3 layers and builders.

Runs unchanged on TensorFlow, JAX and PyTorch (``KERAS_BACKEND``). Importing the package first,
before Keras or the backend, switches on the fastest measured CPU settings
(`keras_resnets.environment`); the names below load Keras when first used, so the command
line answers ``--help`` without starting a backend. The layers register themselves for
``keras.saving.load_model`` when Keras is already loaded, or once any model or layer of the
package is used; otherwise ``import keras_resnets.layers`` does it.

Example:
>>> import keras_resnets
>>> model = keras_resnets.mnist_resnet()
>>> keras_resnets.count_params(model)["trainable"]
117802
"""

import importlib
import importlib.util
import sys

from keras_resnets.environment import use_fast_cpu_settings

use_fast_cpu_settings()  # before anything imports the backend: it reads them once, at import

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use (PEP 562).
_EXPORTS = {
    "Architecture": "architecture", "Stage": "architecture", "Stem": "architecture",
    "build_resnet": "builders", "LooksLinear": "initializers",
    "PRESETS": "presets", "get_preset": "presets", "Run": "runs", "RunStore": "runs",
    "count_params": "summary", "format_summary": "summary", "parameter_table": "summary",
    "stage_table": "summary", "Recipe": "training", "resume": "training", "train": "training",
}

if "keras" in sys.modules:  # Keras is loaded anyway: register the layers for load_model now
    importlib.import_module(f"{__name__}.layers")


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # once
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        return importlib.import_module(f"{__name__}.{name}")  # keras_resnets.layers, ...
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


def _model(preset, *args, **kwargs):
    from keras_resnets import builders, presets

    return builders.build_resnet(getattr(presets, preset)(*args, **kwargs))


def mnist_resnet(*args, **kwargs):
    """The lecture's MNIST ResNet as a model; arguments of `presets.mnist_resnet`."""
    return _model("mnist_resnet", *args, **kwargs)


def cifar_resnet(depth=20, **kwargs):
    """He et al.'s CIFAR ResNet-``depth`` as a model; arguments of `presets.cifar_resnet`."""
    return _model("cifar_resnet", depth, **kwargs)


def resnet18(**kwargs):
    """ResNet-18 as a model; arguments of `presets.resnet`."""
    return _model("resnet", 18, **kwargs)


def resnet34(**kwargs):
    """ResNet-34 as a model; arguments of `presets.resnet`."""
    return _model("resnet", 34, **kwargs)


def resnet50(**kwargs):
    """ResNet-50 as a model; arguments of `presets.resnet`."""
    return _model("resnet", 50, **kwargs)


def resnet101(**kwargs):
    """ResNet-101 as a model; arguments of `presets.resnet`."""
    return _model("resnet", 101, **kwargs)


def resnet152(**kwargs):
    """ResNet-152 as a model; arguments of `presets.resnet`."""
    return _model("resnet", 152, **kwargs)


def highway_net(*args, **kwargs):
    """A highway network as a model; arguments of `presets.highway_net`."""
    return _model("highway_net", *args, **kwargs)


def crelu_net(*args, **kwargs):
    """A CReLU + looks-linear network as a model; arguments of `presets.crelu_net`."""
    return _model("crelu_net", *args, **kwargs)


__all__ = [
    "PRESETS",
    "Architecture",
    "LooksLinear",
    "Recipe",
    "Run",
    "RunStore",
    "Stage",
    "Stem",
    "build_resnet",
    "cifar_resnet",
    "count_params",
    "crelu_net",
    "format_summary",
    "get_preset",
    "highway_net",
    "layers",
    "mnist_resnet",
    "parameter_table",
    "presets",
    "resnet101",
    "resnet152",
    "resnet18",
    "resnet34",
    "resnet50",
    "resume",
    "stage_table",
    "train",
]
