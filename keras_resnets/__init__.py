"""keras_resnets: the residual networks of the lecture as portable Keras 3 layers and builders.

Runs unchanged on TensorFlow, JAX and PyTorch (``KERAS_BACKEND``).

Example:
>>> import keras_resnets
>>> model = keras_resnets.mnist_resnet()
>>> keras_resnets.count_params(model)["trainable"]
117802
"""

import sys

from keras_resnets.environment import check_backend

try:  # before Keras is imported: its own error is a long traceback
    check_backend()
except ValueError as error:
    if sys.argv[:1] == ["-m"]:  # `python -m keras_resnets` is importing the package
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    raise

from keras_resnets import layers, presets  # noqa: E402
from keras_resnets.architecture import Architecture, Stage, Stem  # noqa: E402
from keras_resnets.builders import build_resnet  # noqa: E402
from keras_resnets.initializers import LooksLinear  # noqa: E402
from keras_resnets.limits import Limits, estimate, set_limits  # noqa: E402
from keras_resnets.presets import PRESETS, get_preset  # noqa: E402
from keras_resnets.runs import Run, RunStore  # noqa: E402
from keras_resnets.summary import count_params, format_summary, parameter_table, stage_table  # noqa: E402
from keras_resnets.training import Recipe, resume, train  # noqa: E402

__version__ = "0.1.0"


def mnist_resnet(*args, **kwargs):
    """The lecture's MNIST ResNet as a model; arguments of `presets.mnist_resnet`."""
    return build_resnet(presets.mnist_resnet(*args, **kwargs))


def cifar_resnet(depth=20, **kwargs):
    """He et al.'s CIFAR ResNet-``depth`` as a model; arguments of `presets.cifar_resnet`."""
    return build_resnet(presets.cifar_resnet(depth, **kwargs))


def resnet18(**kwargs):
    """ResNet-18 as a model; arguments of `presets.resnet`."""
    return build_resnet(presets.resnet(18, **kwargs))


def resnet34(**kwargs):
    """ResNet-34 as a model; arguments of `presets.resnet`."""
    return build_resnet(presets.resnet(34, **kwargs))


def resnet50(**kwargs):
    """ResNet-50 as a model; arguments of `presets.resnet`."""
    return build_resnet(presets.resnet(50, **kwargs))


def resnet101(**kwargs):
    """ResNet-101 as a model; arguments of `presets.resnet`."""
    return build_resnet(presets.resnet(101, **kwargs))


def resnet152(**kwargs):
    """ResNet-152 as a model; arguments of `presets.resnet`."""
    return build_resnet(presets.resnet(152, **kwargs))


def resnext50_32x4d(**kwargs):
    """ResNeXt-50 32x4d as a model; arguments of `presets.resnext`."""
    return build_resnet(presets.resnext(50, 32, 4, **kwargs))


def resnext101_32x8d(**kwargs):
    """ResNeXt-101 32x8d as a model; arguments of `presets.resnext`."""
    return build_resnet(presets.resnext(101, 32, 8, **kwargs))


def resnext101_64x4d(**kwargs):
    """ResNeXt-101 64x4d as a model; arguments of `presets.resnext`."""
    return build_resnet(presets.resnext(101, 64, 4, **kwargs))


def wide_resnet50_2(**kwargs):
    """Wide ResNet-50-2 as a model; arguments of `presets.wide_resnet`."""
    return build_resnet(presets.wide_resnet(50, 2, **kwargs))


def wide_resnet101_2(**kwargs):
    """Wide ResNet-101-2 as a model; arguments of `presets.wide_resnet`."""
    return build_resnet(presets.wide_resnet(101, 2, **kwargs))


def resnet18d(**kwargs):
    """ResNet-18-D (deep stem, average-pool downsampling) as a model; arguments of
    `presets.resnet_d`."""
    return build_resnet(presets.resnet_d(18, **kwargs))


def resnet34d(**kwargs):
    """ResNet-34-D (deep stem, average-pool downsampling) as a model; arguments of
    `presets.resnet_d`."""
    return build_resnet(presets.resnet_d(34, **kwargs))


def resnet50d(**kwargs):
    """ResNet-50-D (deep stem, average-pool downsampling) as a model; arguments of
    `presets.resnet_d`."""
    return build_resnet(presets.resnet_d(50, **kwargs))


def resnet101d(**kwargs):
    """ResNet-101-D (deep stem, average-pool downsampling) as a model; arguments of
    `presets.resnet_d`."""
    return build_resnet(presets.resnet_d(101, **kwargs))


def resnet152d(**kwargs):
    """ResNet-152-D (deep stem, average-pool downsampling) as a model; arguments of
    `presets.resnet_d`."""
    return build_resnet(presets.resnet_d(152, **kwargs))


def cifar_wide_resnet(depth=28, widen_factor=10, dropout=0.0, **kwargs):
    """Zagoruyko & Komodakis' WRN-``depth``-``widen_factor`` as a model; arguments of
    `presets.cifar_wide_resnet`."""
    return build_resnet(presets.cifar_wide_resnet(depth, widen_factor, dropout, **kwargs))


def highway_net(*args, **kwargs):
    """A highway network as a model; arguments of `presets.highway_net`."""
    return build_resnet(presets.highway_net(*args, **kwargs))


def crelu_net(*args, **kwargs):
    """A CReLU + looks-linear network as a model; arguments of `presets.crelu_net`."""
    return build_resnet(presets.crelu_net(*args, **kwargs))


__all__ = [
    "PRESETS",
    "Architecture",
    "Limits",
    "LooksLinear",
    "Recipe",
    "Run",
    "RunStore",
    "Stage",
    "Stem",
    "build_resnet",
    "cifar_resnet",
    "cifar_wide_resnet",
    "count_params",
    "crelu_net",
    "estimate",
    "format_summary",
    "get_preset",
    "highway_net",
    "layers",
    "mnist_resnet",
    "parameter_table",
    "presets",
    "resnet101",
    "resnet101d",
    "resnet152",
    "resnet152d",
    "resnet18",
    "resnet18d",
    "resnet34",
    "resnet34d",
    "resnet50",
    "resnet50d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "resnext50_32x4d",
    "resume",
    "set_limits",
    "stage_table",
    "train",
    "wide_resnet101_2",
    "wide_resnet50_2",
]
