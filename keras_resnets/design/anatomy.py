"""What a block is: its layers, in order, and where its paths meet (the one home of that).

`block_anatomy` turns a block's parameters into an `Anatomy`; the plan's tallies, the Keras
blocks, the explorer's diagrams and the PyTorch export read it rather than deciding the order
themselves. Every block computes ``y = post(merge(shortcut(x̂), drop(F(x))))``:

- ``branch``: the layers of ``F``: ``conv → BN → σ → conv → BN`` after He et al. (2015),
  ``BN → σ → conv → BN → σ → conv`` after He et al. (2016), ``H`` for a highway layer;
- ``shares``: how many of them ``x̂`` has been through: a projection sees the input of the
  first convolution, ``σ(BN(x))`` in a pre-activation block (He et al. 2016); 0 is ``x``;
- ``shortcut``: its layers, ``()`` for the identity, ``None`` for a plain block (no skip);
- ``gate``: a highway layer's ``T``, merging by ``T·F(x) + (1 - T)·x``; ``()`` merges by a sum;
- ``post``: after the merge: ``σ`` (He et al. 2015), nothing in pre-activation blocks.

``drop`` is stochastic depth (Huang et al. 2016), a rule of training rather than a layer.

Example:
>>> block = block_anatomy("basic", 16, 32, strides=2)
>>> [layer.name for layer in block.branch], [layer.name for layer in block.shortcut]
(['conv1', 'bn1', 'act1', 'conv2', 'bn2'], ['projection', 'bn'])
>>> preact = block_anatomy("basic", 16, 32, strides=2, preactivation=True)
>>> [layer.kind for layer in preact.branch], preact.shares, preact.post
(['norm', 'act', 'conv', 'norm', 'act', 'conv'], 2, ())
"""

import math
from dataclasses import dataclass

from keras_resnets.design.choices import SHORTCUT_OPTIONS
from keras_resnets.design.validation import check_choice

EXPANSION = 4
"""Output width over ``nb_channels`` of a bottleneck block (He et al. 2015, Table 1)."""

KINDS = ("conv", "norm", "act", "dropout", "pool", "zero_pad")
"""The kinds of `Layer`."""


@dataclass(frozen=True)
class Layer:
    """One layer of a block; ``filters`` is the width of its output.

    ``kind`` is ``"conv"`` (a convolution padded by ``(kernel_size - 1) // 2``, a fully
    connected layer on vectors), ``"norm"`` (batch normalisation), ``"act"`` (``activation``),
    ``"dropout"`` (at ``rate``), ``"pool"`` (ResNet-D's ``strides x strides`` average pooling)
    or ``"zero_pad"`` (option A: one position in ``strides`` kept, zero channels appended).
    ``name`` names the Keras sub-layer and the PyTorch module.
    """

    kind: str
    name: str
    filters: int
    kernel_size: int = 1
    strides: int = 1
    groups: int = 1
    use_bias: bool = False
    activation: str | None = None
    rate: float = 0.0


@dataclass(frozen=True)
class Anatomy:
    """The layers of one block (see the module's docstring)."""

    branch: tuple
    shares: int
    shortcut: tuple | None
    gate: tuple
    post: tuple

    @property
    def convs(self):
        """The branch's convolutions, the ``W_i`` of the papers."""
        return tuple(layer for layer in self.branch if layer.kind == "conv")

    @property
    def strides(self):
        """The branch's subsampling, which the shortcut matches."""
        return math.prod(layer.strides for layer in self.convs)

    @property
    def out_channels(self):
        return (self.post or self.branch)[-1].filters


def bottleneck_width(nb_channels, groups=1, width_per_group=64):
    """The inner width of a bottleneck block, as torchvision computes it:
    ``int(nb_channels * width_per_group / 64) * groups``.

    Example:
    >>> bottleneck_width(64), bottleneck_width(64, groups=32, width_per_group=4)
    (64, 128)
    >>> bottleneck_width(64, width_per_group=128)  # Wide ResNet-50-2
    128
    """
    return int(nb_channels * (width_per_group / 64.0)) * groups


def width_factor(activation):
    """How many channels an activation returns per input channel (2 for CReLU)."""
    return 2 if activation == "crelu" else 1


def needs_shortcut_layer(option, in_channels, out_channels, strides):
    """Whether a block needs a `Shortcut` layer rather than the bare identity.

    Option C projects in every block; options A and B only where the shape changes.
    """
    check_choice("shortcut", option, SHORTCUT_OPTIONS)
    return option == "C" or strides != 1 or in_channels != out_channels


