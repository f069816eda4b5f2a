"""Designs as plain data: presets to start from, validation, and the compact URL form.

Nothing here imports Streamlit, so it is tested directly. A *design* is the dict form of an
`Architecture` (``Architecture.to_dict()``), possibly invalid while the user edits it;
`validate` turns it into an `Architecture` or one message naming the wrong field.

The URL carries a design as the preset it started from plus the fields that differ, in a
short readable form::

    ?preset=cifar_resnet20&shortcut=B&stages=3x16,3x32/2,3x64/2k5&stem.filters=32

``stages`` is ``<blocks>x<channels>[/<strides>][k<kernel_size>]`` per stage, ``input_shape``
is ``28x28x1`` (or ``784`` for vectors), booleans are ``true``/``false``, ``None`` is ``none``.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from keras_resnets import Architecture, Stage, Stem, estimate, get_preset
from keras_resnets.design.limits import limits
from keras_resnets.design.validation import check_choice, fail, parse_json


@dataclass(frozen=True)
class PresetChoice:
    """One entry of the "start from" list: a preset of `keras_resnets.PRESETS` and its arguments."""

    preset: str
    label: str
    group: str
    kwargs: dict = field(default_factory=dict)

    def architecture(self) -> Architecture:
        return get_preset(self.preset, **self.kwargs)


def _choices():
    out = {
        "mnist_resnet": PresetChoice("mnist_resnet", "Lecture MNIST ResNet (25 blocks x 16 channels)", "Lecture"),
        "mnist_resnet-plain": PresetChoice("mnist_resnet", "Lecture MNIST network, plain twin (no skips)",
                                           "Lecture", {"residual": False}),
    }
    for depth in (20, 32, 44, 56, 110):
        out[f"cifar_resnet{depth}"] = PresetChoice(
            f"cifar_resnet{depth}", f"CIFAR ResNet-{depth} (He et al. 2015, option A)", "CIFAR-10")
        out[f"cifar_resnet{depth}-plain"] = PresetChoice(
            f"cifar_resnet{depth}", f"CIFAR plain-{depth} (no skips)", "CIFAR-10", {"residual": False})
    for depth in (18, 34, 50, 101, 152):
        out[f"resnet{depth}"] = PresetChoice(f"resnet{depth}", f"ResNet-{depth} (ImageNet, 224x224)", "ImageNet")
        out[f"resnet{depth}-plain"] = PresetChoice(
            f"resnet{depth}", f"Plain-{depth} (ImageNet, no skips)", "ImageNet", {"residual": False})
    family = {
        "resnext50_32x4d": "ResNeXt-50 32x4d (Xie et al. 2017, grouped 3x3)",
        "resnext101_32x8d": "ResNeXt-101 32x8d",
        "resnext101_64x4d": "ResNeXt-101 64x4d",
        "wide_resnet50_2": "Wide ResNet-50-2 (ImageNet form)",
        "wide_resnet101_2": "Wide ResNet-101-2 (ImageNet form)",
        **{f"resnet{depth}d": f"ResNet-{depth}-D (deep stem, avg-pool shortcuts)"
           for depth in (18, 34, 50, 101, 152)},
    }
    for preset, label in family.items():
        out[preset] = PresetChoice(preset, label, "ImageNet family")
    out["cifar_wide_resnet"] = PresetChoice(
        "cifar_wide_resnet", "Wide ResNet-28-10 (Zagoruyko & Komodakis 2016)", "CIFAR-10")
    out["cifar_wide_resnet-16-4"] = PresetChoice(
        "cifar_wide_resnet", "Wide ResNet-16-4, dropout 0.3", "CIFAR-10",
        {"depth": 16, "widen_factor": 4, "dropout": 0.3})
    out["highway_net"] = PresetChoice("highway_net", "Highway network, 10 gated layers (Srivastava et al. 2015)",
                                      "Other")
    out["highway_net-plain"] = PresetChoice("highway_net", "Highway network without gates (plain twin)",
                                            "Other", {"residual": False})
    out["crelu_net"] = PresetChoice("crelu_net", "CReLU + looks-linear init, plain (Balduzzi et al. 2017)", "Other")
    out["crelu_net-no-ll"] = PresetChoice("crelu_net", "CReLU without looks-linear init", "Other",
                                          {"looks_linear": False})
    return out


PRESET_CHOICES: dict[str, PresetChoice] = _choices()
DEFAULT_PRESET = "mnist_resnet"


def preset_design(preset_id: str) -> dict:
    """The design dict of a "start from" choice; `ValueError` for unknown ids."""
    return PRESET_CHOICES[check_choice("preset", preset_id, sorted(PRESET_CHOICES))].architecture().to_dict()


def preset_of(name: str) -> str | None:
    """The "start from" choice a design's name begins with (`auto_name` keeps it first), if any.

    Example:
    >>> preset_of("mnist_resnet-9x32-preact"), preset_of("my_net")
    ('mnist_resnet', None)
    """
    starts = [p for p in PRESET_CHOICES if name == p or name.startswith(p + "-")]
    return max(starts, key=len, default=None)


def with_stage(design: dict) -> dict:
    """``design`` with one more stage, like its last; twice as wide and subsampling by 2 where
    its blocks are convolutional.

    >>> with_stage({"block": "basic", "input_shape": [28, 28, 1],
    ...             "stages": [{"blocks": 2, "channels": 16, "strides": 1, "kernel_size": 3}]})["stages"][-1]
    {'blocks': 2, 'channels': 32, 'strides': 2, 'kernel_size': 3}
    """
    design = copy.deepcopy(design)
    last = dict(design["stages"][-1]) if design["stages"] else {"blocks": 2, "channels": 16, "strides": 1,
                                                                 "kernel_size": 3}
    if design["block"] not in ("highway", "dense") and len(design["input_shape"]) == 3:
        last = {**last, "channels": last["channels"] * 2, "strides": 2}
    design["stages"].append(last)
    return design


def without_stage(design: dict, index: int) -> dict:
    """``design`` without its stage ``index``; a design keeps at least one stage."""
    design = copy.deepcopy(design)
    if len(design["stages"]) > 1:
        del design["stages"][index]
    return design


def read_description(data: bytes, name: str) -> Architecture:
    """The `Architecture` of the JSON file ``name`` holding ``data``: a description, or a run's
    ``config.json``. `ValueError` says, for the user, why there is none."""
    try:
        value = parse_json(data, name)
    except ValueError as error:
        raise ValueError(f"That file cannot be read: {error}") from error
    if isinstance(value, dict) and "architecture" in value and "stages" not in value:
        value = value["architecture"]  # a run's config.json
    try:
        return Architecture.from_dict(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not a valid architecture: {error}") from error


def validate(design: Mapping) -> tuple[Architecture | None, str | None]:
    """``(architecture, None)`` for a valid design, ``(None, message)`` naming the field otherwise."""
    try:
        return Architecture.from_dict(dict(design)), None
    except (TypeError, ValueError) as error:
        return None, str(error)


# -- short text forms ---------------------------------------------------------------------------
def format_shape(shape) -> str:
    """``(28, 28, 1)`` → ``'28x28x1'``."""
    return "x".join(str(s) for s in shape)


def shape_text(shape) -> str:
    """A shape for reading: ``(None, 7, 7, 64)`` → ``'?×7×7×64'``."""
    return "×".join("?" if s is None else str(s) for s in shape)


def takes_sample_digits(architecture: Architecture) -> bool:
    """Whether ``architecture`` classifies the embedded sample's digits: 28x28x1 images, 10
    classes (the Train page then offers to try a trained model on a few).

    >>> takes_sample_digits(get_preset("mnist_resnet")), takes_sample_digits(get_preset("resnet18"))
    (True, False)
    """
    return tuple(architecture.input_shape) == (28, 28, 1) and architecture.classes == 10


def file_stem(name: str) -> str:
    """A design's name as a file name: letters, digits, ``-_.``; others become ``_``.

    >>> file_stem("resnet 18/option B"), file_stem("")
    ('resnet_18_option_B', 'model')
    """
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "model"


def parse_shape(text: str) -> list[int]:
    """``'28x28x1'`` (or ``'28, 28, 1'``) → ``[28, 28, 1]``; `ValueError` naming ``input_shape``."""
    parts = [p for p in re.split(r"[x×,\s()]+", str(text).strip().lower()) if p]
    if len(parts) not in (1, 3) or not all(p.isdigit() for p in parts):
        fail("input_shape", text, "height x width x channels such as 28x28x1, or a number of "
                                  "features such as 784")
    return [int(p) for p in parts]


_STAGE = re.compile(r"(\d+)x(\d+)(?:/(\d+))?(?:k(\d+))?")


def format_stages(stages) -> str:
    """``[{'blocks': 3, 'channels': 32, 'strides': 2, 'kernel_size': 3}]`` → ``'3x32/2'``."""
    out = []
    for s in stages:
        s = s if isinstance(s, Mapping) else dataclasses.asdict(s)
        text = f"{s['blocks']}x{s['channels']}"
        if s.get("strides", 1) != 1:
            text += f"/{s['strides']}"
        if s.get("kernel_size", 3) != 3:
            text += f"k{s['kernel_size']}"
        out.append(text)
    return ",".join(out)


def parse_stages(text: str) -> list[dict]:
    """The inverse of `format_stages`; `ValueError` naming ``stages``."""
    stages = []
    for part in str(text).replace(" ", "").split(","):
        match = _STAGE.fullmatch(part)
        if not match:
            fail("stages", text, "comma-separated <blocks>x<channels>[/<strides>][k<kernel_size>] "
                                 "such as 3x16,3x32/2,3x64/2")
        blocks, channels, strides, kernel = match.groups()
        stages.append({"blocks": int(blocks), "channels": int(channels), "strides": int(strides or 1),
                       "kernel_size": int(kernel or 3)})
    if len(stages) > limits().max_stages:
        limits().exceeded("stages", f"{len(stages):,} stages", "max_stages")
    return stages


def _format_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_bool(name, text):
    lowered = str(text).lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}={text!r} is not allowed: true or false.")


def _parse_int(name, text):
    try:
        return int(str(text))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not allowed: an integer.") from None


def _parse_float(name, text):
    try:
        value = float(str(text))
    except ValueError:
        raise ValueError(f"{name}={text!r} is not allowed: a number.") from None
    return value


def _optional(parse):
    return lambda name, text: None if str(text).lower() == "none" else parse(name, text)


_PARSERS = {bool: _parse_bool, int: _parse_int, float: _parse_float, str: lambda name, text: str(text)}
_PARSERS.update({t | None: _optional(parse) for t, parse in list(_PARSERS.items())})


def _field_parsers(cls, prefix=""):
    """The query parser of each scalar field of the dataclass ``cls``, read from its annotations."""
    return {prefix + f.name: _PARSERS[f.type] for f in dataclasses.fields(cls) if f.type in _PARSERS}


_FIELD_PARSERS = {**_field_parsers(Architecture), **_field_parsers(Stem, "stem."),
                  "input_shape": lambda name, text: parse_shape(text),
                  "stages": lambda name, text: parse_stages(text)}

DESIGN_PARAMS = {"preset", *_FIELD_PARSERS}
"""Query-parameter names that belong to the design (others, like ``runs``, are left alone)."""


def _parse_field(name: str, text: str) -> tuple[str, Any]:
    """``(key, value)`` of one query parameter; ``key`` is ``stem.<field>`` for the stem's."""
    if len(str(text)) > 2000:
        raise ValueError(f"{name}: the value is too long.")
    if name in _FIELD_PARSERS:
        return name, _FIELD_PARSERS[name](name, text)
    raise ValueError(f"{name} is not a design field.")


