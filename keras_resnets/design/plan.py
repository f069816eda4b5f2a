"""The plan: an `Architecture` resolved into one small frozen spec per part, before any layer.

Every derived number lives here: widths, strides, spatial sizes, a bottleneck's inner width and
groups, survival probabilities, which shortcut a block actually uses, and each part's
parameter counts and multiply-adds. `build_resnet` builds from it; validation, the explorer's
diagram and estimates, and anyone who needs a size before building read it.

Example:
>>> from keras_resnets import presets
>>> plan = presets.resnet(50).plan()
>>> block = plan.blocks[3]
>>> block.name, block.in_channels, block.width, block.out_channels, block.strides, block.shortcut
('stage2_block1', 256, 128, 512, 2, 'projection')
>>> plan.count_params()
{'trainable': 25557032, 'non_trainable': 53120, 'total': 25610152}
"""

import functools
from dataclasses import dataclass

from keras_resnets.design.choices import SHORTCUT_OPTIONS
from keras_resnets.design.names import block_name
from keras_resnets.design.validation import check_choice, check_int, check_probability

BRANCH_LAYERS = {"basic": 2, "bottleneck": 3, "dense": 2, "highway": 1}
"""Weighted layers of a block's branch, as the papers count depth."""

EXPANSION = 4
"""Output width over ``nb_channels`` of a bottleneck block (He et al. 2015, Table 1)."""


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


def conv_output_size(size, kernel_size, strides):
    """Spatial size after a convolution padded as in the paper and torchvision (`keras_resnets.layers.common.conv_layers`) (``None`` stays ``None``)."""
    if size is None:
        return None
    pad = (kernel_size - 1) // 2
    return (size + 2 * pad - kernel_size) // strides + 1


def linear_macs(kernel_params, output_size):
    """Multiply-adds per example of a convolution (a dense layer for ``output_size=()``):
    each of its ``kernel_params`` weights once per output position. The one rule behind
    every MAC count (`Plan.macs`, `keras_resnets.models.summary`).

    Example:
    >>> linear_macs(3 * 3 * 16 * 16, (28, 28)), linear_macs(16 * 10, ())
    (1806336, 160)
    """
    return kernel_params * _product(output_size)


def needs_shortcut_layer(option, in_channels, out_channels, strides):
    """Whether a block needs a `Shortcut` layer rather than the bare identity.

    Option C projects in every block; options A and B only where the shape changes.
    """
    check_choice("shortcut", option, SHORTCUT_OPTIONS)
    return option == "C" or strides != 1 or in_channels != out_channels


def linear_decay(block_index, num_blocks, final_survival_probability=0.5):
    """The linear decay rule ``p_l = 1 - (l / L) (1 - p_L)`` of Huang et al. (2016).

    Args:
        block_index: ``l``, from 1 (the first residual block) to ``L``.
        num_blocks: ``L``, the number of residual blocks.
        final_survival_probability: ``p_L``, the survival probability of the last block.

    Example:
    >>> [linear_decay(l, 4, 0.5) for l in (1, 2, 3, 4)]
    [0.875, 0.75, 0.625, 0.5]
    """
    check_int("num_blocks", num_blocks)
    check_int("block_index", block_index, maximum=num_blocks)
    final_survival_probability = check_probability(
        "final_survival_probability", final_survival_probability
    )
    return 1.0 - block_index / num_blocks * (1.0 - final_survival_probability)


@dataclass(frozen=True)
class Cost:
    """What a part weighs, per example: ``trainable`` and ``non_trainable`` parameters (batch
    norm statistics), ``macs`` (multiply-adds of its convolutions and dense layers) and
    ``activations`` (elements of the tensors it computes, which training keeps)."""

    trainable: int = 0
    non_trainable: int = 0
    macs: int = 0
    activations: int = 0


@dataclass(frozen=True)
class StemSpec:
    """The stem: ``convs`` are ``(filters, kernel_size, strides)`` of its linear layers.

    ``output_size`` is ``(height, width)`` after it (``()`` for vectors)."""

    kind: str
    convs: tuple
    in_channels: int
    out_channels: int
    output_size: tuple
    cost: Cost


@dataclass(frozen=True)
class BlockSpec:
    """One block, named ``stage{stage}_block{index}``; ``number`` counts from 1 over all stages.

    ``width`` is the inner width of the branch (a bottleneck's ``bottleneck_width``, else
    ``channels``) and ``groups`` the groups of its kxk convolution. ``shortcut`` is what the
    block uses: ``"identity"``, ``"A"`` (subsample and zero-pad), ``"projection"`` (1x1
    convolution, average-pooled first when ``avg_down``), ``"none"`` for a plain block or
    ``"gate"`` for a highway layer. ``preactivate`` is ``None`` for post-activation blocks.
    """

    name: str
    stage: int
    index: int
    number: int
    kind: str
    channels: int
    in_channels: int
    out_channels: int
    width: int
    groups: int
    kernel_size: int
    strides: int
    survival_probability: float
    shortcut: str
    avg_down: bool
    preactivate: bool | None
    dropout: float
    input_size: tuple
    output_size: tuple
    cost: Cost


