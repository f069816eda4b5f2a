"""The papers' networks as `keras.Model` objects: each function builds one preset.

The torchvision family (ResNet-18..152, ResNeXt, Wide ResNet) also takes ``weights``: None,
a path to a torchvision state-dict file or ``"imagenet"`` (`keras_resnets.interop.weights`).

Example:
>>> from keras_resnets import count_params
>>> count_params(mnist_resnet())["trainable"]
117802
"""

from keras_resnets.design import presets
from keras_resnets.interop.weights import check_weights, load_weights
from keras_resnets.models.builder import build_resnet


def mnist_resnet(*args, **kwargs):
    """The lecture's MNIST ResNet as a model; arguments of `presets.mnist_resnet`."""
    return build_resnet(presets.mnist_resnet(*args, **kwargs))


def cifar_resnet(depth=20, **kwargs):
    """He et al.'s CIFAR ResNet-``depth`` as a model; arguments of `presets.cifar_resnet`."""
    return build_resnet(presets.cifar_resnet(depth, **kwargs))


def resnet18(*, weights=None, **kwargs):
    """ResNet-18 as a model; arguments of `presets.resnet`, and ``weights`` (`keras_resnets.interop.weights`)."""
    return _torchvision("resnet18", presets.resnet(18, **kwargs), weights)


def resnet34(*, weights=None, **kwargs):
    """ResNet-34 as a model; arguments of `presets.resnet`, and ``weights`` (`keras_resnets.interop.weights`)."""
    return _torchvision("resnet34", presets.resnet(34, **kwargs), weights)


def resnet50(*, weights=None, **kwargs):
    """ResNet-50 as a model; arguments of `presets.resnet`, and ``weights`` (`keras_resnets.interop.weights`)."""
    return _torchvision("resnet50", presets.resnet(50, **kwargs), weights)


def resnet101(*, weights=None, **kwargs):
    """ResNet-101 as a model; arguments of `presets.resnet`, and ``weights`` (`keras_resnets.interop.weights`)."""
    return _torchvision("resnet101", presets.resnet(101, **kwargs), weights)


def resnet152(*, weights=None, **kwargs):
    """ResNet-152 as a model; arguments of `presets.resnet`, and ``weights`` (`keras_resnets.interop.weights`)."""
    return _torchvision("resnet152", presets.resnet(152, **kwargs), weights)


def resnext50_32x4d(*, weights=None, **kwargs):
    """ResNeXt-50 32x4d as a model; arguments of `presets.resnext`, and ``weights``
    (`keras_resnets.interop.weights`)."""
    return _torchvision("resnext50_32x4d", presets.resnext(50, 32, 4, **kwargs), weights)


def resnext101_32x8d(*, weights=None, **kwargs):
    """ResNeXt-101 32x8d as a model; arguments of `presets.resnext`, and ``weights``
    (`keras_resnets.interop.weights`)."""
    return _torchvision("resnext101_32x8d", presets.resnext(101, 32, 8, **kwargs), weights)


def resnext101_64x4d(*, weights=None, **kwargs):
    """ResNeXt-101 64x4d as a model; arguments of `presets.resnext`, and ``weights``
    (`keras_resnets.interop.weights`)."""
    return _torchvision("resnext101_64x4d", presets.resnext(101, 64, 4, **kwargs), weights)


def wide_resnet50_2(*, weights=None, **kwargs):
    """Wide ResNet-50-2 as a model; arguments of `presets.wide_resnet`, and ``weights``
    (`keras_resnets.interop.weights`)."""
    return _torchvision("wide_resnet50_2", presets.wide_resnet(50, 2, **kwargs), weights)


def wide_resnet101_2(*, weights=None, **kwargs):
    """Wide ResNet-101-2 as a model; arguments of `presets.wide_resnet`, and ``weights``
    (`keras_resnets.interop.weights`)."""
    return _torchvision("wide_resnet101_2", presets.wide_resnet(101, 2, **kwargs), weights)


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
    "cifar_resnet",
    "cifar_wide_resnet",
    "crelu_net",
    "highway_net",
    "mnist_resnet",
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
    "wide_resnet101_2",
    "wide_resnet50_2",
]


def _torchvision(name, architecture, weights):
    """``build_resnet(architecture)`` with ``weights``: ``None`` (random), ``"imagenet"`` or the
    path of a torchvision state-dict file (`keras_resnets.interop.weights.load_weights`)."""
    check_weights(weights, architecture)
    model = build_resnet(architecture)
    if weights is not None:
        load_weights(model, name, weights, include_top=architecture.include_top)
    return model
