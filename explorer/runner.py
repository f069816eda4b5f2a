"""Starts training workers and reads the run store; the explorer never trains in its own process.

A run is trained by ``python -m keras_resnets train ...`` in its own process, with
``KERAS_BACKEND`` set to the backend picked on the page, in a new session so that closing the
tab, reloading or restarting the app does not stop it. Everything the pages show is read back
from the run store (``runs/<id>/``), so any tab sees every run, finished or still training.

Before its run directory exists, a worker is known by a launch record in
``<runs>/.launch/<run id>.json`` (and its output in ``<run id>.log``): that is how a worker
that dies while starting (an import error, a bad argument) is reported instead of forgotten.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from explorer import workers
from keras_resnets.design.validation import check_choice
from keras_resnets.runs.files import write_json
from keras_resnets.runs.processes import process_alive
from keras_resnets.runs.store import ACTIVE_STATES, CONFIG, RunStore, check_run_id, new_run_id
from keras_resnets.training import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe

BACKENDS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
LAUNCH_DIR = ".launch"
START_GRACE_SECONDS = 300
"""How long a worker may take to create its run directory before it is reported as stuck."""


def available_backends() -> dict[str, bool]:
    """Which Keras backends are installed (importable) here."""
    return {name: importlib.util.find_spec(name) is not None for name in BACKENDS}


# The Train page's default run, started from the page, on 2 CPU cores (issue 4): 41 s on
# PyTorch, 50 s on JAX, 61 s on TensorFlow, whose graph preparation takes longest to start.
FASTEST_FIRST = ("torch", "jax", "tensorflow")


def default_backend() -> str:
    """The installed backend that trains the default design soonest on a CPU."""
    installed = available_backends()
    return next((b for b in FASTEST_FIRST if installed[b]), "tensorflow")


@dataclass(frozen=True)
class TrainRequest:
    """What the Train page asks for: data, recipe, seed and backend (the design comes apart)."""

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
    seed: int = 0
    backend: str = field(default_factory=default_backend)
    distribution: str = "none"
    extra: dict = field(default_factory=dict)
    """Other recipe fields, by name (``momentum``, ``weight_decay``, ``warmup_epochs``): each
    becomes the worker's ``--momentum``-style option."""

    def arguments(self) -> list[str]:
        args = ["--dataset", self.dataset, "--validation-split", repr(float(self.validation_split)),
                "--recipe", self.recipe, "--epochs", str(int(self.epochs)),
                "--batch-size", str(int(self.batch_size)), "--seed", str(int(self.seed))]
        if self.subset:
            args += ["--subset", str(int(self.subset))]
        if self.optimizer:
            args += ["--optimizer", self.optimizer]
        if self.learning_rate:
            args += ["--learning-rate", repr(float(self.learning_rate))]
        if self.schedule:
            args += ["--schedule", self.schedule]
        if self.distribution != "none":
            args += ["--distribution", self.distribution]
        for name, value in self.extra.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        return args


class Runner:
    """The run store at ``root`` and the workers that write into it."""

    def __init__(self, root: str | os.PathLike = "runs"):
        self.root = Path(root)
        self.store = RunStore(self.root)

    # -- starting ---------------------------------------------------------------------------
    def launch(self, architecture, request: TrainRequest, starting: int = 1) -> str:
        """Starts a worker training ``architecture`` as a new run; returns the run id at once.
        ``starting``: the workers being started together, this one and those after it."""
        check_choice("backend", request.backend, sorted(BACKENDS))
        run_id = new_run_id(architecture.name)
        launch_dir = self.root / LAUNCH_DIR
        launch_dir.mkdir(parents=True, exist_ok=True)
        arch_path = launch_dir / f"{run_id}.architecture.json"
        arch_path.write_text(architecture.to_json(indent=2))
        log_path = launch_dir / f"{run_id}.log"
        command = [sys.executable, "-m", "keras_resnets", "train", "--architecture", str(arch_path.resolve()),
                   *request.arguments(), "--runs-dir", str(self.root.resolve()), "--run-id", run_id, "--quiet"]
        process = workers.start(run_id, command, request.backend, log_path, cwd=self.root.resolve().parent,
                                starting=starting)
        write_json(launch_dir / f"{run_id}.json", {
            "run_id": run_id, "pid": process.pid, "backend": request.backend, "started": time.time(),
            "command": command[1:],
        })
        return run_id

    # -- reading ------------------------------------------------------------------------------
    def pending(self) -> list[dict]:
        """Launches whose run directory does not exist yet, each with ``state``:
        ``starting`` (the worker is alive) or ``failed`` (it exited; ``log`` says why)."""
        workers.reap()
        launch_dir = self.root / LAUNCH_DIR
        if not launch_dir.is_dir():
            return []
        out = []
        for record_path in sorted(launch_dir.glob("*.json")):
            if record_path.name.endswith(".architecture.json"):
                continue
            try:
                record = json.loads(record_path.read_text())
                run_id = check_run_id(record["run_id"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if (self.root / run_id / CONFIG).exists():
                continue
            alive = process_alive(record.get("pid"))
            age = time.time() - float(record.get("started", 0))
            if alive and age < START_GRACE_SECONDS:
                out.append({**record, "state": "starting", "log": ""})
            elif age < 24 * 3600:
                out.append({**record, "state": "failed", "log": self.log_tail(run_id)})
        return out

    def log_tail(self, run_id: str, lines: int = 25) -> str:
        """The last lines a worker printed (its output goes to ``.launch/<id>.log``)."""
        check_run_id(run_id)
        path = self.root / LAUNCH_DIR / f"{run_id}.log"
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def dismiss(self, run_id: str) -> None:
        """Forgets a failed launch."""
        check_run_id(run_id)
        for suffix in (".json", ".log", ".architecture.json"):
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


def is_active(run) -> bool:
    return run.status.get("state") in ACTIVE_STATES