@dataclass(frozen=True)
class HeadSpec:
    """After the blocks: the final BN-activation of pre-activation networks (``post_norm``),
    the pooling, and the classifier (``classes`` 0 without one). ``features`` is the width of
    the vectors the classifier reads (after the pooling and its activation), ``out_channels``
    the width of the model's output."""

    post_norm: bool
    pooling: str | None
    in_channels: int
    features: int
    out_channels: int
    classes: int
    cost: Cost


@dataclass(frozen=True)
class Plan:
    """The resolved architecture: `StemSpec` (``None`` without a stem), `BlockSpec` per block
    and the `HeadSpec`."""

    stem: StemSpec | None
    blocks: tuple
    head: HeadSpec

    @property
    def parts(self):
        """Stem (when there is one), blocks and head, in order."""
        return ((self.stem,) if self.stem else ()) + self.blocks + (self.head,)

    def stage(self, number):
        """The blocks of stage ``number`` (1-based)."""
        return tuple(b for b in self.blocks if b.stage == number)

    def count_params(self):
        """``{"trainable", "non_trainable", "total"}``, equal to `count_params` of the built
        model."""
        trainable = sum(p.cost.trainable for p in self.parts)
        non_trainable = sum(p.cost.non_trainable for p in self.parts)
        return {"trainable": trainable, "non_trainable": non_trainable,
                "total": trainable + non_trainable}

    def macs(self):
        """Multiply-adds per example of all convolutions and dense layers."""
        return sum(p.cost.macs for p in self.parts)

    def activations(self):
        """Elements per example of all tensors the model computes (an activation-memory
        estimate: multiply by the batch size and the bytes per element)."""
        return sum(p.cost.activations for p in self.parts)


class _Tally:
    """Adds up the `Cost` of the layers of one part, following its width and size."""

    def __init__(self, arch, channels, size):
        self.arch, self.channels, self.size = arch, channels, size
        self.trainable = self.non_trainable = self.macs = self.activations = 0

    def _elements(self):
        n = self.channels
        for s in self.size:
            n *= s
        return n

    def linear(self, filters, kernel_size=1, strides=1, groups=1, use_bias=False, source=None):
        """A convolution (a `Dense` layer for vectors) from ``source`` (default: the current
        width) channels."""
        source = self.channels if source is None else source
        self.size = tuple(conv_output_size(s, kernel_size, strides) for s in self.size)
        kernel = kernel_size ** len(self.size) * source // groups * filters
        self.trainable += kernel + (filters if use_bias else 0)
        self.macs += linear_macs(kernel, self.size)
        self.channels = filters
        self.activations += self._elements()

    def batch_norm(self):
        self.trainable += 2 * self.channels
        self.non_trainable += 2 * self.channels
        self.activations += self._elements()

    def activation(self):
        self.channels *= width_factor(self.arch.activation)
        self.activations += self._elements()

    def cost(self):
        return Cost(self.trainable, self.non_trainable, self.macs, self.activations)


@functools.lru_cache(maxsize=256)  # an Architecture is frozen and hashable; so is its plan
def make_plan(arch):
    """The `Plan` of an `Architecture` (use ``arch.plan()``)."""
    channels = arch.input_shape[-1]
    size = tuple(arch.input_shape[:-1])
    stem = _stem(arch, channels, size)
    if stem is not None:
        channels, size = stem.out_channels, stem.output_size
    blocks = []
    number = 0
    for s, stage in enumerate(arch.stages, start=1):
        for b in range(1, stage.blocks + 1):
            number += 1
            block = _block(arch, stage, s, b, number, channels, size)
            blocks.append(block)
            channels, size = block.out_channels, block.output_size
    return Plan(stem, tuple(blocks), _head(arch, channels, size))


def _stem(arch, channels, size):
    stem = arch.stem
    if stem.kind == "none":
        return None
    tally = _Tally(arch, channels, size)
    if stem.kind == "deep":
        half = stem.filters // 2
        convs = ((half, stem.kernel_size, stem.strides), (half, stem.kernel_size, 1),
                 (stem.filters, stem.kernel_size, 1))
    else:
        convs = ((stem.filters, stem.kernel_size, stem.strides),)
    for i, (filters, kernel_size, strides) in enumerate(convs, start=1):
        tally.linear(filters, kernel_size, strides, use_bias=stem.use_bias)
        if i < len(convs):
            if stem.batch_norm:
                tally.batch_norm()
            tally.activation()
    if stem.batch_norm:
        tally.batch_norm()
    if stem.activation:
        tally.activation()
    if stem.pool:
        tally.size = tuple(conv_output_size(s, 3, 2) for s in tally.size)
        tally.activations += tally._elements()
    return StemSpec(stem.kind, convs, channels, tally.channels, tally.size, tally.cost())


