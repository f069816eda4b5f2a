"""Starts experiment workers, cancels them and reads their results; the explorer never runs an
experiment in its own process.

An experiment runs as ``python -m keras_resnets.experiments NAME --size S --seed N --out DIR``
with ``KERAS_BACKEND`` set, in a new session (like a training run, see `explorer.runner`), so
that reloading or restarting the app does not stop it. ``DIR`` is
``<runs>/.experiments/<id>/`` (see `keras_resnets.experiments.store`); everything the page
shows is read back from there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from explorer import workers
from explorer.runner import BACKENDS
from keras_resnets.design.validation import check_choice, check_seed
from keras_resnets.experiments import EXPERIMENTS, SIZE_NAMES
from keras_resnets.experiments.store import LOG, ExperimentStore
from keras_resnets.runs.files import now
from keras_resnets.runs.processes import process_start
from keras_resnets.runs.store import ACTIVE_STATES

EXPERIMENTS_DIR = ".experiments"
ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "keras_resnets.experiments"


class ExperimentRunner:
    """The experiment runs kept under the run store ``runs_root`` and their workers."""

    def __init__(self, runs_root: str | os.PathLike = "runs"):
        self.store = ExperimentStore(Path(runs_root) / EXPERIMENTS_DIR)

    def launch(self, name: str, size: str = "quick", seed: int = 0, backend: str = "tensorflow",
               starting: int = 1) -> str:
        """Starts a worker running experiment ``name``; returns the run id at once.
        ``starting``: the workers being started together, this one and those after it."""
        check_choice("name", name, list(EXPERIMENTS))
        check_choice("size", size, list(SIZE_NAMES))
        check_choice("backend", backend, list(BACKENDS))
        check_seed("seed", seed)
        run = self.store.create(name)
        command = [sys.executable, "-m", WORKER_MODULE, name, "--size", size, "--seed", str(seed),
                   "--out", str(run.path.resolve())]
        process = workers.start(run.id, command, backend, run.path / LOG, cwd=ROOT, starting=starting)
        # The worker imports Keras for seconds before it first writes its status.
        run.write_status(state="created", fraction=0.0, message="starting the worker", pid=process.pid,
                         process_start=process_start(process.pid), name=name, size=size, seed=seed,
                         backend=backend, started=now())
        return run.id

    def runs(self):
        """All experiment runs, newest first."""
        workers.reap()
        return self.store.list()

    def get(self, run_id: str):
        """The run ``run_id``; a `ValueError` for ids that are unknown or unsafe."""
        return self.store.get(run_id)

    def cancel(self, run_id: str) -> None:
        """Asks the run's worker to stop, as a training run is asked (its ``CANCEL`` file), and
        stops it at once (`explorer.workers.stop`): an experiment has no checkpoint to finish.
        Where the worker cannot be signalled, it stops at its next progress report."""
        run = self.store.get(run_id)
        status = run.status
        if status.get("state") not in ACTIVE_STATES:
            return
        run.request_cancel()
        workers.stop(status["pid"], WORKER_MODULE)
        if run.status.get("state") in (*ACTIVE_STATES, "interrupted"):
            run.write_status(state="cancelled", message="cancelled")
