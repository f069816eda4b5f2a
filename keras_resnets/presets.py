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

from keras_resnets.architecture import Architecture, Stage, Stem

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
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in IMAGENET_LAYOUTS:
        raise ValueError(f"depth={depth!r} is not allowed: one of {sorted(IMAGENET_LAYOUTS)}.")
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


def cifar_resnet(depth=20, *, residual=True, include_top=True, input_shape=(32, 32, 3),
                 classes=10, pooling="avg", **overrides):
    """The CIFAR-10 networks of He et al. (2015), §4.2: ``depth = 6n + 2``, 16/32/64 channels,
    option-A shortcuts (269,722 trainable parameters for depth 20)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth={depth!r} is not allowed: 6n + 2 with n >= 1 (20, 32, 44, 56, 110, ...).")
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
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not known; choose one of {sorted(PRESETS)}.")
    return PRESETS[name](**kwargs)
