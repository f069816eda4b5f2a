"""Experiment results on disk: one directory per run of an experiment, written atomically.

Experiment runs are worker directories like training runs (`keras_resnets.runs.store.WorkerDirectory`):
the same states, the same rule for a worker that died, the same ``CANCEL`` flag. A worker
(``python -m keras_resnets.experiments NAME --out DIR``) writes into its directory:

- ``status.json``: ``state`` (``created``, written by whoever starts the worker, then
  ``running``, ``completed``, ``failed`` or ``cancelled``), ``fraction`` done, ``message``,
  ``pid``, ``process_start``, ``name``, ``size``, ``seed``, ``backend``, ``started``,
  ``updated`` and, once done, ``seconds``.
- ``data.csv``, ``chart.json`` (the chart's Vega-Lite spec) and ``summary.json``, at the end.
- ``log.txt``: the worker's output, where the explorer started it.

The explorer keeps these directories in ``<runs>/.experiments/``.

Example:
>>> import tempfile
>>> store = ExperimentStore(tempfile.mkdtemp())
>>> run = store.create("depth")
>>> run.write_status(state="running", pid=None)
>>> [r.status["state"] for r in store.list()]  # no pid: no live worker
['interrupted']
"""

import altair as alt

from keras_resnets.runs.files import open_regular, read_json, tail_text, write_atomic, write_json
from keras_resnets.runs.status import Status
from keras_resnets.runs.store import STATUS, DirectoryStore, WorkerDirectory, new_run_id

DATA, CHART, SUMMARY, LOG = "data.csv", "chart.json", "summary.json", "log.txt"
MAX_RESULT_BYTES = 2**26
"""The largest ``chart.json`` or ``data.csv`` read (64 MiB): the chart holds its data."""


class ExperimentRun(WorkerDirectory):
    """The directory of one experiment run.

    Attributes:
        id: the directory's name.
        path: the directory, a `pathlib.Path`.
    """

    @property
    def status(self):
        """The `keras_resnets.runs.status.Status` of ``status.json`` (it reads as the dict
        too); an active state whose worker is gone reads as ``interrupted``, a file that cannot
        be read, or holds a wrong type or value, as ``failed``."""
        try:
            return self.read_status(".")
        except ValueError as err:
            return Status.from_dict({"state": "failed", "fraction": 0.0, "message": str(err)})

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
        return read_json(self.path / CHART, max_bytes=MAX_RESULT_BYTES)

    def data_csv(self):
        """The bytes of ``data.csv``; a `ValueError` until it is written."""
        try:
            with open_regular(self.path / DATA) as file:
                data = file.read(MAX_RESULT_BYTES + 1)
        except OSError as err:
            raise ValueError(f"{self.path / DATA} is not readable: {err}") from err
        if len(data) > MAX_RESULT_BYTES:
            raise ValueError(f"{self.path / DATA} is larger than {MAX_RESULT_BYTES:,} bytes.")
        return data

    def log_tail(self, lines=20):
        """The last lines the worker printed, or ``""``."""
        return tail_text(self.path / LOG, lines)


class ExperimentStore(DirectoryStore):
    """The experiment runs under ``root``, one directory each."""

    def create(self, name):
        """A new, empty directory for a run of experiment ``name``."""
        return ExperimentRun(self._make(new_run_id(name)))

    def get(self, run_id):
        """The run ``run_id``; a `ValueError` if there is none."""
        path = self.path(run_id)
        if not (path / STATUS).is_file():
            raise ValueError(f"run_id={run_id!r} is not an experiment run in {self.root}.")
        return ExperimentRun(path)

    def list(self):
        """All runs with a status, newest first (ids start with their creation time)."""
        runs = [ExperimentRun(path) for path in self._directories() if (path / STATUS).is_file()]
        return sorted(runs, key=lambda run: run.id, reverse=True)
