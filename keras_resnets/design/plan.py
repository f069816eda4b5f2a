"""The plan: an `Architecture` resolved into one small frozen spec per part, before any layer.

Every derived number lives here: widths, strides, spatial sizes, a bottleneck's inner width and
groups, survival probabilities, which shortcut a block actually uses, and each part's
parameter counts and multiply-adds. Each block's layers are its `Anatomy`
(`keras_resnets.design.anatomy`), which the counts walk. `build_resnet` builds from the plan;
validation, the explorer's diagram and estimates, the PyTorch export and anyone who needs a
size before building read it.

Example:
>>> from keras_resnets import presets
>>> plan = presets.resnet(50).plan()
>>> block = plan.blocks[3]
>>> block.name, block.in_channels, block.width, block.out_channels, block.strides, block.shortcut
('stage2_block1', 256, 128, 512, 2, 'projection')
>>> [layer.name for layer in block.anatomy.branch]
['conv1', 'bn1', 'act1', 'conv2', 'bn2', 'act2', 'conv3', 'bn3']
>>> plan.count_params()
{'trainable': 25557032, 'non_trainable': 53120, 'total': 25610152}
"""

import functools
from dataclasses import dataclass

from keras_resnets.design.anatomy import Anatomy, block_anatomy, width_factor
from keras_resnets.design.names import block_name
from keras_resnets.design.validation import check_int, check_probability

BRANCH_LAYERS = {"basic": 2, "bottleneck": 3, "dense": 2, "highway": 1}
"""Weighted layers of a block's branch, as the papers count depth."""


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

    ``anatomy`` lists its layers (`keras_resnets.design.anatomy.Anatomy`). ``width`` is the
    inner width of the branch (a bottleneck's ``bottleneck_width``, else ``channels``) and
    ``groups`` the groups of its kxk convolution. ``shortcut`` is what the block uses:
    ``"identity"``, ``"A"`` (subsample and zero-pad), ``"projection"`` (1x1 convolution,
    average-pooled first when ``avg_down``), ``"none"`` for a plain block or ``"gate"`` for a
    highway layer. ``preactivate`` is ``None`` for post-activation blocks.
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
    anatomy: Anatomy


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

    def linear(self, filters, kernel_size=1, strides=1, groups=1, use_bias=False):
        """A convolution (a `Dense` layer for vectors)."""
        source = self.channels
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

    def layer(self, layer):
        """One `keras_resnets.design.anatomy.Layer` of a block."""
        if layer.kind == "conv":
            self.linear(layer.filters, layer.kernel_size, layer.strides, layer.groups, layer.use_bias)
        elif layer.kind == "norm":
            self.batch_norm()
        elif layer.kind in ("act", "dropout"):
            self.channels = layer.filters
            self.activations += self._elements()
        else:  # a shortcut's pooling or zero padding: sizes only, left out of the estimate
            self.size = tuple(conv_output_size(s, 1, layer.strides) for s in self.size)
            self.channels = layer.filters

    def add(self, other):
        """Adds the counts of a side path (a shortcut, a gate)."""
        self.trainable += other.trainable
        self.non_trainable += other.non_trainable
        self.macs += other.macs
        self.activations += other.activations

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


def _block(arch, stage, s, b, number, channels, size):
    strides = stage.strides if b == 1 else 1
    preactivate = None
    if arch.preactivation:
        stem_activates = arch.stem.kind != "none" and arch.stem.activation
        preactivate = not (number == 1 and stem_activates)
    anatomy = _anatomy(arch, stage, channels, strides, preactivate is not False)
    tally = _Tally(arch, channels, size)
    shortcut = _tally_block(tally, anatomy)
    survival = 1.0
    if arch.final_survival_probability < 1.0:
        survival = linear_decay(number, arch.num_blocks, arch.final_survival_probability)
    return BlockSpec(
        name=block_name(s, b), stage=s, index=b, number=number, kind=arch.block,
        channels=stage.channels, in_channels=channels, out_channels=tally.channels,
        width=anatomy.convs[0].filters, groups=max(conv.groups for conv in anatomy.convs),
        kernel_size=stage.kernel_size, strides=strides, survival_probability=survival,
        shortcut=shortcut, avg_down=any(layer.kind == "pool" for layer in anatomy.shortcut or ()),
        preactivate=preactivate, dropout=arch.dropout, input_size=size,
        output_size=tally.size, cost=tally.cost(), anatomy=anatomy,
    )


def _anatomy(arch, stage, in_channels, strides, preactivate):
    """The `Anatomy` of a block of ``stage`` (kernels of size 1 on vectors)."""
    return block_anatomy(
        arch.block, in_channels, stage.channels,
        1 if len(arch.input_shape) == 1 else stage.kernel_size, strides, groups=arch.groups,
        width_per_group=arch.width_per_group, preactivation=arch.preactivation,
        preactivate=preactivate, activation=arch.activation, batch_norm=arch.batch_norm,
        use_bias=arch.use_bias, dropout=arch.dropout, shortcut=arch.shortcut,
        shortcut_batch_norm=arch.shortcut_batch_norm, avg_down=arch.avg_down,
        residual=arch.residual,
    )


def _tally_block(tally, anatomy):
    """Tallies a block's layers, its shortcut's or gate's and its merge; returns
    `BlockSpec.shortcut`."""
    for i, layer in enumerate(anatomy.branch):
        if i == anatomy.shares:
            side = _Tally(tally.arch, tally.channels, tally.size)  # from x̂, as the shortcut
        tally.layer(layer)
    for layer in (anatomy.shortcut or ()) + anatomy.gate:
        side.layer(layer)
    tally.add(side)
    if anatomy.shortcut is not None:  # the sum; a gate's sigmoid and mix
        tally.activations += (2 if anatomy.gate else 1) * tally._elements()
    for layer in anatomy.post:
        tally.layer(layer)
    return _shortcut_kind(anatomy)


def _shortcut_kind(anatomy):
    if anatomy.shortcut is None:
        return "none"
    if anatomy.gate:
        return "gate"
    if not anatomy.shortcut:
        return "identity"
    return "A" if anatomy.shortcut[0].kind == "zero_pad" else "projection"


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
