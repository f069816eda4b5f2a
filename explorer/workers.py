"""The explorer's worker processes: training runs and experiments alike.

A worker runs ``python -m <module> ...`` with ``KERAS_BACKEND`` and the fast settings of
`keras_resnets.runtime.environment.worker_environment`, in a new session, so that closing the tab,
reloading or restarting the app does not stop it; its output goes to a log file. This app
process keeps the workers it started only to reap them when they exit; what a worker does is
read back from the files it writes.

Example:
>>> import pathlib, sys, tempfile
>>> log = pathlib.Path(tempfile.mkdtemp()) / "worker.log"
>>> process = start("demo", [sys.executable, "-c", "print('hello')"], "tensorflow", log)
>>> process.wait(), log.read_text()
(0, 'hello\\n')
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from keras_resnets.runs.processes import process_alive
from keras_resnets.runtime.environment import worker_environment

STOP_WAIT_SECONDS = 5.0
"""How long `stop` waits for a worker to exit after each signal."""

_PROCESSES: dict[str, subprocess.Popen] = {}
"""Workers started by this app process, by the id of what they write, until reaped."""


def start(key: str, command: list[str], backend: str, log_path: str | os.PathLike,
          cwd: str | os.PathLike | None = None, starting: int = 1) -> subprocess.Popen:
    """Starts ``command`` as a worker on ``backend`` in its own session, its output in
    ``log_path``; ``key`` names it for `reap`. ``starting``: the workers being started together,
    this one and those after it; they and the running ones share the cores
    (`keras_resnets.runtime.environment.core_share`)."""
    reap()
    env = worker_environment(backend, workers=len(_PROCESSES) + starting)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True, cwd=None if cwd is None else str(cwd))
    _PROCESSES[key] = process
    return process


def reap() -> None:
    """Collects the workers of this process that have exited, so that they leave no zombies."""
    for key, process in list(_PROCESSES.items()):
        if process.poll() is not None:
            del _PROCESSES[key]


def is_worker(pid, marker: str) -> bool:
    """Whether ``pid`` leads its own process group and its command line holds ``marker``: a
    worker of ours, not a process that reused its pid."""
    try:
        if os.getpgid(pid) != pid:
            return False
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, TypeError):
        return False


def stop(pid, marker: str) -> bool:
    """Stops the worker ``pid`` (see `is_worker`) and everything it started: SIGTERM to its
    process group, then SIGKILL if it is still there after `STOP_WAIT_SECONDS` (busy in
    compiled code). Returns whether it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if is_worker(pid, marker):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not process_alive(pid):
            return True
    return False
