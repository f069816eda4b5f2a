"""The run store: one directory per training run, written so that a crash never corrupts it.

A run lives in ``<root>/<run-id>/``:

- ``config.json``: what was trained (architecture description, dataset, recipe, backend,
  library versions, seed, creation time); written once.
- ``status.json``: ``state`` (``created``, ``running``, ``completed``, ``interrupted``,
  ``cancelled`` or ``failed``), ``epoch`` (completed epochs), ``epochs``, ``pid``,
  ``message``, ``updated``, ``data_source`` and ``dtype_policy`` (the policy the model
  computes in), ``num_train`` and ``num_validation`` (images), and while it runs its
  ``phase`` (`keras_resnets.runs.status.PHASES`); rewritten as the run goes.
- ``metrics.jsonl``: one JSON object per line, appended as the run trains: ``"batch"``
  events every few steps, ``"probe"`` events (a fixed few hundred held-out images, a few
  times a run) and an ``"epoch"`` event per epoch (`keras_resnets.runs.records`).
- ``checkpoint.weights.h5``: model and optimizer state at the end of the last completed epoch;
  ``checkpoint.previous.weights.h5`` the one before, in case the last cannot be read.
- ``model.keras``: the trained model, once the run has completed.
- ``logs/process-<i>.log``: the output of process ``i`` of a run that several processes train
  together (`keras_resnets.training.processes`); process 0 writes every other file, the
  others only their log (`PeerRun`).
- ``CANCEL``: present when someone asked the run to stop.
- ``LOCK``: present while a process trains the run; it holds that process' ``pid``, ``host``,
  ``process_start`` (the kernel's start time of the pid, so a reused pid is told apart) and
  ``created``. It is created atomically (``O_EXCL``); a lock whose process is gone is removed
  under a kernel lock on ``.lock-guard`` (released when its holder dies), so two processes
  that find the same stale lock cannot both take the run.

JSON files and checkpoints are replaced atomically (written aside, then renamed), so a reader
sees the old file or the new one, never half of one; a reader of ``metrics.jsonl`` skips a
line torn by a crash. A run whose status says ``running`` but whose process is gone is
reported as ``interrupted`` (so is a ``created`` one whose creator is gone).

Readers tolerate any file content: every file is read through the bounded readers of
`keras_resnets.runs.files` (size and nesting limits) into typed, range-checked records
(`keras_resnets.runs.status`); a run whose ``config.json`` or ``status.json`` is missing,
cannot be read or holds a wrong type or value is listed with state ``damaged`` and the reason
in its message, never hidden, and never breaks the listing of another run; metric lines with
wrong types or numbers out of range are skipped like torn ones. Temporary files that a dead
writer left behind are removed when the store is read.

Example:
>>> import tempfile
>>> store = RunStore(tempfile.mkdtemp())
>>> run = store.create({"seed": 0}, run_id="demo")
>>> run.append_metrics({"event": "epoch", "epoch": 0, "loss": 0.5})
>>> [r.id for r in store.list()], run.status["state"], run.metrics()[0]["loss"]
(['demo'], 'created', 0.5)
"""

import contextlib
import datetime
import fcntl
import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from keras_resnets.design.validation import fail, is_int
from keras_resnets.runs.files import (
    clean_temp_files,
    now,
    read_json,
    read_jsonl,
    update_status,
    write_atomic,
    write_json,
)
from keras_resnets.runs.processes import identity, owner_alive
from keras_resnets.runs.records import RunConfig, batches, epochs
from keras_resnets.runs.status import (
    ACTIVE_STATES,
    LOCK,
    MAX_COUNT,
    STATES,
    STATUS,
    LockRecord,
    Status,
)

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CONFIG, METRICS, CANCEL = "config.json", "metrics.jsonl", "CANCEL"
CHECKPOINT, MODEL = "checkpoint.weights.h5", "model.keras"
PREVIOUS_CHECKPOINT = "checkpoint.previous.weights.h5"
LOCK_GUARD = ".lock-guard"
LOGS = "logs"
METRIC_NUMBERS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
                  "images_per_second", "time")
FINITE_METRICS = ("learning_rate", "seconds", "images_per_second", "time")
"""Metric numbers that are never NaN or infinite (a loss may be: training diverged)."""


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


