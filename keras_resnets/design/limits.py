"""Size limits of a design, checked before any layer is built.

A description that asks for a million blocks or a billion classes would otherwise make Keras
allocate until the machine gives out. Every `Architecture` is checked against `limits()`:
stages, blocks and kernel sizes when it is made, and its estimated parameters and memory
(`keras_resnets.estimate`) as well. The defaults admit every preset with room to spare
(the largest, Wide ResNet-101-2, has 127 M parameters); raise a limit on purpose with `set_limits` or, for the
command line and the explorer, an environment variable ``KERAS_RESNETS_<FIELD>`` (for example
``KERAS_RESNETS_MAX_PARAMETERS=500000000``) set before the library is imported.

Example:
>>> previous = set_limits(max_blocks=2000)
>>> limits().max_blocks
2000
>>> _ = set_limits(**previous.to_dict())
"""

import dataclasses
import os
from dataclasses import dataclass

from keras_resnets.design.validation import check_int, fail

FLOAT_BYTES = 4


@dataclass(frozen=True)
class Limits:
    """The largest design the library builds.

    Attributes:
        max_stages: stages per network.
        max_blocks: blocks of all stages together (He et al.'s deepest, ResNet-1202, has 600).
        max_kernel_size: the kernel size of the stem and of every stage.
        max_parameters: estimated parameters (weights and batch-norm statistics).
        max_memory: estimated bytes to build and run one image forward: float32 parameters
            plus every layer's output.
        max_training_memory: estimated bytes of one training step (`training_memory`); by
            default this machine's physical memory.
    """

    max_stages: int = 64
    max_blocks: int = 1000
    max_kernel_size: int = 31
    max_parameters: int = 200_000_000
    max_memory: int = 8 * 2**30
    max_training_memory: int = dataclasses.field(default_factory=lambda: _physical_memory())

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_int(f.name, getattr(self, f.name))

    def to_dict(self):
        """The limits as a plain dict."""
        return dataclasses.asdict(self)

    def exceeded(self, name, value, what):
        """Raises the `ValueError` of a design field ``name=value`` over limit ``what``."""
        raise ValueError(
            f"{name}={value} is not allowed: the limit is {what}={getattr(self, what):,}; raise "
            f"it on purpose with keras_resnets.set_limits({what}=...) or the environment "
            f"variable KERAS_RESNETS_{what.upper()}.")


def _physical_memory():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _from_environment():
    values = {}
    for f in dataclasses.fields(Limits):
        text = os.environ.get(f"KERAS_RESNETS_{f.name.upper()}")
        if text is not None:
            try:
                values[f.name] = int(text.replace("_", ""))
            except ValueError:
                fail(f"KERAS_RESNETS_{f.name.upper()}", text, "an integer")
    return Limits(**values)


_current = _from_environment()


def limits():
    """The `Limits` in force."""
    return _current


def set_limits(**changes):
    """Changes some limits (fields of `Limits`); returns the previous `Limits`."""
    global _current
    unknown = sorted(set(changes) - set(Limits().to_dict()))
    if unknown:
        fail("set_limits", unknown, f"fields of Limits: {sorted(Limits().to_dict())}")
    previous, _current = _current, dataclasses.replace(_current, **changes)
    return previous


def estimate(architecture):
    """``{"parameters": ..., "memory": ...}`` of an `Architecture`, from its plan (no layer is
    built): all parameters, as the built model counts them, and memory in bytes: float32
    parameters plus the tensors of one example's forward pass.

    Example:
    >>> from keras_resnets import presets
    >>> estimate(presets.mnist_resnet())["parameters"]
    119402
    """
    plan = architecture.plan()
    parameters = plan.count_params()["total"]
    return {"parameters": parameters, "memory": FLOAT_BYTES * (parameters + plan.activations())}


def check_structure(architecture):
    """Raises a `ValueError` naming the field if ``architecture`` has more stages or blocks,
    or larger kernels, than the limits allow (cheap: it runs before the plan is made)."""
    current = limits()
    if len(architecture.stages) > current.max_stages:
        current.exceeded("stages", f"{len(architecture.stages):,} stages", "max_stages")
    for i, stage in enumerate(architecture.stages):
        if stage.kernel_size > current.max_kernel_size:
            current.exceeded(f"stages[{i}].kernel_size", stage.kernel_size, "max_kernel_size")
    if architecture.stem.kernel_size > current.max_kernel_size:
        current.exceeded("stem.kernel_size", architecture.stem.kernel_size, "max_kernel_size")
    if architecture.num_blocks > current.max_blocks:
        current.exceeded("stages", f"{architecture.num_blocks:,} blocks", "max_blocks")


def check_size(architecture):
    """Raises a `ValueError` if the estimated parameters or memory of ``architecture`` are
    over the limits."""
    current = limits()
    sizes = estimate(architecture)
    if sizes["parameters"] > current.max_parameters:
        current.exceeded("architecture", f"about {sizes['parameters']:,} parameters",
                         "max_parameters")
    if sizes["memory"] > current.max_memory:
        current.exceeded("architecture", f"about {sizes['memory'] / 2**30:,.1f} GiB",
                         "max_memory")


def training_memory(architecture, batch_size):
    """Estimated bytes of one training step of ``architecture`` on ``batch_size`` images, from
    its plan: float32 parameters four times (weights, gradients and an optimizer's two moments)
    and the batch's activations, which the backward pass keeps.

    Example:
    >>> from keras_resnets import presets
    >>> round(training_memory(presets.mnist_resnet(), 16) / 2**20)
    137
    """
    plan = architecture.plan()
    return FLOAT_BYTES * (4 * plan.count_params()["total"] + batch_size * plan.activations())


def check_training_memory(architecture, batch_size):
    """Raises a `ValueError` naming ``batch_size`` if a training step's `training_memory` is
    over the limit."""
    current = limits()
    need = training_memory(architecture, batch_size)
    if need > current.max_training_memory:
        raise ValueError(
            f"batch_size={batch_size:,} is not allowed: a training step of this design would "
            f"need about {need / 2**30:,.1f} GiB, over the limit max_training_memory="
            f"{current.max_training_memory / 2**30:,.1f} GiB; use a smaller batch, or raise the "
            f"limit on purpose with keras_resnets.set_limits(max_training_memory=...) or the "
            f"environment variable KERAS_RESNETS_MAX_TRAINING_MEMORY.")
