"""Presets: architecture descriptions of the papers' networks, each a plain `Architecture`.

Every preset takes keras.applications-style ``include_top``, ``input_shape``, ``classes`` and
``pooling``, ``residual=False`` for its plain twin, and any other `Architecture` field as a
keyword override (``preactivation=True``, ``shortcut="C"``, ``final_survival_probability=0.5``).

Example:
>>> resnet(50).stages[2]
Stage(blocks=6, channels=256, strides=2, kernel_size=3)
>>> sorted(PRESETS)[:3]
['cifar_resnet110', 'cifar_resnet20', 'cifar_resnet32']
"""

import functools

from keras_resnets.design.architecture import Architecture, Stage, Stem
from keras_resnets.design.validation import check_choice, check_int, fail, is_int

IMAGENET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def _name(base, residual):
    return f"{base}_resnet" if residual else f"{base}_plain"


def mnist_resnet(nb_channels=16, kernel_size=3, nb_blocks=25, *, residual=True, include_top=True,
                 input_shape=(28, 28, 1), classes=10, pooling="avg", **overrides):
    """The lecture's MNIST network: 1x1 ``conv0`` + ReLU, ``nb_blocks`` `ResBlock`, 28x28
    average pooling, ReLU, a linear classifier; convolutions with biases.

    With the defaults (25 blocks, 16 channels, 3x3) it has 117,802 trainable parameters.
    """
    return Architecture.from_dict({
        "name": _name("mnist", residual),
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=nb_channels, kernel_size=1, use_bias=True,
                     batch_norm=False, activation=True),
        "stages": (Stage(blocks=nb_blocks, channels=nb_channels, kernel_size=kernel_size),),
        "block": "basic",
        "use_bias": True,
        "residual": residual,
        "pooling": pooling,
        "pool_activation": True,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


def resnet(depth=50, *, residual=True, include_top=True, input_shape=(224, 224, 3), classes=1000,
           pooling="avg", **overrides):
    """ResNet-18/34/50/101/152 of He et al. (2015), Table 1, with option-B shortcuts.

    Parameter counts equal torchvision's (11,689,512 trainable for ResNet-18).
    """
    if not is_int(depth) or depth not in IMAGENET_LAYOUTS:
        fail("depth", depth, f"one of {sorted(IMAGENET_LAYOUTS)}")
    block, counts = IMAGENET_LAYOUTS[depth]
    stages = tuple(
        Stage(blocks=n, channels=64 * 2**i, strides=1 if i == 0 else 2)
        for i, n in enumerate(counts)
    )
    return Architecture.from_dict({
        "name": _name(f"imagenet{depth}", residual),
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=64, kernel_size=7, strides=2, pool=True),
        "stages": stages,
        "block": block,
        "shortcut": "B",
        "residual": residual,
        "pooling": pooling,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


def resnext(depth=50, groups=32, width_per_group=4, *, residual=True, **kwargs):
    """ResNeXt-``depth`` (Xie et al. 2017): `resnet` bottlenecks whose 3x3 convolution has
    ``groups`` groups of ``width_per_group`` channels per 64 (torchvision's counts:
    25,028,904 trainable for ``resnext50_32x4d``); ``kwargs`` as for `resnet`."""
    base = f"resnext{depth}_{groups}x{width_per_group}d"
    return resnet(depth, residual=residual, **{
        "name": base if residual else f"{base}_plain", "groups": groups,
        "width_per_group": width_per_group, **kwargs})


def wide_resnet(depth=50, widen_factor=2, *, residual=True, **kwargs):
    """Wide ResNet-``depth``-``widen_factor`` in torchvision's ImageNet form: `resnet`
    bottlenecks ``widen_factor`` times wider inside (68,883,240 trainable for
    ``wide_resnet50_2``); ``kwargs`` as for `resnet`."""
    base = f"wide_resnet{depth}_{widen_factor}"
    return resnet(depth, residual=residual, **{
        "name": base if residual else f"{base}_plain", "width_per_group": 64 * widen_factor,
        **kwargs})


def resnet_d(depth=50, *, residual=True, **kwargs):
    """ResNet-``depth``-D (He et al. 2019, "Bag of Tricks"; timm's ``resnet50d``): `resnet`
    with a deep stem of three 3x3 convolutions (32, 32, 64) and average-pool downsampling in
    the projection shortcuts (25,576,264 trainable for ResNet-50-D); ``kwargs`` as for
    `resnet`."""
    base = f"resnet{depth}d"
    return resnet(depth, residual=residual, **{
        "name": base if residual else f"{base}_plain",
        "stem": Stem(kind="deep", filters=64, kernel_size=3, strides=2, pool=True),
        "avg_down": True, **kwargs})


def cifar_resnet(depth=20, *, residual=True, include_top=True, input_shape=(32, 32, 3),
                 classes=10, pooling="avg", **overrides):
    """The CIFAR-10 networks of He et al. (2015), §4.2: ``depth = 6n + 2``, 16/32/64 channels,
    option-A shortcuts (269,722 trainable parameters for depth 20)."""
    if not is_int(depth) or depth < 8 or (depth - 2) % 6:
        fail("depth", depth, "6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...)")
    n = (depth - 2) // 6
    return Architecture.from_dict({
        "name": _name(f"cifar{depth}", residual),
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=16, kernel_size=3),
        "stages": (Stage(n, 16, 1), Stage(n, 32, 2), Stage(n, 64, 2)),
        "block": "basic",
        "shortcut": "A",
        "residual": residual,
        "pooling": pooling,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


def cifar_wide_resnet(depth=28, widen_factor=10, dropout=0.0, *, residual=True, include_top=True,
                      input_shape=(32, 32, 3), classes=10, pooling="avg", **overrides):
    """WRN-``depth``-``widen_factor`` of Zagoruyko & Komodakis (2016) for CIFAR: a 3x3
    convolution to 16 channels, pre-activation basic blocks of widths ``16k``, ``32k``,
    ``64k`` (``depth = 6n + 4``), ``dropout`` between their convolutions, 1x1 projections
    (without batch norm) where the width changes, a final BN-ReLU (36,479,194 trainable
    parameters for WRN-28-10)."""
    if not is_int(depth) or depth < 10 or (depth - 4) % 6:
        fail("depth", depth, "6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...)")
    check_int("widen_factor", widen_factor)
    n = (depth - 4) // 6
    k = widen_factor
    return Architecture.from_dict({
        "name": f"wrn{depth}_{k}" if residual else f"wrn{depth}_{k}_plain",
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=16, kernel_size=3, batch_norm=False, activation=False),
        "stages": (Stage(n, 16 * k, 1), Stage(n, 32 * k, 2), Stage(n, 64 * k, 2)),
        "block": "basic",
        "preactivation": True,
        "dropout": dropout,
        "shortcut": "B",
        "shortcut_batch_norm": False,
        "residual": residual,
        "pooling": pooling,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


def highway_net(nb_layers=10, nb_channels=16, kernel_size=3, *, transform_gate_bias=-2.0,
                residual=True, include_top=True, input_shape=(28, 28, 1), classes=10,
                pooling="avg", **overrides):
    """A convolutional highway network (Srivastava et al. 2015): a 3x3 convolution to
    ``nb_channels``, then ``nb_layers`` `HighwayConv2D`; ``residual=False`` drops the gates."""
    return Architecture.from_dict({
        "name": "highway" if residual else "highway_plain",
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=nb_channels, kernel_size=3, use_bias=True, batch_norm=False),
        "stages": (Stage(blocks=nb_layers, channels=nb_channels, kernel_size=kernel_size),),
        "block": "highway",
        "use_bias": True,
        "batch_norm": False,
        "transform_gate_bias": transform_gate_bias,
        "residual": residual,
        "pooling": pooling,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


def crelu_net(nb_blocks=5, nb_channels=16, kernel_size=3, *, looks_linear=True, include_top=True,
              input_shape=(28, 28, 1), classes=10, pooling="avg", **overrides):
    """A plain CReLU network with looks-linear initialisation (Balduzzi et al. 2017): exactly
    linear at initialisation. ``looks_linear=False`` gives the "CReLU w/o LL" baseline."""
    return Architecture.from_dict({
        "name": "crelu_ll" if looks_linear else "crelu",
        "input_shape": input_shape,
        "stem": Stem(kind="conv", filters=nb_channels, kernel_size=3),
        "stages": (Stage(blocks=nb_blocks, channels=nb_channels, kernel_size=kernel_size),),
        "block": "basic",
        "residual": False,
        "activation": "crelu",
        "looks_linear": looks_linear,
        "pooling": pooling,
        "include_top": include_top,
        "classes": classes,
        **overrides,
    })


PRESETS = {
    "mnist_resnet": mnist_resnet,
    **{f"cifar_resnet{d}": functools.partial(cifar_resnet, d) for d in (20, 32, 44, 56, 110)},
    **{f"resnet{d}": functools.partial(resnet, d) for d in IMAGENET_LAYOUTS},
    **{f"resnet{d}d": functools.partial(resnet_d, d) for d in IMAGENET_LAYOUTS},
    "resnext50_32x4d": functools.partial(resnext, 50, groups=32, width_per_group=4),
    "resnext101_32x8d": functools.partial(resnext, 101, groups=32, width_per_group=8),
    "resnext101_64x4d": functools.partial(resnext, 101, groups=64, width_per_group=4),
    "wide_resnet50_2": functools.partial(wide_resnet, 50, widen_factor=2),
    "wide_resnet101_2": functools.partial(wide_resnet, 101, widen_factor=2),
    "cifar_wide_resnet": cifar_wide_resnet,
    "highway_net": highway_net,
    "crelu_net": crelu_net,
}


def get_preset(name, /, **kwargs):
    """The `Architecture` of the preset called ``name`` (a key of `PRESETS`); ``kwargs`` are
    the preset's arguments or `Architecture` fields (``name`` among them).

    Example:
    >>> get_preset("cifar_resnet20", residual=False).name
    'cifar20_plain'
    """
    return PRESETS[check_choice("preset", name, sorted(PRESETS))](**kwargs)
