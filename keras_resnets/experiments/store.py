"""Experiment results on disk: one directory per run of an experiment, written atomically.

A worker (``python -m keras_resnets.experiments NAME --out DIR``) writes into its directory:

- ``status.json``: ``state`` (``created``, written by whoever starts the worker, then
  ``running``, ``completed``, ``failed`` or ``cancelled``), ``fraction`` done, ``message``, ``pid``, ``name``, ``size``, ``seed``,
  ``backend``, ``started``, ``updated`` and, once done, ``seconds``.
- ``data.csv``, ``chart.json`` (the chart's Vega-Lite spec) and ``summary.json``, at the end.
- ``log.txt``: the worker's output, where the explorer started it.

A status that says ``created`` or ``running`` while its process is gone reads as
``interrupted``. The explorer keeps these directories in ``<runs>/.experiments/``.
"""

from pathlib import Path

import altair as alt

from keras_resnets.runs import (ACTIVE_STATES, check_run_id, new_run_id, process_alive, read_json,
                                update_status, write_atomic, write_json)

STATUS, DATA, CHART, SUMMARY, LOG = "status.json", "data.csv", "chart.json", "summary.json", "log.txt"
STATES = (*ACTIVE_STATES, "completed", "failed", "cancelled")


class ExperimentRun:
    """The directory of one experiment run.

    Attributes:
        id: the directory's name.
        path: the directory, a `pathlib.Path`.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.id = self.path.name

    @property
    def status(self):
        """The dict in ``status.json``; an active state whose process is gone reads as
        ``interrupted``, an unreadable file as ``failed``."""
        try:
            status = read_json(self.path / STATUS)
        except ValueError as err:
            return {"state": "failed", "fraction": 0.0, "message": str(err)}
        if status.get("state") in ACTIVE_STATES and not process_alive(status.get("pid")):
            status["state"] = "interrupted"
            status["message"] = f"the worker (pid {status.get('pid')}) stopped without finishing."
        return status

    def write_status(self, **fields):
        """Updates ``status.json`` with ``fields`` (and the time), atomically."""
        update_status(self.path / STATUS, STATES, **fields)

    def save(self, result):
        """Writes a `Result`: ``data.csv``, ``chart.json`` and ``summary.json``."""
        write_atomic(self.path / DATA, lambda tmp: result.data.to_csv(tmp, index=False))
        with alt.data_transformers.disable_max_rows():
            spec = result.chart.to_json()
        write_atomic(self.path / CHART, lambda tmp: tmp.write_text(spec))
        write_json(self.path / SUMMARY, result.summary)

    def summary(self):
        """The headline numbers; a `ValueError` until they are written."""
        return read_json(self.path / SUMMARY)

    def chart_spec(self):
        """The chart's Vega-Lite spec (a dict); a `ValueError` until it is written."""
        return read_json(self.path / CHART)

    def data_csv(self):
        """The bytes of ``data.csv``; a `ValueError` until it is written."""
        try:
            return (self.path / DATA).read_bytes()
        except OSError as err:
            raise ValueError(f"{self.path / DATA} is not readable: {err}") from err

    def log_tail(self, lines=20):
        """The last lines the worker printed, or ``""``."""
        try:
            return "\n".join((self.path / LOG).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class ExperimentStore:
    """The experiment runs under ``root``, one directory each."""

    def __init__(self, root):
        self.root = Path(root)

    def path(self, run_id):
        """The directory of ``run_id``; a `ValueError` for ids that could leave ``root``."""
        check_run_id(run_id)
        path = self.root / run_id
        if path.resolve().parent != self.root.resolve():
            raise ValueError(f"run_id={run_id!r} is not allowed: it leads outside {self.root}.")
        return path

    def create(self, name):
        """A new, empty directory for a run of experiment ``name``."""
        path = self.path(new_run_id(name))
        path.mkdir(parents=True)
        return ExperimentRun(path)

    def get(self, run_id):
        """The run ``run_id``; a `ValueError` if there is none."""
        path = self.path(run_id)
        if not (path / STATUS).is_file():
            raise ValueError(f"run_id={run_id!r} is not an experiment run in {self.root}.")
        return ExperimentRun(path)

    def list(self):
        """All runs with a status, newest first (ids start with their creation time)."""
        if not self.root.is_dir():
            return []
        runs = []
        for entry in self.root.iterdir():
            try:
                runs.append(self.get(entry.name))
            except ValueError:
                continue
        return sorted(runs, key=lambda run: run.id, reverse=True)