def block_anatomy(kind, in_channels, channels, kernel_size=3, strides=1, *, groups=1,
                  width_per_group=64, expansion=EXPANSION, preactivation=False, preactivate=True,
                  activation="relu", batch_norm=True, use_bias=False, dropout=0.0, shortcut="B",
                  shortcut_batch_norm=True, avg_down=False, residual=True):
    """The `Anatomy` of a block from its parameters, those of the Keras blocks.

    Args:
        kind: ``"basic"``, ``"bottleneck"``, ``"dense"`` (fully connected) or ``"highway"``.
        in_channels: the width of its input; ``channels``: its ``nb_channels``.
        kernel_size: 1 on vectors.
        preactivate: ``False`` leaves out a pre-activation block's first BN-σ (after a stem
            that ends with its own, He et al. 2016, appendix).

    The other arguments are those of `keras_resnets.layers.ResBlock` and
    `keras_resnets.layers.BottleneckBlock`.
    """
    if kind == "highway":
        return _highway(in_channels, kernel_size, activation, batch_norm, use_bias, residual)
    maps = _linear_maps(kind, channels, kernel_size, strides, groups, width_per_group, expansion)
    branch = _branch(maps, in_channels, preactivation, preactivate, activation, batch_norm,
                     use_bias, dropout)
    out = maps[-1][0]
    post = () if preactivation else (Layer("act", "post_act", out * width_factor(activation),
                                           activation=activation),)
    if not residual:
        return Anatomy(branch, 0, None, (), post)
    stride = math.prod(spec[2] for spec in maps)
    if not needs_shortcut_layer(shortcut, in_channels, out, stride):
        return Anatomy(branch, 0, (), (), post)
    # A projection sees what the first convolution sees (He et al. 2016); option A sees x.
    shares = 0 if shortcut == "A" else [layer.kind for layer in branch].index("conv")
    source = branch[shares - 1].filters if shares else in_channels
    layers = shortcut_layers(shortcut, source, out, stride,
                             batch_norm=batch_norm and shortcut_batch_norm, avg_down=avg_down)
    return Anatomy(branch, shares, layers, (), post)


def shortcut_layers(option, in_channels, filters, strides=1, *, batch_norm=True, avg_down=False):
    """The layers of a `keras_resnets.layers.Shortcut` from ``in_channels`` to ``filters``:
    option A's zero padding, or a 1x1 projection (average-pooled first with ``avg_down`` where
    it subsamples: ResNet-D, He et al. 2019) and a batch norm.

    Example:
    >>> [layer.kind for layer in shortcut_layers("B", 16, 32, 2, avg_down=True)]
    ['pool', 'conv', 'norm']
    """
    check_choice("shortcut", option, SHORTCUT_OPTIONS)
    if option == "A":
        return (Layer("zero_pad", "zero_pad", filters, strides=strides),)
    layers = []
    if avg_down and strides != 1:
        layers.append(Layer("pool", "pool", in_channels, strides, strides))
        strides = 1
    layers.append(Layer("conv", "projection", filters, 1, strides))
    if batch_norm:
        layers.append(Layer("norm", "bn", filters))
    return tuple(layers)


def _linear_maps(kind, channels, kernel_size, strides, groups, width_per_group, expansion):
    """``(filters, kernel_size, strides, groups)`` of each linear map ``W_i`` of the branch."""
    if kind == "bottleneck":
        width = bottleneck_width(channels, groups, width_per_group)
        return ((width, 1, 1, 1), (width, kernel_size, strides, groups),
                (channels * expansion, 1, 1, 1))
    return ((channels, kernel_size, strides, 1), (channels, kernel_size, 1, 1))


def _branch(maps, in_channels, preactivation, preactivate, activation, batch_norm, use_bias,
            dropout):
    """``F``: each ``W_i`` with its BN and σ after it (post-activation, no σ after the last) or
    before it (pre-activation; before ``W_1`` only with ``preactivate``)."""
    layers = []
    for i, (filters, kernel_size, strides, groups) in enumerate(maps, start=1):
        width = layers[-1].filters if layers else in_channels
        if preactivation and (i > 1 or preactivate):
            layers += _norm_act(i, width, activation, batch_norm)
        if i == 2 and dropout > 0:  # Zagoruyko & Komodakis (2016)
            layers.append(Layer("dropout", "dropout", layers[-1].filters, rate=dropout))
        layers.append(Layer("conv", f"conv{i}", filters, kernel_size, strides, groups, use_bias))
        if not preactivation:
            layers += _norm_act(i, filters, activation, batch_norm, act=i < len(maps))
    return tuple(layers)


def _norm_act(i, width, activation, batch_norm, act=True):
    norm = (Layer("norm", f"bn{i}", width),) if batch_norm else ()
    if not act:
        return norm
    return norm + (Layer("act", f"act{i}", width * width_factor(activation), activation=activation),)


def _highway(width, kernel_size, activation, batch_norm, use_bias, residual):
    """A highway layer (Srivastava et al. 2015): ``H`` is conv, [BN,] σ; ``T`` a convolution
    with a bias (its sigmoid is the merge's)."""
    branch = (Layer("conv", "transform", width, kernel_size, use_bias=use_bias),)
    if batch_norm:
        branch += (Layer("norm", "bn", width),)
    branch += (Layer("act", "act", width, activation=activation),)
    if not residual:
        return Anatomy(branch, 0, None, (), ())
    gate = (Layer("conv", "transform_gate", width, kernel_size, use_bias=True),)
    return Anatomy(branch, 0, (), gate, ())