def _good_event(event):
    """Whether a metric event has the types and ranges its readers rely on."""
    if not isinstance(event.get("event", ""), str):
        return False
    if not all(is_int(event.get(name, 0)) and 0 <= event.get(name, 0) <= MAX_COUNT
               for name in ("epoch", "step")):
        return False
    for name in METRIC_NUMBERS:
        value = event.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > 1e300:
            return False  # beyond a float (10**400), a number breaks every chart and table
        if name in FINITE_METRICS and not math.isfinite(value):
            return False
    return True


class WorkerDirectory:
    """The directory a worker process writes, named by its id: what training runs (`Run`) and
    experiment runs (`keras_resnets.experiments.store.ExperimentRun`) share.

    Its ``status.json`` holds a ``state`` of `STATES`; an active state whose worker (``pid``,
    ``process_start``) is gone reads as ``interrupted``. A ``CANCEL`` file asks the worker to
    stop at its next check.

    Attributes:
        id: the directory's name.
        path: the directory, a `pathlib.Path`.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.id = self.path.name

    def write_status(self, **fields):
        """Updates ``status.json`` with ``fields`` (and the time), atomically."""
        update_status(self.path / STATUS, STATES, **fields)

    def read_status(self, advice=""):
        """The `Status` of ``status.json``, read as ``interrupted`` when its state is active but
        its worker is gone (``advice`` ends that message); a `ValueError` if it cannot be read."""
        status = Status.from_dict(read_json(self.path / STATUS), STATUS)
        if status.state in ACTIVE_STATES and not owner_alive(status.pid, status.process_start):
            status = status.replace(state="interrupted", message=(
                f"the worker (pid {status.pid}) stopped without finishing{advice}"))
        return status

    def request_cancel(self):
        """Asks the worker to stop (a training run checks at every batch); a `ValueError` if
        it is not at work."""
        state = self.status.get("state")
        if state not in ACTIVE_STATES:
            raise ValueError(f"run {self.id} is {state}: there is nothing to stop (only a "
                             f"{' or '.join(ACTIVE_STATES)} run can be cancelled).")
        (self.path / CANCEL).write_text(now() + "\n")

    @property
    def cancel_requested(self):
        """Whether a ``CANCEL`` file is present."""
        return (self.path / CANCEL).exists()

    def clear_cancel(self):
        """Removes the ``CANCEL`` file, if any."""
        (self.path / CANCEL).unlink(missing_ok=True)


class Run(WorkerDirectory):
    """One run directory: its config, status, metrics, checkpoint and cancel flag.

    Attributes:
        id: the run id (the directory's name).
        path: the run directory, a `pathlib.Path`.
        config: a `RunConfig`: ``config.json``, typed.
        damage: why the run cannot be read (``None`` for a readable run); `RunStore.list`
            reports such runs with state ``damaged``.
    """

    def __init__(self, path):
        super().__init__(path)
        if not (self.path / CONFIG).is_file():
            raise ValueError(f"{self.path} is not a run: it has no {CONFIG}.")
        raw = read_json(self.path / CONFIG)
        try:
            self.config = RunConfig.from_dict(raw)
        except ValueError as err:
            raise ValueError(f"{CONFIG} has {err}") from None
        self.damage = None

    @classmethod
    def damaged(cls, path, reason):
        """A run that cannot be read: empty config, state ``damaged``, ``reason`` as message."""
        run = cls.__new__(cls)
        run.path, run.id, run.damage = Path(path), Path(path).name, str(reason)
        run.config = RunConfig.from_dict({})
        return run

    def __repr__(self):
        return f"Run({self.id!r}, state={self.status['state']!r})"

    @property
    def status(self):
        """The `keras_resnets.runs.status.Status` of ``status.json`` (it reads as the dict
        too); ``created`` or ``running`` read as ``interrupted`` once the process (``pid``)
        that wrote them has died.

        A status that is missing, cannot be read, or holds a wrong type or value reads as
        ``damaged`` with the reason in ``message``.
        """
        if self.damage is not None:
            return Status.damaged(self.damage)
        try:
            return self.read_status(f"; resume it with: python -m keras_resnets resume {self.id}")
        except ValueError as err:
            return Status.damaged(err)

    def metrics(self):
        """The events of ``metrics.jsonl`` in order, skipping lines a crash has torn and
        events with wrongly typed or out-of-range fields."""
        return [event for event in read_jsonl(self.path / METRICS) if _good_event(event)]

    def epochs(self):
        """The ``"epoch"`` events of `metrics` (`keras_resnets.runs.records.EpochEvent`)."""
        return epochs(self.metrics())

    def batches(self):
        """The ``"batch"`` events of `metrics` (`keras_resnets.runs.records.BatchEvent`)."""
        return batches(self.metrics())

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

    @contextlib.contextmanager
    def lock(self):
        """Holds the run's ``LOCK`` while the block runs; a `ValueError` if a live process
        holds it. A lock whose process is gone (or whose pid now names another process) is
        taken over."""
        self._acquire()
        try:
            yield self
        finally:
            self._release()

    def _acquire(self):
        path = self.path / LOCK
        with open(self.path / LOCK_GUARD, "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)  # the kernel frees it if this process dies
            holder = self.lock_holder()
            if holder is not None:
                if holder.alive():
                    raise ValueError(
                        f"run {self.id} is being trained by process {holder.pid} on "
                        f"{holder.host} (since {holder.created}); wait for it, or "
                        f"cancel it with: python -m keras_resnets cancel {self.id}")
                path.unlink()
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps({**identity(), "created": now()}) + "\n")
                f.flush()
                os.fsync(f.fileno())

    def _release(self):
        holder = self.lock_holder()
        if holder is not None and holder.pid == os.getpid():
            (self.path / LOCK).unlink(missing_ok=True)

    def lock_holder(self):
        """The `LockRecord` in ``LOCK`` (one without a process if it cannot be read), or None
        without a lock."""
        path = self.path / LOCK
        try:
            return LockRecord.from_dict(read_json(path), LOCK)
        except ValueError:
            return LockRecord() if os.path.lexists(path) else None

    @property
    def checkpoint_path(self):
        """``checkpoint.weights.h5``: the model and optimizer after the last completed epoch."""
        return self.path / CHECKPOINT

    @property
    def previous_checkpoint_path(self):
        """``checkpoint.previous.weights.h5``: the checkpoint of the epoch before."""
        return self.path / PREVIOUS_CHECKPOINT

    def save_checkpoint(self, save):
        """Writes a new checkpoint with ``save(path)``, atomically, keeping the last one as
        the previous checkpoint. The last one is hard-linked aside, not moved, so that a
        checkpoint exists at every instant."""
        if self.checkpoint_path.exists():
            previous = self.previous_checkpoint_path
            link = previous.with_name(f".{os.getpid()}-{secrets.token_hex(4)}.{previous.name}")
            try:
                os.link(self.checkpoint_path, link)
                os.replace(link, previous)
            finally:  # a second Ctrl-C between the two must not leave the link behind
                link.unlink(missing_ok=True)
        write_atomic(self.checkpoint_path, save)

    @property
    def model_path(self):
        """``model.keras``: the trained model, present once the run has completed."""
        return self.path / MODEL

    def save_model(self, save):
        """Writes ``model.keras`` with ``save(path)``, atomically."""
        write_atomic(self.model_path, save)

    def log_path(self, process):
        """``logs/process-<process>.log``: the output of one of several processes."""
        return self.path / LOGS / f"process-{int(process)}.log"

    def load_model(self):
        """The trained model: ``model.keras``, else the last checkpoint's weights."""
        import keras

        from keras_resnets.models.builder import build_resnet

        if self.model_path.exists():
            return keras.saving.load_model(self.model_path)
        model = build_resnet(self.config.design())
        if self.checkpoint_path.exists():
            model.load_weights(self.checkpoint_path, skip_mismatch=True)
        return model


def _scratch(save, name):
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        save(Path(scratch) / name)


class PeerRun(Run):
    """A run as a process other than process 0 sees it when several train it together: it
    reads the checkpoints and the cancel flag, and writes nothing (process 0 writes the run;
    each process writes only its log)."""

    def __init__(self, path, config=None):
        if config is None:
            super().__init__(path)
        else:  # on another host the run's files may be out of reach until process 0 writes
            WorkerDirectory.__init__(self, path)
            self.config, self.damage = RunConfig.from_dict(config), None
        self.own_status = {"state": "created"}

    @property
    def status(self):
        """This process' own view of the run's status (``state`` and the other fields that
        process 0 writes): kept in memory, never written."""
        return dict(self.own_status)

    def write_status(self, **fields):
        self.own_status.update(fields)

    def append_metrics(self, *events):
        pass

    def keep_metrics(self, epochs):
        pass

    def save_checkpoint(self, save):
        """Runs ``save`` into a scratch directory: saving may take every process (JAX checks
        that each passes the same arrays), so each saves, and process 0's file is kept."""
        _scratch(save, CHECKPOINT)

    def save_model(self, save):
        """As `save_checkpoint`, for the trained model."""
        _scratch(save, MODEL)

    def clear_cancel(self):
        pass

    @property
    def cancel_requested(self):
        """False: process 0 alone honours a cancel request (the others stop with it)."""
        return False

    @contextlib.contextmanager
    def lock(self):
        yield self


class DirectoryStore:
    """Directories named by run ids under ``root``, one per worker's run: what `RunStore` and
    `keras_resnets.experiments.store.ExperimentStore` share."""

    def __init__(self, root="runs"):
        self.root = Path(root)

    def path(self, run_id):
        """The directory of ``run_id``; a `ValueError` for ids that could leave ``root``."""
        check_run_id(run_id)
        path = self.root / run_id
        if path.resolve().parent != self.root.resolve():
            fail("run_id", run_id, f"it leads outside {self.root}")
        return path

    def _make(self, run_id):
        """Creates the directory of a new ``run_id``; a `ValueError` if it exists or cannot be made."""
        path = self.path(run_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = "it is a file" if isinstance(err, FileExistsError) else err.strerror
            raise ValueError(f"runs_dir={str(self.root)!r} is not allowed: it must be a writable "
                             f"directory ({reason})") from None
        try:
            path.mkdir()
        except FileExistsError:
            raise ValueError(f"run_id={run_id!r} is not allowed: {path} already exists.") from None
        except OSError as err:
            raise ValueError(f"runs_dir={str(self.root)!r} is not allowed: it must be a writable "
                             f"directory ({err.strerror})") from None
        return path

    def _directories(self):
        """The run directories under ``root`` (hidden entries, files and unsafe names left out),
        with the temporary files of dead writers removed."""
        try:
            entries = [e for e in self.root.iterdir() if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return []
        paths = []
        for entry in entries:
            try:
                paths.append(self.path(entry.name))
            except ValueError:
                continue
            clean_temp_files(paths[-1])
        return paths


class RunStore(DirectoryStore):
    """The training runs under ``root``, one directory each.

    Example:
    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.get("no-such-run")
    Traceback (most recent call last):
    ...
    ValueError: run_id='no-such-run' is not a run in ...
    """

    def create(self, config, run_id=None):
        """A new run with ``config`` (plus its creation time) and status ``created``.

        ``run_id=None`` makes one from the architecture's name; an existing id raises a
        `ValueError`.
        """
        if not isinstance(config, Mapping):
            fail("config", config, "a dict")
        config = dict(config)
        if run_id is None:
            run_id = new_run_id(RunConfig.from_dict(config).name)
        path = self._make(run_id)
        write_json(path / CONFIG, {**config, "created": now()})
        write_json(path / STATUS, {"state": "created", "epoch": 0, **identity(), "message": "",
                                   "updated": now()})
        return Run(path)

    def get(self, run_id):
        """The run called ``run_id``; a `ValueError` if there is none."""
        path = self.path(run_id)
        clean_temp_files(path)
        try:
            return Run(path)
        except ValueError as err:
            raise ValueError(f"run_id={run_id!r} is not a run in {self.root}: {err}") from None

    def list(self):
        """All runs, newest first; a directory whose config cannot be read is listed as a
        damaged run (state ``damaged``, the reason in its message)."""
        runs = []
        for path in self._directories():
            try:
                runs.append(Run(path))
            except ValueError as err:
                runs.append(Run.damaged(path, err))
        return sorted(runs, key=lambda run: (run.config.created, run.id), reverse=True)
