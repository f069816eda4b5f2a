"""What a run's files hold, typed: its configuration (``config.json``) and its metric events
(the lines of ``metrics.jsonl``).

`RunConfig` gives each part of a configuration a typed field and reads as the JSON object
too (``config["seed"]``), so code written against the dict keeps working. It reads whatever a
run holds, of any version, so that listing a store never fails on one run; the checked request
the run was trained with is `keras_resnets.training.request.TrainingRequest.from_config(config)`
(training's: this room cannot import it). Events stay the
dicts the file holds; `EpochEvent`, `BatchEvent` and `ProbeEvent` say which fields each kind
has, and `epochs`, `batches` and `probes` pick them out. Readers skip kinds they do not know,
so a run written before probes existed reads as it always did.

Example:
>>> config = RunConfig.from_dict({"architecture": {"name": "mnist_resnet"}, "seed": 3,
...                               "dataset": {"name": "mnist_sample", "subset": 1000}})
>>> config.name, config.seed, config.dataset.subset, config["seed"]
('mnist_resnet', 3, 1000, 3)
>>> [e["epoch"] for e in epochs([{"event": "batch", "epoch": 0}, {"event": "epoch", "epoch": 0}])]
[0]
"""

import dataclasses
from collections.abc import Mapping
from typing import TypedDict


class BatchEvent(TypedDict, total=False):
    """A ``"batch"`` line: written every few batches while an epoch trains."""

    event: str
    epoch: int  # the epoch it belongs to, from 0
    step: int  # batches trained since the run began
    loss: float
    accuracy: float
    images_per_second: float
    time: float  # when it was written (Unix time)


class EpochEvent(TypedDict, total=False):
    """An ``"epoch"`` line: written once an epoch is trained, validated and checkpointed."""

    event: str
    epoch: int
    step: int
    loss: float
    accuracy: float
    val_loss: float | None  # None without a validation split
    val_accuracy: float | None
    learning_rate: float
    seconds: float  # the epoch's wall time
    time: float


class ProbeEvent(TypedDict, total=False):
    """A ``"probe"`` line: the model on a fixed few hundred held-out images, a few times a run
    (`keras_resnets.training.probe`), so that a short run has a validation curve."""

    event: str
    epoch: int
    step: int
    val_loss: float
    val_accuracy: float
    images: int  # how many held-out images it evaluated
    time: float


def epochs(events) -> list[EpochEvent]:
    """The ``"epoch"`` events of ``events``, in order."""
    return [e for e in events if e.get("event") == "epoch"]


def batches(events) -> list[BatchEvent]:
    """The ``"batch"`` events of ``events``, in order."""
    return [e for e in events if e.get("event") == "batch"]


def probes(events) -> list[ProbeEvent]:
    """The ``"probe"`` events of ``events``, in order."""
    return [e for e in events if e.get("event") == "probe"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The data a run trains on (``config["dataset"]``), as recorded: None where a run did not
    say, other keys (a newer version's) left out, nothing checked.

    `keras_resnets.data.spec.DataSpec` has the same fields, checked: a new run's data, and the
    data of `TrainingRequest.from_config`. Both exist because a listing must read every run:
    a DataSpec fills a missing name with the default dataset (a damaged run would seem to have
    trained on it) and refuses a dataset the catalogue no longer has, which would make the
    whole run unreadable; the fields are the same (tests/test_request.py checks it).
    """

    name: str | None = None
    subset: int | None = None
    validation_split: float | None = None
    data_dir: str | None = None
    augment: bool = False
    transforms: str | None = None
    validation_dataset: str | None = None

    @classmethod
    def from_dict(cls, data):
        """The known fields of ``data``; others (from a newer version) are left out."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


_OBJECTS = ("architecture", "dataset", "recipe", "versions")
_STRINGS = ("backend", "created", "distribution", "engine")


@dataclasses.dataclass(frozen=True, eq=False)
class RunConfig(Mapping):
    """A run's ``config.json``: what was trained, on what, how, where and when.

    Attributes:
        architecture: the description, as `Architecture.to_dict` writes it
            (`Architecture.from_dict` reads it back).
        dataset: a `DataConfig`, as recorded.
        recipe: the recipe, as `Recipe.to_dict` writes it (`Recipe.from_dict` reads it back).
        seed: the seed of the weights and of the data's order.
        backend: the Keras backend that trained it (None if unknown).
        distribution: ``"none"`` or ``"data_parallel"``.
        processes: how many processes trained it together (1 for one).
        engine: the engine that joined them (``"jax.distributed"``,
            ``"MultiWorkerMirroredStrategy"``, ``"torch.distributed DDP"``), or None.
        created: when the run was created (ISO 8601).
        versions: Python's and the libraries' versions.
        raw: the JSON object itself (what the mapping reads).
    """

    architecture: dict
    dataset: DataConfig
    recipe: dict
    seed: int | None
    backend: str | None
    distribution: str
    processes: int
    engine: str | None
    created: str
    versions: dict
    raw: dict = dataclasses.field(repr=False)

    @classmethod
    def from_dict(cls, raw):
        """Reads a configuration (a JSON object, or a `RunConfig`); a `ValueError` names the
        first field of a wrong type (``"seed='x', not an integer"``)."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{raw!r:.80}, not a JSON object")
        raw = dict(raw)
        for name, kind, what in [(n, dict, "a JSON object") for n in _OBJECTS] + [
                (n, str, "a string") for n in _STRINGS]:
            if raw.get(name) is not None and not isinstance(raw[name], kind):
                raise ValueError(f"{name}={raw[name]!r:.80}, not {what}")
        seed = raw.get("seed", 0)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed={seed!r:.80}, not an integer")
        processes = raw.get("processes", 1)
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes={processes!r:.80}, not a positive integer")
        return cls(
            architecture=raw.get("architecture") or {}, dataset=DataConfig.from_dict(raw.get("dataset") or {}),
            recipe=raw.get("recipe") or {}, seed=seed, backend=raw.get("backend"),
            distribution=raw.get("distribution") or "none", processes=processes,
            engine=raw.get("engine"), created=raw.get("created") or "",
            versions=raw.get("versions") or {}, raw=raw)

    @property
    def name(self) -> str:
        """The architecture's name (``"run"`` when it has none)."""
        return str(self.architecture.get("name") or "run")

    def design(self):
        """The `Architecture` that was trained."""
        from keras_resnets.design.architecture import Architecture

        return Architecture.from_dict(self.architecture)

    def __getitem__(self, key):
        return self.raw[key]

    def __iter__(self):
        return iter(self.raw)

    def __len__(self):
        return len(self.raw)

    def __eq__(self, other):
        return isinstance(other, Mapping) and dict(self.raw) == dict(other)

    __hash__ = None
