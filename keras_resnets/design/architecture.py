"""The architecture description: one plain, JSON-serialisable value that says what to build.

Explorer widgets, URLs, the command line and presets all produce an `Architecture`;
`build_resnet` turns it into a `keras.Model`; a run stores it so that it can be rebuilt.
Validation lives here: a wrong field raises a `ValueError` naming the field, the value and
what is allowed.

Example:
>>> arch = Architecture(stages=(Stage(blocks=2, channels=16),))
>>> Architecture.from_json(arch.to_json()) == arch
True
>>> arch.replace(residual=False).residual
False
"""

import dataclasses
import json
import re
from dataclasses import dataclass, field

from keras_resnets.design import limits
from keras_resnets.design.choices import (
    ACTIVATIONS,
    BLOCKS,
    DATA_FORMATS,
    DROP_MODES,
    DTYPE_POLICIES,
    POOLINGS,
    SHORTCUT_OPTIONS,
    STEMS,
)
from keras_resnets.design.plan import BRANCH_LAYERS, conv_output_size, make_plan
from keras_resnets.design.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_seed,
    fail,
    parse_json,
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A model name: it names the Keras model, files and runs."""


@dataclass(frozen=True)
class Stage:
    """A run of ``blocks`` blocks of width ``channels``; the first one subsamples by ``strides``.

    For bottleneck blocks ``channels`` is the inner width (the output is four times wider).
    """

    blocks: int
    channels: int
    strides: int = 1
    kernel_size: int = 3

    def validate(self, where="stage"):
        check_int(f"{where}.blocks", self.blocks)
        check_int(f"{where}.channels", self.channels)
        check_int(f"{where}.strides", self.strides)
        check_int(f"{where}.kernel_size", self.kernel_size)
        if self.kernel_size % 2 == 0:
            fail(f"{where}.kernel_size", self.kernel_size,
                 "an odd integer (an even kernel shifts the map and the residual sum would not line up)")


@dataclass(frozen=True)
class Stem:
    """What comes before the blocks.

    ``kind="conv"``: a convolution (``filters``, ``kernel_size``, ``strides``), optional batch
    norm and activation, optional 3x3/2 max pooling (``pool``). ``kind="deep"``: ResNet-D's
    deep stem (He et al. 2019): three ``kernel_size`` convolutions of widths ``filters / 2``,
    ``filters / 2``, ``filters``, the first one strided, batch norm and activation after the
    first two, and after the third as for ``"conv"``. ``kind="dense"``: the same as ``"conv"``
    with a `Dense` layer for vector inputs. ``kind="none"``: the input goes straight to the
    blocks.
    """

    kind: str = "conv"
    filters: int = 16
    kernel_size: int = 3
    strides: int = 1
    use_bias: bool = False
    batch_norm: bool = True
    activation: bool = True
    pool: bool = False

    def validate(self):
        check_choice("stem.kind", self.kind, STEMS)
        check_int("stem.filters", self.filters)
        check_int("stem.kernel_size", self.kernel_size)
        check_int("stem.strides", self.strides)
        for name in ("use_bias", "batch_norm", "activation", "pool"):
            check_bool(f"stem.{name}", getattr(self, name))
        if self.kernel_size % 2 == 0:
            fail("stem.kernel_size", self.kernel_size, "an odd integer")
        if self.kind == "dense" and (self.kernel_size != 1 or self.strides != 1 or self.pool):
            fail("stem.kind", self.kind, "'dense' only with kernel_size=1, strides=1, pool=False")
        if self.kind == "deep" and (self.filters < 2 or self.filters % 2):
            fail("stem.filters", self.filters, "an even integer >= 2 with kind='deep' "
                 "(its first two convolutions are filters / 2 wide)")


@dataclass(frozen=True)
class Architecture:
    """A residual network (or its plain twin), as data.

    Attributes:
        name: the model's name.
        input_shape: ``(height, width, channels)`` for images, ``(features,)`` for vectors;
            always channels-last here, whatever ``data_format`` the model uses.
        stem: a `Stem`.
        stages: a tuple of `Stage`.
        block: ``"basic"`` (`ResBlock`), ``"bottleneck"``, ``"dense"`` (`DenseResBlock`) or
            ``"highway"`` (`HighwayConv2D`, `HighwayDense` for vectors).
        groups: cardinality of bottleneck blocks (ResNeXt, Xie et al. 2017): groups of their
            kxk convolution.
        width_per_group: bottleneck inner width per group per 64 channels; the inner width
            is ``int(channels * width_per_group / 64) * groups`` as in torchvision
            (``groups=32, width_per_group=4``: ResNeXt-50 32x4d; ``width_per_group=128``:
            Wide ResNet-50-2).
        dropout: rate of dropout before the second convolution of each block's branch (Wide
            ResNet, Zagoruyko & Komodakis 2016); 0 adds no layer.
        shortcut: option ``"A"``, ``"B"`` or ``"C"`` of He et al. (2015).
        shortcut_batch_norm: batch norm after projection shortcuts (with ``batch_norm``);
            Wide ResNet has none.
        avg_down: strided projection shortcuts average-pool, then convolve with stride 1
            (ResNet-D, He et al. 2019), instead of a strided 1x1 convolution.
        residual: ``False`` builds the plain twin, the same layers without skips.
        preactivation: pre-activation blocks (He et al. 2016).
        activation: a name of `keras_resnets.layers.ACTIVATIONS`.
        looks_linear: `LooksLinear` initialisation of every layer after a CReLU.
        use_bias: biases in the blocks' convolutions.
        batch_norm: batch normalisation in the blocks.
        bn_momentum, bn_epsilon: its settings (PyTorch's by default: 0.9 and 1e-5).
        zero_init_last_bn: zero scale for the last batch norm of each branch.
        final_survival_probability: stochastic depth ``p_L`` (1 disables it).
        drop_mode: ``"batch"`` (Huang et al.) or ``"sample"`` (drop path).
        transform_gate_bias: initial bias of highway gates.
        pooling: ``"avg"``, ``"max"``, ``"flatten"`` or ``None`` after the blocks.
        pool_activation: apply the activation after pooling (the lecture's ``relu(avg(x))``).
        include_top: end with the classifier.
        classes: its number of outputs.
        classifier_activation: ``None`` (logits) or ``"softmax"``.
        data_format: ``"channels_last"``, ``"channels_first"`` or ``None`` (Keras' setting).
        dtype_policy: the Keras dtype policy the model computes in, ``"float32"``,
            ``"mixed_bfloat16"`` or ``"mixed_float16"`` (weights stay float32), or ``None``:
            bfloat16 on CPUs with AMX or AVX-512 BF16, else float32 (`precision.default_dtype_policy`).
        seed: seed of the stochastic-depth draws.
    """

    name: str = "resnet"
    input_shape: tuple = (28, 28, 1)
    stem: Stem = field(default_factory=Stem)
    stages: tuple = (Stage(blocks=3, channels=16),)
    block: str = "basic"
    groups: int = 1
    width_per_group: int = 64
    dropout: float = 0.0
    shortcut: str = "B"
    shortcut_batch_norm: bool = True
    avg_down: bool = False
    residual: bool = True
    preactivation: bool = False
    activation: str = "relu"
    looks_linear: bool = False
    use_bias: bool = False
    batch_norm: bool = True
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    zero_init_last_bn: bool = False
    final_survival_probability: float = 1.0
    drop_mode: str = "batch"
    transform_gate_bias: float = -2.0
    pooling: str | None = "avg"
    pool_activation: bool = False
    include_top: bool = True
    classes: int = 10
    classifier_activation: str | None = None
    data_format: str | None = None
    dtype_policy: str | None = None
    seed: int | None = None

    def __post_init__(self):
        # Accept plain lists and dicts (JSON, widgets) and store immutable, comparable values.
        stem = self.stem
        if isinstance(stem, dict):
            stem = Stem(**_known("stem", stem, Stem))
        stages = self.stages
        if isinstance(stages, (list, tuple)) and len(stages) > limits.limits().max_stages:
            limits.limits().exceeded("stages", f"{len(stages):,} stages", "max_stages")
        if isinstance(stages, (list, tuple)):
            stages = tuple(
                Stage(**_known(f"stages[{i}]", s, Stage)) if isinstance(s, dict) else s
                for i, s in enumerate(stages)
            )
        shape = self.input_shape
        if isinstance(shape, (list, tuple)):
            shape = tuple(shape)
        object.__setattr__(self, "stem", stem)
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "input_shape", shape)
        self.validate()

    # -- validation --------------------------------------------------------------------------
    def validate(self):
        """Raises a `ValueError` naming the first wrong field."""
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            fail("name", self.name, "1 to 64 letters, digits, '_', '.' or '-', starting with a "
                                     "letter or digit")
        if not isinstance(self.input_shape, tuple) or len(self.input_shape) not in (1, 3):
            fail("input_shape", self.input_shape,
                 "(height, width, channels) for images or (features,) for vectors")
        for i, size in enumerate(self.input_shape):
            check_int(f"input_shape[{i}]", size)
        if not isinstance(self.stem, Stem):
            fail("stem", self.stem, "a Stem or a dict of its fields")
        self.stem.validate()
        if not isinstance(self.stages, tuple) or not self.stages:
            fail("stages", self.stages, "a non-empty list of stages")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                fail(f"stages[{i}]", stage, "a Stage or a dict of its fields")
            stage.validate(f"stages[{i}]")
        check_choice("block", self.block, BLOCKS)
        check_choice("shortcut", self.shortcut, SHORTCUT_OPTIONS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("drop_mode", self.drop_mode, DROP_MODES)
        check_choice("pooling", self.pooling, POOLINGS)
        check_choice("classifier_activation", self.classifier_activation, (None, "softmax"))
        check_choice("data_format", self.data_format, DATA_FORMATS)
        check_choice("dtype_policy", self.dtype_policy, DTYPE_POLICIES)
        check_int("groups", self.groups)
        check_int("width_per_group", self.width_per_group)
        check_number("dropout", self.dropout, 0.0, 1.0)
        if self.dropout == 1.0:
            fail("dropout", self.dropout, "a number in [0, 1): 1 would drop everything")
        for name in ("residual", "preactivation", "looks_linear", "use_bias", "batch_norm",
                     "zero_init_last_bn", "pool_activation", "include_top", "avg_down",
                     "shortcut_batch_norm"):
            check_bool(name, getattr(self, name))
        check_number("bn_momentum", self.bn_momentum, 0.0, 1.0)
        check_number("bn_epsilon", self.bn_epsilon, 0.0, 1.0, low_open=True)
        check_number("final_survival_probability", self.final_survival_probability, 0.0, 1.0,
                      low_open=True)
        check_number("transform_gate_bias", self.transform_gate_bias, -100.0, 100.0)
        check_int("classes", self.classes)
        check_seed("seed", self.seed, optional=True)
        limits.check_structure(self)  # before the plan: a million blocks must not be planned
        self._validate_combinations()
        limits.check_size(self)

    def _validate_combinations(self):
        vectors = len(self.input_shape) == 1
        if vectors:
            check_choice("block", self.block, ("dense", "highway"))
            check_choice("stem.kind", self.stem.kind, ("dense", "none"))
            check_choice("pooling", self.pooling, (None,))
        else:
            check_choice("block", self.block, ("basic", "bottleneck", "highway"))
            check_choice("stem.kind", self.stem.kind, ("conv", "deep", "none"))
        if self.include_top and not vectors and self.pooling is None:
            fail("pooling", None, "'avg', 'max' or 'flatten' with include_top=True: the classifier needs vectors")
        if self.block in ("dense", "highway") or vectors:
            for i, stage in enumerate(self.stages):
                if stage.strides != 1:
                    fail(f"stages[{i}].strides", stage.strides, f"1 for {self.block} blocks")
        if self.activation == "crelu" and (
            self.residual and not self.preactivation or self.block == "highway"
        ):
            fail("activation", "crelu",
                 "only with residual=False or preactivation=True, and not for highway blocks: "
                 "CReLU doubles the width, so after a post-activation sum the next shortcut "
                 "would not line up")
        if self.block == "highway" and self.preactivation:
            fail("preactivation", True, "False for highway blocks")
        if self.block == "dense" and self.preactivation:
            fail("preactivation", True, "False for dense blocks (there is no pre-activation dense block)")
        if self.activation == "crelu":
            if self.looks_linear and not self.preactivation and not (
                self.stem.kind != "none" and self.stem.activation
            ):
                # Post-activation blocks take their input as it is: only a stem that ends with
                # its CReLU puts one before the first block's looks-linear layer.
                fail("looks_linear", True,
                     "False unless a CReLU precedes every looks-linear layer: with post-activation "
                     "blocks the stem must end with its activation (stem.kind != 'none', "
                     "stem.activation=True)")
        elif self.looks_linear:
            fail("looks_linear", True, "False unless activation='crelu' (it undoes a CReLU)")
        if self.final_survival_probability < 1.0 and not self.residual:
            fail("final_survival_probability", self.final_survival_probability,
                 "1.0 for a plain network (residual=False): dropping a plain block cuts the network")
        if self.block == "highway" and self.final_survival_probability < 1.0:
            fail("final_survival_probability", self.final_survival_probability,
                 "1.0 for highway blocks")
        self._validate_family()
        self._validate_widths(self.plan())
        self._validate_sizes()

    def _validate_family(self):
        """The fields of ResNeXt, Wide ResNet and ResNet-D."""
        if self.block != "bottleneck" and (self.groups, self.width_per_group) != (1, 64):
            field_name = "groups" if self.groups != 1 else "width_per_group"
            fail(field_name, getattr(self, field_name),
                 f"{1 if field_name == 'groups' else 64} unless block='bottleneck' "
                 "(grouped and widened inner convolutions belong to bottleneck blocks)")
        if self.dropout > 0 and self.block == "highway":
            fail("dropout", self.dropout, "0 for highway blocks (they have one convolution)")
        if self.avg_down and self.shortcut == "A":
            fail("avg_down", True, "False with shortcut='A' (it pools before a projection)")

    def _validate_widths(self, plan):
        """Widths the plan resolved: bottleneck inner widths, highway and option-A widths."""
        for block in plan.blocks:
            if block.width < 1:
                fail(f"stages[{block.stage - 1}].channels", block.channels,
                     f"a width with int(channels * width_per_group / 64) >= 1 "
                     f"(width_per_group={self.width_per_group})")
        if self.block == "highway":
            width = plan.blocks[0].in_channels
            for i, stage in enumerate(self.stages):
                if stage.channels != width:
                    fail(f"stages[{i}].channels", stage.channels,
                         f"{width}: highway layers keep the width of their input (the stem's)")
        for block in plan.blocks:
            # Option A pads channels with zeros; it cannot drop any.
            if block.shortcut == "A" and block.out_channels < block.in_channels:
                expansion = block.out_channels // block.channels
                fail(f"stages[{block.stage - 1}].channels", block.channels,
                     f"at least {-(-block.in_channels // expansion)} with shortcut='A': option A "
                     f"only adds zero channels and the input of this stage is "
                     f"{block.in_channels} wide; use 'B' or 'C'")

    def _validate_sizes(self):
        """Every downsampling must leave at least one pixel."""
        if len(self.input_shape) == 1:
            return
        h, w = self.input_shape[:2]
        steps = []
        if self.stem.kind in ("conv", "deep"):
            steps.append(("stem.strides", self.stem.kernel_size, self.stem.strides))
            if self.stem.pool:
                steps.append(("stem.pool", 3, 2))
        for i, stage in enumerate(self.stages):
            steps.append((f"stages[{i}].strides", stage.kernel_size, stage.strides))
        for where, kernel, strides in steps:
            h, w = conv_output_size(h, kernel, strides), conv_output_size(w, kernel, strides)
            if h < 1 or w < 1:
                raise ValueError(
                    f"input_shape={self.input_shape} is too small: the maps vanish at {where}. "
                    "Use a larger input or fewer downsamplings."
                )

    # -- derived facts ---------------------------------------------------------------------
    @property
    def depth(self):
        """Weighted layers, counted as in the papers (stem + branch layers + classifier)."""
        stem = {"none": 0, "deep": 3}.get(self.stem.kind, 1)
        return stem + BRANCH_LAYERS[self.block] * self.num_blocks + int(self.include_top)

    @property
    def num_blocks(self):
        """``L``, the number of blocks of all stages."""
        return sum(stage.blocks for stage in self.stages)

    def plan(self):
        """The description resolved into a `keras_resnets.design.plan.Plan`: one frozen spec per
        block, and for the stem and head, with widths, sizes, parameter counts and MACs.

        Example:
        >>> arch = Architecture(stages=(Stage(blocks=2, channels=16), Stage(1, 32, strides=2)))
        >>> [(b.name, b.out_channels, b.shortcut) for b in arch.plan().blocks]
        [('stage1_block1', 16, 'identity'), ('stage1_block2', 16, 'identity'), ('stage2_block1', 32, 'projection')]
        """
        return make_plan(self)

    # -- conversions -------------------------------------------------------------------------
    def replace(self, **changes):
        """A copy with some fields changed (and validated); unknown fields raise a `ValueError`."""
        return dataclasses.replace(self, **_known("replace", changes, type(self)))

    def to_dict(self):
        """Plain lists and dicts, ready for JSON."""
        data = dataclasses.asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["stages"] = [dataclasses.asdict(s) for s in self.stages]
        return data

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`; unknown keys raise a `ValueError`."""
        if not isinstance(data, dict):
            fail("architecture", data, "a dict of Architecture fields")
        return cls(**_known("architecture", data, cls))

    def to_json(self, **kwargs):
        """A JSON string (``kwargs`` go to `json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text, source="architecture"):
        """The inverse of `to_json`. Text that is not JSON within the bounds of
        `keras_resnets.design.validation.parse_json` raises a `ValueError` naming ``source``
        (a file, an option) and where the text goes wrong."""
        return cls.from_dict(parse_json(text, source))


def _known(where, data, cls):
    if not isinstance(data, dict):
        fail(where, data, f"a dict of {cls.__name__} fields")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {unknown}; allowed fields are {sorted(names)}."
        )
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"{where} lacks the field(s) {missing}; {cls.__name__} needs {required}.")
    return data


def coerce_architecture(architecture=None, **fields):
    """An `Architecture` from an instance, a dict, a JSON string or keyword fields.

    Keyword fields override those of ``architecture``.
    """
    if architecture is None:
        return Architecture(**_known("build_resnet", fields, Architecture))
    if isinstance(architecture, str):
        architecture = Architecture.from_json(architecture)
    elif isinstance(architecture, dict):
        architecture = Architecture.from_dict(architecture)
    elif not isinstance(architecture, Architecture):
        fail("architecture", architecture, "an Architecture, a dict or a JSON string")
    if fields:
        _known("build_resnet", fields, Architecture)
        architecture = architecture.replace(**fields)
    return architecture