# -- names ---------------------------------------------------------------------------------------
_WORDS = {("residual", False): "plain", ("residual", True): "residual",
          ("preactivation", True): "preact", ("preactivation", False): "postact",
          ("looks_linear", True): "ll", ("looks_linear", False): "no-ll"}
"""The words of the changes a name says briefly; any other change is ``<field><value>``."""


def auto_name(design: Mapping, preset_id: str = DEFAULT_PRESET) -> str:
    """The name of a design that says what changed from the preset it started from:
    ``mnist_resnet-9x32-preact`` (its stages, when they changed, as ``<blocks>x<channels>``
    per stage, ``s2`` for a stride); the preset's own name when nothing did. Cut to the 64
    characters a name may have.

    >>> design = preset_design("mnist_resnet")
    >>> auto_name({**design, "preactivation": True, "stages": [{"blocks": 9, "channels": 32}]})
    'mnist_resnet-9x32-preact'
    """
    if preset_id not in PRESET_CHOICES:
        preset_id = DEFAULT_PRESET
    base = preset_design(preset_id)
    parts = [base["name"]]
    for key, value in design.items():
        if key == "name" or base.get(key) == value:
            continue
        if key == "stages":
            if _stage_dicts(value) != _stage_dicts(base["stages"]):
                parts.append(format_stages(value).replace(",", "_").replace("/", "s"))
        elif key == "stem" and isinstance(value, Mapping):
            parts += [f"stem.{sub}{_name_value(v)}" for sub, v in value.items() if base["stem"].get(sub) != v]
        elif key == "input_shape":
            parts.append(format_shape(value))
        elif key == "shortcut":
            parts.append(f"option{value}")
        else:
            parts.append(_WORDS.get((key, value), f"{key}{_name_value(value)}"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "", "-".join(parts))
    return name[:64].rstrip("-_.") or base["name"]


def _name_value(value):
    return "" if value is True else "-off" if value is False else _format_value(value)


def named(old: Mapping, new: dict, preset_id: str = DEFAULT_PRESET) -> dict:
    """``new`` with the name `auto_name` gives it, when it kept ``old``'s automatic name (a
    name the user typed, or a design opened with its own name, is kept)."""
    if new.get("name") == old.get("name") == auto_name(old, preset_id):
        new["name"] = auto_name(new, preset_id)
    return new


# -- the URL form ---------------------------------------------------------------------------------
def encode_query(design: Mapping, preset_id: str = DEFAULT_PRESET) -> dict[str, str]:
    """The query parameters of ``design``: ``preset`` and the fields that differ from it."""
    if preset_id not in PRESET_CHOICES:
        preset_id = DEFAULT_PRESET
    base = preset_design(preset_id)
    params = {"preset": preset_id}
    for key, value in design.items():
        if key == "stem":
            base_stem = base["stem"]
            for sub, sub_value in value.items():
                if base_stem.get(sub) != sub_value:
                    params[f"stem.{sub}"] = _format_value(sub_value)
        elif key == "stages":
            if _stage_dicts(value) != _stage_dicts(base["stages"]):
                params["stages"] = format_stages(value)
        elif key == "input_shape":
            if list(value) != list(base["input_shape"]):
                params["input_shape"] = format_shape(value)
        elif key == "name":
            if value != auto_name(design, preset_id):  # a name the user typed
                params[key] = _format_value(value)
        elif key in DESIGN_PARAMS and base.get(key) != value:
            params[key] = _format_value(value)
    return params


def _stage_dicts(stages):
    return [s if isinstance(s, Mapping) else dataclasses.asdict(s) for s in stages]


def share_link(url: str | None, query: str) -> str:
    """A link to the app at ``url`` (any of its pages) that opens the design of ``query``;
    relative when the app's address is unknown.

    >>> share_link("http://host:8501/compare?runs=a#top", "preset=mnist_resnet")
    'http://host:8501/?preset=mnist_resnet'
    >>> share_link(None, "preset=mnist_resnet")
    '?preset=mnist_resnet'
    """
    base = ""
    if url:
        base = url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        for page in ("/train", "/compare", "/export", "/design"):
            if base.endswith(page):
                base = base[: -len(page)]
        base += "/"
    return f"{base}?{query}"


def decode_query(params: Mapping[str, Any]) -> tuple[str, dict, list[str]]:
    """``(preset_id, design, problems)`` from query parameters (a value each, or the list of
    values of a repeated one).

    A link opens exactly the design it names, or nothing of it: otherwise ``design`` is the
    preset's (the default preset's for an unknown one) and ``problems`` says why, every
    reason at once: a parameter that is not a link's (with the nearest known name), one given
    more than once, a value that cannot be read, each field the design refuses (a value out
    of range, over a limit of `keras_resnets.design.limits`). Page parameters
    (`PAGE_PARAMS`) are left to their page.
    """
    problems = [*_unknown(params), *_repeated(params)]
    preset_id = _first(params.get("preset", DEFAULT_PRESET))
    if preset_id not in PRESET_CHOICES:
        problems.append(f"preset={str(preset_id)[:80]!r} is not known")
        preset_id = DEFAULT_PRESET
    changes = {}
    for name, text in params.items():
        if name in DESIGN_PARAMS and name != "preset":
            try:
                changes.update([_parse_field(name, _first(text))])
            except ValueError as error:
                problems.append(str(error))
    problems += _refused(preset_id, changes)  # with the others: every bad field at once
    if problems:
        problems.append(f"the link was not opened; this is the {preset_id} preset")
        return preset_id, preset_design(preset_id), problems
    design = _changed(preset_design(preset_id), changes)
    if "name" not in changes:
        design["name"] = auto_name(design, preset_id)
    return preset_id, design, problems


PAGE_PARAMS = {"runs"}
"""Query parameters of a page, not of the design: Compare's ``runs``."""


def _unknown(params):
    """A message for each parameter that is neither a design's nor a page's."""
    known = sorted(DESIGN_PARAMS | PAGE_PARAMS)
    for name in params:
        if name not in known:
            nearest = difflib.get_close_matches(str(name)[:100], known, n=1)
            advice = (f"did you mean {nearest[0]}?" if nearest else
                      "a link holds preset, the design fields that differ from it and Compare's runs")
            yield f"{str(name)[:80]!r} is not a link parameter: {advice}"


def _repeated(params):
    """A message for each design parameter given more than once."""
    for name, value in params.items():
        if name in DESIGN_PARAMS and isinstance(value, list) and len(value) > 1:
            shown = ", ".join(repr(str(v)[:40]) for v in value[:5])
            yield (f"{name} is given {len(value)} times ({shown}); a link gives each field once")


def _refused(preset_id, changes):
    """The message of each change the design refuses: the first error of the whole design is
    blamed on the change it names, which is set back to the preset's value, until the design
    is valid or an error names no change of the link."""
    base, changes, problems = preset_design(preset_id), dict(changes), []
    while True:
        _, error = validate(_changed(copy.deepcopy(base), changes))
        if error is None:
            return problems
        problems.append(error)
        blamed = re.match(r"[a-z_]+(\.[a-z_]+)?", error)
        key = blamed and (blamed.group() if blamed.group() in changes else blamed.group().split(".")[0])
        if key not in changes:
            return problems
        del changes[key]


def _changed(design, changes):
    """``design`` with the parsed ``changes`` (``stem.<field>`` keys for the stem's) applied."""
    for key, value in changes.items():
        if key.startswith("stem."):
            design["stem"][key[len("stem."):]] = value
        else:
            design[key] = value
    return design


def _first(value):
    """The value of a parameter (its first, where it is repeated: `_repeated` refuses those)."""
    if isinstance(value, list):
        return value[0] if value else ""
    return value


def estimate_text(architecture: Architecture) -> str:
    """The size of a design before it is built, e.g. ``'about 118,650 parameters, 9 MiB'``."""
    sizes = estimate(architecture)
    return f"about {sizes['parameters']:,} parameters, {sizes['memory'] / 2**20:,.0f} MiB"


def python_snippet(architecture: Architecture) -> str:
    """Python code that rebuilds ``architecture`` with `keras_resnets.build_resnet`."""
    lines = ["import keras_resnets", "from keras_resnets import Architecture, Stage, Stem", ""]
    default = Architecture()
    fields = []
    for f in dataclasses.fields(Architecture):
        value = getattr(architecture, f.name)
        if f.name == "stem":
            stem_fields = [f"{sf.name}={getattr(value, sf.name)!r}" for sf in dataclasses.fields(Stem)
                           if getattr(value, sf.name) != getattr(Stem(), sf.name)]
            fields.append(f"    stem=Stem({', '.join(stem_fields)}),")
        elif f.name == "stages":
            fields.append("    stages=(")
            for s in value:
                extra = "" if s.kernel_size == 3 else f", kernel_size={s.kernel_size}"
                fields.append(f"        Stage(blocks={s.blocks}, channels={s.channels}, strides={s.strides}{extra}),")
            fields.append("    ),")
        elif value != getattr(default, f.name) or f.name in ("name", "input_shape", "classes"):
            fields.append(f"    {f.name}={value!r},")
    lines.append("architecture = Architecture(")
    lines += fields
    lines.append(")")
    lines += [
        "model = keras_resnets.build_resnet(architecture)",
        "print(keras_resnets.format_summary(model))",
    ]
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_PRESET",
    "auto_name",
    "DESIGN_PARAMS",
    "PAGE_PARAMS",
    "PRESET_CHOICES",
    "PresetChoice",
    "Stage",
    "decode_query",
    "encode_query",
    "estimate_text",
    "file_stem",
    "format_shape",
    "format_stages",
    "named",
    "parse_shape",
    "parse_stages",
    "preset_design",
    "python_snippet",
    "read_description",
    "shape_text",
    "share_link",
    "validate",
    "with_stage",
    "without_stage",
]
