"""The training runner: train an architecture description on a dataset with a recipe, as a run.

`train` records everything in a run directory (see `keras_resnets.runs`): the config first,
then metrics as they come, a checkpoint after every epoch and the final ``model.keras``.
`resume` continues an interrupted run to the result it would have reached: the checkpoint
holds the model and the optimizer (with its step count, hence the learning rate), and the
data order and the stochastic-depth draws of each epoch depend only on the seed and the epoch.

Progress streams to subscribers: subclass `Callback` (the command line's `ProgressBar` is one).

Example:
>>> import tempfile
>>> from keras_resnets import presets
>>> arch = presets.mnist_resnet(nb_channels=4, nb_blocks=1)
>>> run = train(arch, "mnist_sample", subset=256, epochs=1, runs_dir=tempfile.mkdtemp())
>>> run.status["state"], [e["event"] for e in run.metrics()][-1]
('completed', 'epoch')
"""

import importlib.metadata
import math
import os
import platform
import time
import warnings
from collections import deque
from pathlib import Path

import keras
import numpy as np

from keras_resnets.architecture import coerce_architecture
from keras_resnets.builders import build_resnet
from keras_resnets.data import DATASETS, DataUnavailableError, check_arguments, is_available, load_data
from keras_resnets.distribution import check_distribution, distribution_scope
from keras_resnets.interrupts import deferred_interrupts
from keras_resnets.presets import PRESETS, get_preset
from keras_resnets.recipe import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe, default_subset  # noqa: F401
from keras_resnets.runs import Run, RunStore, identity, process_command, write_atomic
from keras_resnets.validation import check_bool, fail


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate / 10`` for ``warmup_steps`` steps, then ``learning_rate`` divided by 10
    at each of ``boundaries`` (in steps).

    Example:
    >>> schedule = StepSchedule(0.1, boundaries=(50, 75), warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 50, 75)]
    [0.01, 0.1, 0.01, 0.001]
    """

    def __init__(self, learning_rate, boundaries=(), warmup_steps=0):
        self.learning_rate = float(learning_rate)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = keras.ops.convert_to_tensor(self.learning_rate, "float32")
        for boundary in self.boundaries:
            rate = keras.ops.where(step >= boundary, rate * 0.1, rate)
        return keras.ops.where(step < self.warmup_steps, rate * 0.1, rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "boundaries": list(self.boundaries),
                "warmup_steps": self.warmup_steps}


def make_schedule(recipe, steps_per_epoch):
    """The `StepSchedule` of ``recipe`` for epochs of ``steps_per_epoch`` steps."""
    return StepSchedule(recipe.learning_rate, recipe.decay_steps(steps_per_epoch),
                        recipe.warmup_epochs * steps_per_epoch)


def compile_model(model, recipe, steps_per_epoch, from_logits=True):
    """Compiles ``model`` for ``recipe`` (loss, accuracy, optimizer, weight decay) and builds
    it all, so that a checkpoint can be loaded into it; returns the learning-rate schedule."""
    schedule = make_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=recipe.momentum)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    if recipe.weight_decay:
        penalty = keras.regularizers.L2(recipe.weight_decay / 2)
        for variable in model.trainable_weights:
            if variable.name == "kernel":
                variable.regularizer = penalty
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    optimizer.build(model.trainable_variables)
    # Build loss and metrics on a batch of zeros, so that `fit` need not take a batch of the
    # data to build them (that would start a pass of the pipeline, and shift its shuffling).
    images = np.zeros((recipe.batch_size, *model.input_shape[1:]), "float32")
    model.test_on_batch(images, np.zeros((recipe.batch_size,), "int32"))
    return schedule


# -- subscribers ------------------------------------------------------------------------------
class Callback:
    """Receives a run's progress; override what you need.

    Events are the dicts written to ``metrics.jsonl`` (see `keras_resnets.runs`), but
    ``on_batch`` sees every batch, the file only every few.

    Example:
    >>> class Losses(Callback):
    ...     def __init__(self):
    ...         self.losses = []
    ...     def on_epoch(self, event):
    ...         self.losses.append(event["loss"])
    """

    def on_begin(self, run, info):
        """Training starts; ``info`` has ``epochs``, ``initial_epoch``, ``steps_per_epoch``,
        ``num_train``, ``num_validation``, ``data_source`` and ``dtype_policy`` (the model's)."""

    def on_batch(self, event):
        """A batch has been trained (``event["event"] == "batch"``)."""

    def on_epoch(self, event):
        """An epoch has been trained, validated and checkpointed."""

    def on_end(self, run):
        """Training has stopped; ``run.status`` says how."""


def format_epoch(event, epochs):
    """One line per epoch: ``epoch 1/3 - 12.3 s - loss 0.1234 - accuracy 0.9612 - ...``."""
    parts = [f"epoch {event['epoch'] + 1}/{epochs}", f"{event['seconds']:.1f} s"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if event.get(key) is not None:
            parts.append(f"{key} {event[key]:.4f}")
    parts.append(f"learning_rate {event['learning_rate']:.3g}")
    return " - ".join(parts)


class ProgressBar(Callback):
    """Prints a progress bar per epoch (``bar=True``) and a summary line after each epoch."""

    def __init__(self, bar=True):
        self.bar = bar
        self._progbar = None

    def on_begin(self, run, info):
        self.epochs, self.steps = info["epochs"], info["steps_per_epoch"]
        start = f", resuming after epoch {info['initial_epoch']}" if info["initial_epoch"] else ""
        print(f"run {run.id}: {info['num_train']:,} training / {info['num_validation']:,} "
              f"validation images from the {info['data_source']}, in {info['dtype_policy']}"
              f"{start}", flush=True)

    def on_batch(self, event):
        if not self.bar:
            return
        batch = event["step"] - event["epoch"] * self.steps
        if batch == 1:
            self._progbar = keras.utils.Progbar(
                self.steps, stateful_metrics=["loss", "accuracy", "images/s"])
        self._progbar.update(batch, [("loss", event["loss"]), ("accuracy", event["accuracy"]),
                                     ("images/s", event["images_per_second"])])

    def on_epoch(self, event):
        print(format_epoch(event, self.epochs), flush=True)

    def on_end(self, run):
        status = run.status
        print(f"run {run.id} {status['state']}: {status['message']}", flush=True)


# -- the recorder -----------------------------------------------------------------------------
class Stop(Exception):
    """Ends a run early with a final ``state`` and ``message``."""

    def __init__(self, state, message):
        super().__init__(message)
        self.state = state
        self.message = message


def _finite(value):
    return value is None or math.isfinite(value)


def _float(logs, key):
    return None if logs is None or key not in logs else float(logs[key])


def record_interval(steps_per_epoch):
    """Steps between the batch events written to ``metrics.jsonl``: about 20 per epoch, so
    that a short run's curves move from its first seconds and a long run's file stays small."""
    return max(1, steps_per_epoch // 20)


class _Recorder(keras.callbacks.Callback):
    """Writes a run's metrics, checkpoints and status while ``model.fit`` trains it, checks
    for an interrupt or a cancel request before each batch and stops on a non-finite loss."""

    def __init__(self, run, schedule, data, recipe, initial_epoch, callbacks, interrupts):
        super().__init__()
        self.run, self.schedule, self.recipe = run, schedule, recipe
        self.interrupts = interrupts
        self.steps, self.num_train = data.steps_per_epoch, data.num_train
        self.completed = initial_epoch
        self.callbacks = callbacks
        self.interval = record_interval(self.steps)
        self.seed_states = None

    def on_train_begin(self, logs=None):
        if self.seed_states is None:  # the seed generators' states, [seed, counter] each
            weights = {id(v) for v in self.model.weights}
            states = [v for v in self.model.variables if id(v) not in weights]
            self.seed_states = [(v, int(keras.ops.convert_to_numpy(v.value)[0])) for v in states]

    def on_epoch_begin(self, epoch, logs=None):
        # Stochastic-depth draws of epoch `epoch` depend only on the seed and the epoch.
        for variable, seed in self.seed_states:
            variable.assign(np.array([seed, epoch * self.steps % 2**32], dtype=variable.dtype))
        self.epoch = epoch
        self.epoch_start = self.last = time.perf_counter()
        self.window = deque(maxlen=self.interval)

    def on_train_batch_begin(self, batch, logs=None):
        self.interrupts.check()
        if self.run.cancel_requested:
            raise Stop("cancelled", f"cancelled during epoch {self.epoch + 1}; "
                       f"{self._kept()}")

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        images = min(self.recipe.batch_size, self.num_train - batch * self.recipe.batch_size)
        self.window.append((images, now - self.last))
        self.last = now
        event = {
            "event": "batch",
            "epoch": self.epoch,
            "step": self.epoch * self.steps + batch + 1,
            "loss": _float(logs, "loss"),
            "accuracy": _float(logs, "accuracy"),
            "images_per_second": sum(n for n, _ in self.window) / sum(s for _, s in self.window),
            "time": time.time(),
        }
        if not _finite(event["loss"]):
            raise Stop("failed", f"the loss became {event['loss']} at step {event['step']} "
                       f"(epoch {self.epoch + 1}): training diverged, try a lower learning "
                       f"rate; {self._kept()}")
        if (batch + 1) % self.interval == 0:
            self.run.append_metrics(event)
        for callback in self.callbacks:
            callback.on_batch(event)

    def on_epoch_end(self, epoch, logs=None):
        event = {
            "event": "epoch",
            "epoch": epoch,
            "step": (epoch + 1) * self.steps,
            "loss": _float(logs, "loss"),
            "accuracy": _float(logs, "accuracy"),
            "val_loss": _float(logs, "val_loss"),
            "val_accuracy": _float(logs, "val_accuracy"),
            "learning_rate": float(keras.ops.convert_to_numpy(self.schedule(epoch * self.steps))),
            "seconds": time.perf_counter() - self.epoch_start,
            "time": time.time(),
        }
        ops = keras.ops
        weights_finite = bool(ops.convert_to_numpy(ops.all(ops.stack(
            [ops.all(ops.isfinite(v)) for v in self.model.weights]))))
        if not (weights_finite and _finite(event["loss"]) and _finite(event["val_loss"])):
            raise Stop("failed", f"the weights or losses became NaN or infinite in epoch "
                       f"{epoch + 1}: training diverged, try a lower learning rate; "
                       f"{self._kept()}")
        self.run.append_metrics(event)
        self.run.save_checkpoint(self.model.save_weights)
        self.completed = epoch + 1
        self.run.write_status(epoch=self.completed, message=format_epoch(event, self.recipe.epochs))
        for callback in self.callbacks:
            callback.on_epoch(event)

    def _kept(self):
        if not self.completed:
            return "no epoch had completed, so there is no checkpoint"
        return f"the checkpoint of epoch {self.completed} is kept"


# -- the runner -------------------------------------------------------------------------------
def versions():
    """The versions of Python and of the libraries a run depends on."""
    found = {"python": platform.python_version()}
    for package in ("keras-resnets", "keras", "numpy", "tensorflow", "jax", "jaxlib", "torch"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def check_fits(architecture, dataset):
    """Raises a `ValueError` unless ``architecture`` can be trained on ``dataset``."""
    if dataset not in DATASETS:
        fail("dataset", dataset, f"one of {sorted(DATASETS)}")
    info = DATASETS[dataset]
    if not architecture.include_top:
        fail("architecture.include_top", False, "True: training needs the classifier")
    if tuple(architecture.input_shape) != tuple(info.image_shape):
        fail("architecture.input_shape", architecture.input_shape,
              f"{tuple(info.image_shape)}, the image shape of dataset {dataset!r}")
    if architecture.classes != info.classes:
        fail("architecture.classes", architecture.classes,
              f"{info.classes}, the number of classes of dataset {dataset!r}")


def resolve_architecture(architecture, dataset):
    """An `Architecture` from an instance, dict, JSON string or preset name; a preset is
    fitted to the image shape and classes of ``dataset``."""
    if isinstance(architecture, str) and architecture in PRESETS:
        if dataset not in DATASETS:
            fail("dataset", dataset, f"one of {sorted(DATASETS)}")
        info = DATASETS[dataset]
        return get_preset(architecture, input_shape=tuple(info.image_shape), classes=info.classes)
    return coerce_architecture(architecture)


def train(architecture, dataset="mnist_sample", recipe=None, *, runs_dir="runs", run_id=None,
          subset=None, validation_split=VALIDATION_SPLIT, data_dir=None, augment=False, seed=0,
          distribution="none", callbacks=(), verbose=0, **recipe_fields):
    """Trains ``architecture`` on ``dataset`` as a new run and returns the `Run`.

    Args:
        architecture: an `Architecture`, its dict or JSON, or a preset name (fitted to the
            dataset).
        dataset: a key of `keras_resnets.data.DATASETS`.
        recipe: a `Recipe`, a dict of its fields or None for the default; ``recipe_fields``
            change single fields (``epochs=1``).
        runs_dir: the run store's root directory.
        run_id: the run's id; None makes a fresh one.
        subset, validation_split, data_dir, augment: passed to `keras_resnets.data.load_data`.
        seed: seeds the weights, the validation split and the data order.
        distribution: ``"none"`` or ``"data_parallel"`` over all visible devices (JAX and
            TensorFlow; see `keras_resnets.distribution`). The recipe's batch size is the
            global batch and its learning rate is used as it is.
        callbacks: `Callback` instances that receive the progress.
        verbose: 0 silent, 1 a progress bar and a line per epoch, 2 only the lines.

    Returns:
        The `Run`; ``run.status["state"]`` is ``completed``, ``cancelled`` or ``failed``
        (a diverged loss). Ctrl-C or SIGTERM stops it before its next step, marks it
        ``interrupted`` and raises `KeyboardInterrupt` (a second one raises at once).

    Raises:
        ValueError: for an unknown dataset, a bad recipe or seed, an architecture that does not
            fit the dataset's images or classes, a distribution this backend cannot run
            (or a batch size the devices do not divide), or a run id that is taken or unsafe.

    Example:
    >>> import tempfile
    >>> run = train("mnist_resnet", subset=128, epochs=1, batch_size=32,
    ...             runs_dir=tempfile.mkdtemp(), run_id="lecture")  # doctest: +SKIP
    >>> run.status["state"], run.path.name  # doctest: +SKIP
    ('completed', 'lecture')
    """
    recipe = Recipe.coerce(recipe, **recipe_fields)
    arch = resolve_architecture(architecture, dataset)
    check_fits(arch, dataset)
    check_data(dataset, subset=subset, validation_split=validation_split, data_dir=data_dir,
               batch_size=recipe.batch_size, seed=seed)
    check_bool("augment", augment)
    check_distribution(distribution, recipe.batch_size)
    callbacks = _with_progress(callbacks, verbose)
    config = {
        "architecture": arch.to_dict(),
        "dataset": {"name": dataset, "subset": subset, "validation_split": validation_split,
                    "data_dir": None if data_dir is None else str(data_dir), "augment": augment},
        "recipe": recipe.to_dict(),
        "backend": keras.backend.backend(),
        "versions": versions(),
        "seed": seed,
        "distribution": distribution,
    }
    run = RunStore(runs_dir).create(config, run_id=run_id)
    with run.lock():
        return _fit(run, resuming=False, callbacks=callbacks)


def check_data(dataset, *, subset, validation_split, data_dir, batch_size, seed):
    """Raises a `ValueError` naming the first data argument that is wrong, or the dataset if
    it cannot be had (MNIST falls back to the embedded sample), before anything is written."""
    check_arguments(dataset, batch_size=batch_size, validation_split=validation_split,
                    subset=subset, seed=seed)
    if dataset != "mnist" and not is_available(dataset, data_dir):
        raise DataUnavailableError(dataset, "it is not prepared locally and cannot be downloaded "
                                            "from here")


def resume(run_id_or_path, *, runs_dir="runs", callbacks=(), verbose=0, force=False):
    """Continues an interrupted, cancelled or failed run from its last checkpoint.

    It reaches the metrics an uninterrupted run would have reached (on the same backend).

    Args:
        run_id_or_path: a run id in ``runs_dir``, or the path of a run directory.
        runs_dir: the run store's root directory.
        callbacks, verbose: as for `train`.
        force: resume a run whose status names a live process (``running``) once that process
            is confirmed not to be the run's: its command line does not name the run (its pid
            was reused). A process that holds the run's lock is never overridden.

    Raises:
        ValueError: if it is not a run, has completed, is still running, is damaged or was
            trained on another backend.
    """
    callbacks = _with_progress(callbacks, verbose)
    run = open_run(run_id_or_path, runs_dir)
    with run.lock():
        _check_resumable(run, force)
        run.clear_cancel()
        return _fit(run, resuming=True, callbacks=callbacks)


def _check_resumable(run, force):
    status = run.status
    if status["state"] == "damaged":
        fail("run", run.id, f"a run whose files can be read ({status['message']})")
    if status["state"] == "completed":
        fail("run", run.id, "a run that has not completed (this one has)")
    if status["state"] == "running":
        pid = status.get("pid")
        if not force:
            fail("run", run.id, f"a run that is not running (process {pid} is training it; if "
                                f"that process is not this run's, resume with --force)")
        if run.id in process_command(pid):
            fail("run", run.id, f"a run that is not running (process {pid} is training it: its "
                                f"command line names the run)")
    backend = run.config.backend
    if backend != keras.backend.backend():
        fail("run", run.id, f"resumed with KERAS_BACKEND={backend}, the backend it was trained "
                             f"with (this process uses {keras.backend.backend()})")
    check_distribution(run.config.distribution, run.config.recipe["batch_size"])


def open_run(run_id_or_path, runs_dir="runs"):
    """The `Run` for a run id in ``runs_dir``, or for the path of a run directory."""
    if isinstance(run_id_or_path, Run):
        return run_id_or_path
    path = Path(run_id_or_path)
    if isinstance(run_id_or_path, os.PathLike) or len(path.parts) > 1:
        return RunStore(path.parent).get(path.name)
    return RunStore(runs_dir).get(str(run_id_or_path))


def _with_progress(callbacks, verbose):
    if verbose not in (0, 1, 2):
        fail("verbose", verbose, "0, 1 or 2")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            fail("callbacks", callback, "keras_resnets.training.Callback instances")
    return callbacks + ([ProgressBar(bar=verbose == 1)] if verbose else [])


def _fit(run, resuming, callbacks):
    """Trains ``run`` from scratch or from its checkpoint; Ctrl-C and SIGTERM stop it before
    the next step (see `keras_resnets.interrupts`)."""
    with deferred_interrupts() as interrupts:
        return _fit_recording(run, resuming, callbacks, interrupts)


def _fit_recording(run, resuming, callbacks, interrupts):
    """Trains ``run``, recording its state as it goes."""
    config = run.config
    arch = config.design()
    recipe = Recipe.from_dict(config.recipe)
    recorder = None
    previous_source = run.status.get("data_source")
    run.write_status(state="running", **identity(), epochs=recipe.epochs,
                     message="loading the data")
    try:
        with distribution_scope(config.distribution, recipe.batch_size):
            keras.utils.set_random_seed(config.seed)
            model = build_resnet(arch)
            data = _epoch_data(config, recipe, arch, epoch=0)
            schedule = compile_model(model, recipe, data.steps_per_epoch,
                                     from_logits=arch.classifier_activation is None)
            initial_epoch = _restore(run, model, data.steps_per_epoch) if resuming else 0
            if previous_source and previous_source != data.source:
                warnings.warn(f"run {run.id} was trained on the {previous_source} and resumes on "
                              f"the {data.source}: it will not reach the result it would have.",
                              stacklevel=3)
            recorder = _Recorder(run, schedule, data, recipe, initial_epoch, callbacks,
                                 interrupts)
            policy = model.dtype_policy.name
            run.write_status(epoch=initial_epoch, data_source=data.source, dtype_policy=policy,
                             message=f"training from epoch {initial_epoch + 1}")
            info = {"epochs": recipe.epochs, "initial_epoch": initial_epoch,
                    "steps_per_epoch": data.steps_per_epoch, "num_train": data.num_train,
                    "num_validation": data.num_validation, "data_source": data.source,
                    "dtype_policy": policy}
            for callback in callbacks:
                callback.on_begin(run, info)
            for epoch in range(initial_epoch, recipe.epochs):
                if epoch:
                    data = _epoch_data(config, recipe, arch, epoch)
                model.fit(data.train, validation_data=data.validation, initial_epoch=epoch,
                          epochs=epoch + 1, callbacks=[recorder], shuffle=False, verbose=0)
            _save_model(run, arch, model)
            last = run.epochs()[-1:]
            run.write_status(state="completed", message="completed: " + (
                format_epoch(last[0], recipe.epochs) if last else f"{recipe.epochs} epochs"))
    except Stop as stop:
        run.write_status(state=stop.state, message=stop.message)
    except KeyboardInterrupt:
        epoch = recorder.completed if recorder else 0
        kept = (f"the checkpoint of epoch {epoch} is kept" if epoch else
                "no epoch had completed, so there is no checkpoint and it starts again from epoch 1")
        run.write_status(state="interrupted", message=(
            f"interrupted after {epoch} of {recipe.epochs} epochs; {kept}; resume with: "
            f"python -m keras_resnets resume {run.id}"))
        raise
    except Exception as err:
        run.write_status(state="failed", message=f"{type(err).__name__}: {err}")
        raise
    finally:
        for callback in callbacks:
            callback.on_end(run)
    return run


def epoch_seed(seed, epoch):
    """The global seed under which the data pipeline of ``epoch`` is built."""
    return (seed * 1_000_003 + epoch) % 2**32


def _epoch_data(config, recipe, arch, epoch):
    """The run's data, with the training order (and augmentation) of ``epoch``.

    The split and the images depend on the run's seed alone, the order on the seed and the
    epoch: so the order of every epoch is fixed, whether or not the run was interrupted before
    it. (Not through the global seed: ``tf.random.set_seed`` clears TensorFlow's kernel
    caches, and the next step would then prepare the whole train function again.)
    """
    dataset = config.dataset
    return load_data(dataset.name, batch_size=recipe.batch_size,
                     validation_split=dataset.validation_split, subset=dataset.subset,
                     data_dir=dataset.data_dir, augment=dataset.augment,
                     seed=config.seed, shuffle_seed=epoch_seed(config.seed, epoch),
                     data_format=arch.data_format, drop_remainder=config.distribution != "none",
                     reshuffle=False)


def _restore(run, model, steps_per_epoch):
    """Loads the run's checkpoint into ``model`` (weights and optimizer), drops the metrics
    recorded after it and returns its epoch. A checkpoint that cannot be read gives way to the
    previous one (one epoch earlier), with a warning."""
    epoch = 0
    path = _readable_checkpoint(run, model)
    if path is not None:
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        epoch, rest = divmod(steps, steps_per_epoch)
        if rest:
            raise ValueError(f"{path} holds {steps} steps, not whole epochs of "
                             f"{steps_per_epoch} steps: it is not this run's checkpoint.")
    run.keep_metrics(epoch)
    return epoch


def _readable_checkpoint(run, model):
    """Loads the newest checkpoint of ``run`` that can be read into ``model``; its path, or
    None when there is none. A `ValueError` says what to do when none can be read."""
    problems = []
    for path in (run.checkpoint_path, run.previous_checkpoint_path):
        if not path.exists():
            continue
        try:
            model.load_weights(path)
        except Exception as err:  # h5py and Keras raise many types for a damaged file
            problems.append(f"{path.name}: {type(err).__name__}: {err}")
            continue
        if problems:
            warnings.warn(f"run {run.id}: {problems[0]}; resuming from {path.name}, one epoch "
                          "earlier.", stacklevel=4)
        return path
    if problems:
        raise ValueError(
            f"run {run.id} has no readable checkpoint ({'; '.join(problems)}). To train it "
            f"again from epoch 1, delete {run.checkpoint_path} and resume.")
    return None


def _save_model(run, arch, model):
    """Writes the trained model, without optimizer, as ``model.keras``."""
    final = build_resnet(arch)
    final.set_weights(model.get_weights())
    write_atomic(run.model_path, final.save)
