"""The run store: one directory per training run, written so that a crash never corrupts it.

A run lives in ``<root>/<run-id>/``:

- ``config.json``: what was trained (architecture description, dataset, recipe, backend,
  library versions, seed, creation time); written once.
- ``status.json``: ``state`` (``created``, ``running``, ``completed``, ``interrupted``,
  ``cancelled`` or ``failed``), ``epoch`` (completed epochs), ``epochs``, ``pid``,
  ``message``, ``updated`` and ``data_source``; rewritten as the run goes.
- ``metrics.jsonl``: one JSON object per line, appended as the run trains.
- ``checkpoint.weights.h5``: model and optimizer state at the end of the last completed epoch.
- ``model.keras``: the trained model, once the run has completed.
- ``CANCEL``: present when someone asked the run to stop.

JSON files and checkpoints are replaced atomically (written aside, then renamed), so a reader
sees the old file or the new one, never half of one; a reader of ``metrics.jsonl`` skips a
line torn by a crash. A run whose status says ``running`` but whose process is gone is
reported as ``interrupted`` (so is a ``created`` one whose creator is gone).

Example:
>>> import tempfile
>>> store = RunStore(tempfile.mkdtemp())
>>> run = store.create({"seed": 0}, run_id="demo")
>>> run.append_metrics({"event": "epoch", "epoch": 0, "loss": 0.5})
>>> [r.id for r in store.list()], run.status["state"], run.metrics()[0]["loss"]
(['demo'], 'created', 0.5)
"""

import datetime
import json
import os
import re
import secrets
from pathlib import Path

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STATES = ("created", "running", "completed", "interrupted", "cancelled", "failed")
CONFIG, STATUS, METRICS, CANCEL = "config.json", "status.json", "metrics.jsonl", "CANCEL"
CHECKPOINT, MODEL = "checkpoint.weights.h5", "model.keras"


def now():
    """The local time as an ISO 8601 string with microseconds and UTC offset."""
    return datetime.datetime.now().astimezone().isoformat()


def check_run_id(run_id):
    """Returns ``run_id`` if it is a safe directory name, else raises a `ValueError`."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise ValueError(
            f"run_id={run_id!r} is not allowed: 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, without '..'."
        )
    return run_id


def new_run_id(name="run"):
    """A fresh id: time, a cleaned-up ``name`` and random hex, e.g. ``20250101-120000-mnist-3fa2``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._-")[:32] or "run"
    stem = stem.replace("..", "_")
    return f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{stem}-{secrets.token_hex(2)}"