def branch_specs(arch, stage, strides):
    """``(filters, kernel_size, strides, groups)`` of each linear layer of a block's branch
    (a dense block's layers have kernel size 1, whatever the stage says)."""
    k = 1 if arch.block == "dense" else stage.kernel_size
    if arch.block == "bottleneck":
        width = bottleneck_width(stage.channels, arch.groups, arch.width_per_group)
        return ((width, 1, 1, 1), (width, k, strides, arch.groups),
                (stage.channels * EXPANSION, 1, 1, 1))
    if arch.block == "highway":
        return ((stage.channels, k, 1, 1),)
    return ((stage.channels, k, strides, 1), (stage.channels, k, 1, 1))


def _block(arch, stage, s, b, number, channels, size):
    strides = stage.strides if b == 1 else 1
    specs = branch_specs(arch, stage, strides)
    preactivate = None
    if arch.preactivation:
        stem_activates = arch.stem.kind != "none" and arch.stem.activation
        preactivate = not (number == 1 and stem_activates)
    tally = _Tally(arch, channels, size)
    if arch.block == "highway":
        shortcut = _highway(arch, tally, stage.kernel_size)
    else:
        shortcut = _branch(arch, tally, specs, preactivate)
    survival = 1.0
    if arch.final_survival_probability < 1.0:
        survival = linear_decay(number, arch.num_blocks, arch.final_survival_probability)
    return BlockSpec(
        name=block_name(s, b), stage=s, index=b, number=number, kind=arch.block,
        channels=stage.channels, in_channels=channels, out_channels=tally.channels,
        width=specs[0][0], groups=max(spec[3] for spec in specs), kernel_size=stage.kernel_size,
        strides=strides, survival_probability=survival, shortcut=shortcut,
        avg_down=arch.avg_down and shortcut == "projection" and strides != 1,
        preactivate=preactivate, dropout=arch.dropout, input_size=size,
        output_size=tally.size, cost=tally.cost(),
    )


def _branch(arch, tally, specs, preactivate):
    """Tallies a block's branch and shortcut; returns the shortcut kind."""
    in_channels, in_size = tally.channels, tally.size
    source = in_channels  # what a projection sees: the pre-activated input
    for i, (filters, kernel_size, strides, groups) in enumerate(specs):
        if arch.preactivation and (i > 0 or preactivate):
            if arch.batch_norm:
                tally.batch_norm()
            tally.activation()
        if i == 0:
            source = tally.channels
        if i == 1 and arch.dropout > 0:
            tally.activations += tally._elements()
        tally.linear(filters, kernel_size, strides, groups, arch.use_bias)
        if not arch.preactivation:
            if arch.batch_norm:
                tally.batch_norm()
            if i < len(specs) - 1:
                tally.activation()
    if not arch.residual:
        shortcut = "none"
    elif not needs_shortcut_layer(arch.shortcut, in_channels, specs[-1][0],
                                  _product(s[2] for s in specs)):
        shortcut = "identity"
    elif arch.shortcut == "A":
        shortcut = "A"
    else:
        shortcut = "projection"
        projection = _Tally(arch, source, in_size)
        projection.linear(specs[-1][0], 1, _product(s[2] for s in specs), source=source)
        if arch.batch_norm and arch.shortcut_batch_norm:
            projection.batch_norm()
        tally.trainable += projection.trainable
        tally.non_trainable += projection.non_trainable
        tally.macs += projection.macs
        tally.activations += projection.activations
    if arch.residual:
        tally.activations += tally._elements()  # the sum
    if not arch.preactivation:
        tally.activation()
    return shortcut


def _highway(arch, tally, kernel_size):
    """Tallies a highway layer ``T(x) H(x) + (1 - T(x)) x``; returns the shortcut kind."""
    width, size = tally.channels, tally.size
    tally.linear(width, kernel_size, use_bias=arch.use_bias)
    if arch.batch_norm:
        tally.batch_norm()
    tally.activation()
    if not arch.residual:
        return "none"
    gate = _Tally(arch, width, size)
    gate.linear(width, kernel_size, use_bias=True)
    tally.trainable += gate.trainable
    tally.macs += gate.macs
    tally.activations += 3 * gate.activations  # the gate, its sigmoid and the mix
    return "gate"


def _head(arch, channels, size):
    tally = _Tally(arch, channels, size)
    if arch.preactivation:
        if arch.batch_norm:
            tally.batch_norm()
        tally.activation()
    if arch.pooling == "flatten":
        tally.channels = tally._elements()
    if arch.pooling is not None:
        tally.size = ()
        tally.activations += tally.channels
        if arch.pool_activation:
            tally.activation()
    features = tally.channels
    if arch.include_top:
        tally.linear(arch.classes, use_bias=True)
    return HeadSpec(post_norm=arch.preactivation, pooling=arch.pooling, in_channels=channels,
                    features=features, out_channels=tally.channels,
                    classes=arch.classes if arch.include_top else 0, cost=tally.cost())


def _product(values):
    out = 1
    for v in values:
        out *= v
    return out
