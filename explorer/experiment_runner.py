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
import signal
import subprocess
import sys
import time
from pathlib import Path

from explorer.runner import BACKENDS
from keras_resnets.environment import worker_environment
from keras_resnets.experiments import EXPERIMENTS, SIZE_NAMES
from keras_resnets.experiments.store import ACTIVE_STATES, LOG, ExperimentStore
from keras_resnets.runs import now, process_alive

EXPERIMENTS_DIR = ".experiments"
ROOT = Path(__file__).resolve().parent.parent
CANCEL_WAIT_SECONDS = 5.0
"""How long Cancel waits for the worker to exit after each signal."""

_PROCESSES: dict[str, subprocess.Popen] = {}
"""Workers started by this app process, kept so that finished ones are reaped."""


class ExperimentRunner:
    """The experiment runs kept under the run store ``runs_root`` and their workers."""

    def __init__(self, runs_root: str | os.PathLike = "runs"):
        self.store = ExperimentStore(Path(runs_root) / EXPERIMENTS_DIR)

    def launch(self, name: str, size: str = "quick", seed: int = 0, backend: str = "tensorflow") -> str:
        """Starts a worker running experiment ``name``; returns the run id at once."""
        if name not in EXPERIMENTS:
            raise ValueError(f"name={name!r} is not allowed: one of {list(EXPERIMENTS)}.")
        if size not in SIZE_NAMES:
            raise ValueError(f"size={size!r} is not allowed: one of {list(SIZE_NAMES)}.")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not allowed: one of {list(BACKENDS)}.")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} is not allowed: an integer >= 0.")
        run = self.store.create(name)
        command = [sys.executable, "-m", "keras_resnets.experiments", name, "--size", size, "--seed", str(seed),
                   "--out", str(run.path.resolve())]
        env = worker_environment(backend)
        with open(run.path / LOG, "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True, cwd=str(ROOT))
        _PROCESSES[run.id] = process
        # The worker imports Keras for seconds before it first writes its status.
        run.write_status(state="created", fraction=0.0, message="starting the worker", pid=process.pid, name=name,
                         size=size, seed=seed, backend=backend, started=now())
        return run.id

    def runs(self):
        """All experiment runs, newest first."""
        for run_id, process in list(_PROCESSES.items()):
            if process.poll() is not None:
                del _PROCESSES[run_id]
        return self.store.list()

    def get(self, run_id: str):
        """The run ``run_id``; a `ValueError` for ids that are unknown or unsafe."""
        return self.store.get(run_id)

    def cancel(self, run_id: str) -> None:
        """Stops the run's worker and marks the run cancelled: SIGTERM to its process group,
        then SIGKILL if it is still there after `CANCEL_WAIT_SECONDS` (busy in compiled code).

        Where the worker cannot be signalled, it stops at its next progress report.
        """
        run = self.store.get(run_id)
        status = run.status
        if status.get("state") not in ACTIVE_STATES:
            return
        pid = status["pid"]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if _is_worker(pid):
                os.killpg(pid, sig)
            deadline = time.monotonic() + CANCEL_WAIT_SECONDS
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not process_alive(pid):
                break
        if run.status.get("state") in (*ACTIVE_STATES, "interrupted"):
            run.write_status(state="cancelled", message="cancelled")


def _is_worker(pid) -> bool:
    """Whether ``pid`` is an experiment worker leading its own process group (so that a
    reused pid never gets a signal)."""
    try:
        if os.getpgid(pid) != pid:
            return False
        return b"keras_resnets.experiments" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, TypeError):
        return False