def write_atomic(path, write):
    """Calls ``write(tmp_path)`` on a temporary path next to ``path``, then renames it over.

    The temporary name keeps the file's suffixes (Keras checks them) and starts with a dot.
    """
    path = Path(path)
    tmp = path.with_name(f".{os.getpid()}-{secrets.token_hex(4)}.{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, data):
    """Writes ``data`` as JSON to ``path`` atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def read_json(path):
    """The JSON object in ``path``; a `ValueError` if it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a JSON object.")
    return data


def update_status(path, states, **fields):
    """Updates the status file ``path`` with ``fields`` (and the time), atomically; a
    ``state`` must be one of ``states``. A missing or unreadable file starts afresh."""
    if "state" in fields and fields["state"] not in states:
        raise ValueError(f"state={fields['state']!r} is not allowed: one of {states}.")
    try:
        status = read_json(path)
    except ValueError:
        status = {}
    status.update(fields, updated=now())
    write_json(path, status)


def process_alive(pid):
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class Run:
    """One run directory: its config, status, metrics, checkpoint and cancel flag.

    Attributes:
        id: the run id (the directory's name).
        path: the run directory, a `pathlib.Path`.
        config: the dict in ``config.json``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.id = self.path.name
        if not (self.path / CONFIG).is_file():
            raise ValueError(f"{self.path} is not a run: it has no {CONFIG}.")
        self.config = read_json(self.path / CONFIG)

    def __repr__(self):
        return f"Run({self.id!r}, state={self.status['state']!r})"

    @property
    def status(self):
        """The dict in ``status.json``; ``created`` or ``running`` read as ``interrupted`` once the
        process (``pid``) that wrote them has died.

        A status that cannot be read reads as ``failed``, with the reason in ``message``.
        """
        path = self.path / STATUS
        if not path.exists():
            return {"state": "created", "epoch": 0, "message": ""}
        try:
            status = read_json(path)
        except ValueError as err:
            return {"state": "failed", "epoch": 0, "message": str(err)}
        if status.get("state") in ("created", "running") and not process_alive(status.get("pid")):
            status["state"] = "interrupted"
            status["message"] = (
                f"the worker (pid {status.get('pid')}) stopped without finishing; "
                f"resume it with: python -m keras_resnets resume {self.id}"
            )
        return status

    def write_status(self, **fields):
        """Updates ``status.json`` with ``fields`` (and the time), atomically."""
        update_status(self.path / STATUS, STATES, **fields)

    def metrics(self):
        """The events of ``metrics.jsonl`` in order, skipping lines a crash has torn."""
        try:
            text = (self.path / METRICS).read_text(errors="replace")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def append_metrics(self, *events):
        """Appends ``events`` to ``metrics.jsonl``, one line each, in one write."""
        text = "".join(json.dumps(event) + "\n" for event in events)
        with open(self.path / METRICS, "a") as f:
            f.write(text)

    def keep_metrics(self, epochs):
        """Rewrites ``metrics.jsonl`` atomically with only the events of the first ``epochs`` epochs."""
        kept = [e for e in self.metrics() if e.get("epoch", epochs) < epochs]
        text = "".join(json.dumps(event) + "\n" for event in kept)
        write_atomic(self.path / METRICS, lambda tmp: tmp.write_text(text))

    def request_cancel(self):
        """Asks the worker training this run to stop (it checks at every batch)."""
        (self.path / CANCEL).write_text(now() + "\n")

    @property
    def cancel_requested(self):
        """Whether a ``CANCEL`` file is present."""
        return (self.path / CANCEL).exists()

    def clear_cancel(self):
        """Removes the ``CANCEL`` file, if any."""
        (self.path / CANCEL).unlink(missing_ok=True)

    @property
    def checkpoint_path(self):
        """``checkpoint.weights.h5``: the model and optimizer after the last completed epoch."""
        return self.path / CHECKPOINT

    @property
    def model_path(self):
        """``model.keras``: the trained model, present once the run has completed."""
        return self.path / MODEL

    def load_model(self):
        """The trained model: ``model.keras``, else the last checkpoint's weights."""
        import keras

        from keras_resnets.architecture import Architecture
        from keras_resnets.builders import build_resnet

        if self.model_path.exists():
            return keras.saving.load_model(self.model_path)
        model = build_resnet(Architecture.from_dict(self.config["architecture"]))
        if self.checkpoint_path.exists():
            model.load_weights(self.checkpoint_path, skip_mismatch=True)
        return model


class RunStore:
    """The runs under ``root``, one directory each.

    Example:
    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.get("no-such-run")
    Traceback (most recent call last):
    ...
    ValueError: run_id='no-such-run' is not a run in ...
    """

    def __init__(self, root="runs"):
        self.root = Path(root)

    def path(self, run_id):
        """The directory of ``run_id``; a `ValueError` for ids that could leave ``root``."""
        check_run_id(run_id)
        path = self.root / run_id
        if path.resolve().parent != self.root.resolve():
            raise ValueError(f"run_id={run_id!r} is not allowed: it leads outside {self.root}.")
        return path

    def create(self, config, run_id=None):
        """A new run with ``config`` (plus its creation time) and status ``created``.

        ``run_id=None`` makes one from the architecture's name; an existing id raises a
        `ValueError`.
        """
        if not isinstance(config, dict):
            raise ValueError(f"config={config!r} is not allowed: a dict.")
        if run_id is None:
            run_id = new_run_id(config.get("architecture", {}).get("name", "run"))
        path = self.path(run_id)
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise ValueError(f"run_id={run_id!r} is not allowed: {path} already exists.") from None
        write_json(path / CONFIG, {**config, "created": now()})
        write_json(path / STATUS, {"state": "created", "epoch": 0, "pid": os.getpid(), "message": "",
                                   "updated": now()})
        return Run(path)

    def get(self, run_id):
        """The run called ``run_id``; a `ValueError` if there is none."""
        path = self.path(run_id)
        try:
            return Run(path)
        except ValueError as err:
            raise ValueError(f"run_id={run_id!r} is not a run in {self.root}: {err}") from None

    def list(self):
        """All readable runs, newest first; directories that are not runs are skipped."""
        if not self.root.is_dir():
            return []
        runs = []
        for entry in self.root.iterdir():
            try:
                runs.append(Run(self.path(entry.name)))
            except ValueError:
                continue
        return sorted(runs, key=lambda run: (str(run.config.get("created", "")), run.id),
                      reverse=True)
