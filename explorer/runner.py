"""Starts training workers and reads the run store; the explorer never trains in its own process.

A run is trained by ``python -m keras_resnets train ...`` in its own process, with
``KERAS_BACKEND`` set to the backend picked on the page, in a new session so that closing the
tab, reloading or restarting the app does not stop it. Everything the pages show is read back
from the run store (``runs/<id>/``), so any tab sees every run, finished or still training.

A worker is handed its `TrainingRequest` whole, as JSON (``train --request``): what the page
asked for is what the run's ``config.json`` holds. Before its run directory exists, a worker
is known by a launch record in ``<runs>/.launch/<run id>.json`` (`LaunchRecord`; its output in
``<run id>.log``, its request in ``<run id>.request.json``): that is
how a worker that dies while starting (an import error, a bad argument) is reported instead
of forgotten. A record that cannot be read is reported as a failed launch, with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from explorer import workers
from keras_resnets.design.validation import check_choice, check_int, check_number, fail
from keras_resnets.runs.files import read_json, tail_text, write_json
from keras_resnets.runs.processes import MAX_PID, process_alive
from keras_resnets.runs.status import check_fields
from keras_resnets.runs.store import ACTIVE_STATES, CONFIG, RunStore, check_run_id, new_run_id
from keras_resnets.data.spec import DataSpec
from keras_resnets.training import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe, TrainingRequest

BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
LAUNCH_DIR = ".launch"
REQUEST = ".request"
"""``<run id>.request.json`` beside a launch record: the request its worker reads."""
ATTACHMENTS = (REQUEST, ".architecture")  # older explorers handed the worker its design alone
START_GRACE_SECONDS = 300
"""How long a worker may take to create its run directory before it is reported as stuck."""


def available_backends() -> dict[str, bool]:
    """Which Keras backends are installed (importable) here."""
    return {name: importlib.util.find_spec(name) is not None for name in BACKENDS}


def backend_choices(installed) -> list[str]:
    """The backends a page offers, of ``installed`` (`available_backends`); TensorFlow when
    none is found.

    >>> backend_choices({"tensorflow": False, "jax": True, "torch": True})
    ['jax', 'torch']
    """
    return [b for b in BACKENDS if installed[b]] or ["tensorflow"]


# The Train page's default run, started from the page, on 2 CPU cores (issue 4): 41 s on
# PyTorch, 50 s on JAX, 61 s on TensorFlow, whose graph preparation takes longest to start.
FASTEST_FIRST = ("torch", "jax", "tensorflow")


def default_backend() -> str:
    """The installed backend that trains the default design soonest on a CPU."""
    installed = available_backends()
    return next((b for b in FASTEST_FIRST if installed[b]), "tensorflow")


@dataclass(frozen=True)
class TrainRequest:
    """What the Train page asks for: its settings (data, recipe, seed, backend, processes; the
    design comes apart), as the widgets hold them. `training_request` makes the library's
    `TrainingRequest` of them, which the worker is handed whole (`Runner.launch`)."""

    # The defaults are the first minute (keras_resnets.training.recipe, where its measured accuracy
    # and time are written down).
    dataset: str = "mnist_sample"
    subset: int | None = FIRST_MINUTE_SUBSET
    validation_split: float = VALIDATION_SPLIT
    recipe: str = "quick"
    epochs: int = Recipe().epochs
    batch_size: int = Recipe().batch_size
    optimizer: str | None = None
    learning_rate: float | None = None
    schedule: str | None = None
    """None: the recipe's (as ``optimizer`` and ``learning_rate``)."""
    seed: int = 0
    backend: str = field(default_factory=default_backend)
    distribution: str = "none"
    validation_dataset: str | None = None
    """An image folder of held-out images for a training folder (then ``validation_split`` is 0)."""
    transforms: str | None = None
    """The input transforms' name; None for the dataset's default."""
    processes: int = 1
    """Processes that train the run together on this machine."""

    def training_request(self, architecture) -> TrainingRequest:
        """The library's request of these settings for ``architecture``; a `ValueError` names
        the first wrong one.

        >>> from keras_resnets.design.presets import mnist_resnet
        >>> TrainRequest(recipe="paper", epochs=2, backend="jax").training_request(mnist_resnet()).recipe.optimizer
        'sgd'
        >>> request = TrainRequest(dataset="/data/pets", validation_split=0.0, validation_dataset="/data/val",
        ...                        transforms="cifar", processes=2, backend="jax").training_request(mnist_resnet())
        >>> request.dataset.validation_dataset, request.dataset.transforms, request.processes
        ('/data/val', 'cifar', 2)
        """
        changes = {"optimizer": self.optimizer, "learning_rate": self.learning_rate, "schedule": self.schedule}
        recipe = Recipe.named(self.recipe, epochs=self.epochs, batch_size=self.batch_size,
                              **{name: value for name, value in changes.items() if value is not None})
        return TrainingRequest(architecture, self.data_spec(), recipe, seed=self.seed,
                               distribution=self.distribution, processes=self.processes)

    def data_spec(self) -> DataSpec:
        """The library's `DataSpec` of the data settings (what `training_request` hands the
        worker, and what the page describes before it starts); a `ValueError` names the first
        wrong one.

        >>> TrainRequest(dataset="/data/pets", validation_split=0.0, validation_dataset="/data/val",
        ...              transforms="cifar", backend="jax").data_spec().validation_dataset
        '/data/val'
        """
        return DataSpec(self.dataset, subset=self.subset, validation_split=self.validation_split,
                        validation_dataset=self.validation_dataset, transforms=self.transforms)


