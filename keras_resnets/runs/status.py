"""The small records of a worker directory, typed and range-checked: its status
(``status.json``, `Status`) and its lock (``LOCK``, `LockRecord`).

A record is read from the JSON object of its file (`keras_resnets.runs.files.read_json`);
a field of a wrong type or out of range (a pid beyond a ``pid_t``, an epoch count no JSON
reader keeps exact, an unknown state) raises a `ValueError` naming the file, the field, its
value and what is allowed, which a reader turns into that one run's ``damaged`` reason.

`Status` reads as the JSON object too (``status["state"]``), like
`keras_resnets.runs.records.RunConfig`, so code written against the dict keeps working;
fields it does not know (an experiment's ``fraction``...) are kept as they are.

Example:
>>> Status.from_dict({"state": "running", "epoch": 2, "pid": 1234}).pid
1234
>>> Status.from_dict({"state": "running", "epoch": 2, "pid": 2**31})
Traceback (most recent call last):
...
ValueError: status.json: pid=2147483648 is not allowed: an integer in [1, 2,147,483,647] or None.
"""

import dataclasses
from collections.abc import Mapping

from keras_resnets.design.validation import (
    check_choice,
    check_int,
    check_number,
    check_seed,
    fail,
)
from keras_resnets.runs.processes import MAX_PID, holder_alive

ACTIVE_STATES = ("created", "running")
"""The states of a run whose process is (or should be) at work."""
STATES = (*ACTIVE_STATES, "completed", "interrupted", "cancelled", "failed")
DAMAGED = "damaged"
"""The state a reader gives a run whose files cannot be read; never written."""
STATUS, LOCK = "status.json", "LOCK"
PHASES = ("preparing the data", "compiling", "training", "evaluating", "saving")
"""What a running training run is doing (its status' ``phase``): the worker loads the data and
builds the model, compiles (up to the end of its first step), trains, evaluates the held-out
set at an epoch's end, and saves the trained model after the last epoch."""
MAX_COUNT = 2**53
"""The largest count of epochs or steps: JSON readers in the browser keep integers exact up to it."""
MAX_PROCESS_START = 2**63 - 1
"""The largest kernel start time of a process (clock ticks since boot, a 64-bit count)."""


def _text(name, value):
    if value is not None and not isinstance(value, str):
        fail(name, value, "a string")


def _pid(name, value):
    check_int(name, value, 1, MAX_PID, optional=True)


def _process_start(name, value):
    check_int(name, value, 0, MAX_PROCESS_START, optional=True)


def _optional(check):
    return lambda name, value: None if value is None else check(name, value)


_FIELDS = {
    "state": lambda name, value: check_choice(name, value, STATES),
    "epoch": lambda name, value: check_int(name, value, 0, MAX_COUNT),
    "epochs": lambda name, value: check_int(name, value, 1, MAX_COUNT, optional=True),
    "pid": _pid,
    "process_start": _process_start,
    "fraction": _optional(lambda name, value: check_number(name, value, 0, 1)),
    "seconds": _optional(lambda name, value: check_number(name, value, 0)),
    "seed": lambda name, value: check_seed(name, value, optional=True),
    "phase": _optional(lambda name, value: check_choice(name, value, PHASES)),
    **dict.fromkeys(("num_train", "num_validation"),
                    lambda name, value: check_int(name, value, 0, MAX_COUNT, optional=True)),
    **dict.fromkeys(("message", "updated", "host", "data_source", "dtype_policy", "name", "size",
                     "backend", "started"), _text),
}
"""The fields a status may hold (those of training runs and experiment runs), and their check."""


def check_fields(source, record, checks):
    """Checks each field of ``record`` that ``checks`` names; a `ValueError` names ``source``."""
    for name, check in checks.items():
        if name in record:
            try:
                check(name, record[name])
            except ValueError as err:
                raise ValueError(f"{source}: {err}") from None


@dataclasses.dataclass(frozen=True, eq=False)
class Status(Mapping):
    """A worker's ``status.json``, checked.

    Attributes:
        state: one of `STATES`, or `DAMAGED` for a status that cannot be read.
        epoch: the epochs completed.
        epochs: the epochs the run trains (None if unknown).
        pid: the process at work on it, with its kernel start time ``process_start`` (None if
            unknown).
        message: what happened last, for the user.
        raw: the JSON object itself (what the mapping reads).
    """

    state: str
    epoch: int = 0
    epochs: int | None = None
    pid: int | None = None
    process_start: int | None = None
    message: str = ""
    raw: dict = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw, source=STATUS):
        """Reads a status (a JSON object); a `ValueError` names ``source`` and the first field
        of a wrong type or out of range."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source} holds {type(raw).__name__}, not a JSON object.")
        raw = {"state": None, "epoch": 0, "message": "", **raw}
        check_fields(source, raw, _FIELDS)
        return cls(state=raw["state"], epoch=raw["epoch"], epochs=raw.get("epochs"),
                   pid=raw.get("pid"), process_start=raw.get("process_start"),
                   message=raw["message"], raw=raw)

    @classmethod
    def damaged(cls, reason):
        """The status of a run whose files cannot be read: `DAMAGED`, ``reason`` as message."""
        return cls(state=DAMAGED, message=str(reason),
                   raw={"state": DAMAGED, "epoch": 0, "message": str(reason)})

    def replace(self, **fields):
        """A copy with ``fields`` changed (and checked)."""
        return Status.from_dict({**self.raw, **fields})

    def __getitem__(self, key):
        return self.raw[key]

    def __iter__(self):
        return iter(self.raw)

    def __len__(self):
        return len(self.raw)

    def __eq__(self, other):
        return isinstance(other, Mapping) and dict(self.raw) == dict(other)

    __hash__ = None


_LOCK_FIELDS = {"pid": _pid, "process_start": _process_start, "host": _text, "created": _text}


@dataclasses.dataclass(frozen=True)
class LockRecord:
    """What a run's ``LOCK`` holds: the process training it (``pid``, ``host``, its kernel
    start time ``process_start``) and since when (``created``). None where unknown: an
    unreadable lock has no process, and is taken over."""

    pid: int | None = None
    host: str | None = None
    process_start: int | None = None
    created: str | None = None

    @classmethod
    def from_dict(cls, raw, source=LOCK):
        """Reads a lock (a JSON object); a `ValueError` names ``source`` and the first field
        of a wrong type or out of range."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{source} holds {type(raw).__name__}, not a JSON object.")
        check_fields(source, raw, _LOCK_FIELDS)
        return cls(**{name: raw.get(name) for name in _LOCK_FIELDS})

    def alive(self):
        """Whether the process it names is alive (another host's is assumed to be)."""
        return holder_alive(self.pid, self.host, self.process_start)