def _strings(name, value):
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        fail(name, value, "a list of strings")


@dataclass(frozen=True)
class LaunchRecord:
    """A worker being started: ``<runs>/.launch/<run_id>.json``, checked."""

    run_id: str
    pid: int
    backend: str
    started: float
    """When the worker was started (Unix time)."""
    command: tuple = ()

    @classmethod
    def read(cls, path: Path) -> LaunchRecord:
        """The record in ``path``; a `ValueError` names the file and the first wrong field."""
        name = f"{LAUNCH_DIR}/{path.name}"
        raw = {"run_id": None, "pid": None, "backend": None, "started": None,
               **read_json(path, name)}
        check_fields(name, raw, _LAUNCH_FIELDS)
        if raw["run_id"] != path.name.removesuffix(".json"):
            raise ValueError(f"{name}: run_id={raw['run_id']!r} is not the name of its file.")
        return cls(run_id=raw["run_id"], pid=raw["pid"], backend=raw["backend"],
                   started=float(raw["started"]), command=tuple(raw.get("command", ())))


_LAUNCH_FIELDS = {
    "run_id": lambda name, value: check_run_id(value),
    "pid": lambda name, value: check_int(name, value, 1, MAX_PID),
    "backend": lambda name, value: check_choice(name, value, sorted(BACKENDS)),
    "started": lambda name, value: check_number(name, value, 0),
    "command": _strings,
}


class Runner:
    """The run store at ``root`` and the workers that write into it."""

    def __init__(self, root: str | os.PathLike = "runs"):
        self.root = Path(root)
        self.store = RunStore(self.root)

    # -- starting ---------------------------------------------------------------------------
    def launch(self, request: TrainingRequest, backend: str, starting: int = 1) -> str:
        """Starts a worker training ``request`` with ``backend`` as a new run; returns the run id
        at once. The worker reads the request whole (``train --request``), as it is written in
        ``.launch/<run id>.request.json``. ``starting``: the workers being started together,
        this one and those after it. A request of several processes starts one that launches
        them (`keras_resnets.training.processes`)."""
        check_choice("backend", backend, sorted(BACKENDS))
        run_id = new_run_id(request.architecture.name)
        launch_dir = self.root / LAUNCH_DIR
        launch_dir.mkdir(parents=True, exist_ok=True)
        request_path = launch_dir / f"{run_id}{REQUEST}.json"
        write_json(request_path, request.to_dict())
        log_path = launch_dir / f"{run_id}.log"
        command = [sys.executable, "-m", "keras_resnets", "train", "--request", str(request_path.resolve()),
                   "--runs-dir", str(self.root.resolve()), "--run-id", run_id, "--quiet"]
        process = workers.start(run_id, command, backend, log_path, cwd=self.root.resolve().parent,
                                starting=starting + request.processes - 1)  # its processes share the cores too
        write_json(launch_dir / f"{run_id}.json", dataclasses.asdict(LaunchRecord(
            run_id=run_id, pid=process.pid, backend=backend, started=time.time(),
            command=command[1:])))
        return run_id

    # -- reading ------------------------------------------------------------------------------
    def pending(self) -> list[dict]:
        """Launches whose run directory does not exist yet, each ``{"run_id", "backend",
        "state", "log"}``, ``state`` ``starting`` (the worker is alive) or ``failed`` (it
        exited, or its record cannot be read; ``log`` says why)."""
        workers.reap()
        launch_dir = self.root / LAUNCH_DIR
        if not launch_dir.is_dir():
            return []
        out = []
        for record_path in sorted(launch_dir.glob("*.json")):
            run_id = record_path.name.removesuffix(".json")
            if run_id.endswith(ATTACHMENTS):
                continue
            try:
                check_run_id(run_id)
            except ValueError:
                continue  # not a file this app wrote: it could not be dismissed
            if (self.root / run_id / CONFIG).exists():
                continue
            out += self._launch_state(record_path, run_id)
        return out

    def _launch_state(self, record_path: Path, run_id: str) -> list[dict]:
        """``[]`` for a launch failed over a day ago, else one entry of `pending`."""
        try:
            record = LaunchRecord.read(record_path)
        except ValueError as error:
            return [{"run_id": run_id, "backend": None, "state": "failed",
                     "log": f"(its launch record cannot be read: {error})\n{self.log_tail(run_id)}"}]
        age = time.time() - record.started
        if process_alive(record.pid) and age < START_GRACE_SECONDS:
            return [{"run_id": run_id, "backend": record.backend, "state": "starting", "log": ""}]
        if age < 24 * 3600:
            return [{"run_id": run_id, "backend": record.backend, "state": "failed",
                     "log": self.log_tail(run_id)}]
        return []

    def log_tail(self, run_id: str, lines: int = 25) -> str:
        """The last lines a worker printed (its output goes to ``.launch/<id>.log``)."""
        check_run_id(run_id)
        return tail_text(self.root / LAUNCH_DIR / f"{run_id}.log", lines)

    def dismiss(self, run_id: str) -> None:
        """Forgets a failed launch."""
        check_run_id(run_id)
        for suffix in (".json", ".log", *(f"{attachment}.json" for attachment in ATTACHMENTS)):
            (self.root / LAUNCH_DIR / f"{run_id}{suffix}").unlink(missing_ok=True)

    def runs(self):
        """All runs of the store, newest first."""
        workers.reap()
        return self.store.list()

    def get(self, run_id: str):
        """The run ``run_id``; `ValueError` for ids that are unknown or unsafe."""
        return self.store.get(run_id)

    def cancel(self, run_id: str) -> None:
        """Asks the run's worker to stop after the current batch."""
        self.store.get(run_id).request_cancel()


def runs_from_link(values, known) -> tuple[list[str], list[str]]:
    """``(ids, problems)``: the ids of ``known`` that a link's ``runs`` values
    (comma-separated) name, in order and each once, and why the others were left out.

    >>> runs_from_link(["a,b,a", "zz"], {"a", "b"})
    (['a', 'b'], ["runs: 'zz' is not a run of the store"])
    """
    wanted = list(dict.fromkeys(part for value in values for part in str(value).split(",") if part))
    ids = [run_id for run_id in wanted if run_id in known]
    unknown = [run_id for run_id in wanted if run_id not in known]
    if not unknown:
        return ids, []
    names = ", ".join(repr(run_id[:64]) for run_id in unknown[:5])
    more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
    verb = "is not a run" if len(unknown) == 1 else "are not runs"
    return ids, [f"runs: {names}{more} {verb} of the store"]


def is_active(run) -> bool:
    return run.status.get("state") in ACTIVE_STATES
