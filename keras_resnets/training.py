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

import dataclasses
import importlib.metadata
import math
import os
import platform
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from keras_resnets.architecture import Architecture, coerce_architecture
from keras_resnets.builders import build_resnet
from keras_resnets.choices import OPTIMIZERS, SCHEDULES
from keras_resnets.data import DATASETS, load_data
from keras_resnets.distribution import check_distribution, distribution_scope
from keras_resnets.presets import PRESETS, get_preset
from keras_resnets.runs import Run, RunStore, write_atomic

STEP_BOUNDARIES = (0.5, 0.75)  # the paper divides the learning rate by 10 at 32k and 48k of 64k steps


def _fail(name, value, allowed):
    raise ValueError(f"{name}={value!r} is not allowed: {allowed}.")


def _check_number(name, value, low, high=math.inf, low_open=False, high_open=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        _fail(name, value, f"a finite number in {'(' if low_open else '['}{low}, {high}"
                           f"{')' if high_open or high == math.inf else ']'}")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(name, value, f"an integer >= {minimum}")


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, weight decay, epochs and batch size.

    The default is a quick recipe for small experiments: Adam at 1e-3 divided by 10 at 50%
    and 75% of the steps (the decay settles the batch-norm statistics, so held-out accuracy
    catches up with training accuracy), no weight decay, 4 epochs of batches of 32.
    `Recipe.paper` is He et al.'s CIFAR recipe.

    Weight decay is an L2 penalty ``weight_decay / 2 * sum(W**2)`` over the kernels of the
    convolutions and dense layers, added to the loss (and to the reported loss), so that
    SGD's gradient gains ``weight_decay * W`` as in the paper's Caffe/Torch training. Keras'
    own ``weight_decay`` is decoupled (it bypasses momentum) and would decay about ten times
    less with momentum 0.9. With Adam the penalty is plain L2, not AdamW.

    Attributes:
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adam"``.
        learning_rate: the base learning rate, a positive number.
        momentum: SGD momentum in [0, 1); unused by Adam.
        weight_decay: the L2 coefficient, >= 0 (the paper: 1e-4).
        epochs: passes over the training data.
        batch_size: images per step.
        warmup_epochs: epochs at ``learning_rate / 10`` first (the paper's ResNet-110 warm-up).
        schedule: ``"constant"``, or ``"step"``: divided by 10 at 50% and 75% of the steps.

    Example:
    >>> Recipe.paper(warmup_epochs=1).replace(epochs=2).learning_rate
    0.1
    >>> Recipe(learning_rate=0)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate=0 is not allowed: a finite number in (0, inf).
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 4
    batch_size: int = 32
    warmup_epochs: int = 0
    schedule: str = "step"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            _fail("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        _check_number("learning_rate", self.learning_rate, 0, low_open=True)
        _check_number("momentum", self.momentum, 0, 1, high_open=True)
        _check_number("weight_decay", self.weight_decay, 0)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            _fail("warmup_epochs", self.warmup_epochs, f"fewer than epochs={self.epochs}")
        if self.schedule not in SCHEDULES:
            _fail("schedule", self.schedule, f"one of {SCHEDULES}")

    @classmethod
    def paper(cls, **overrides):
        """He et al. (2015), §4.2: SGD, momentum 0.9, weight decay 1e-4, learning rate 0.1
        divided by 10 at 50% and 75% of training, batches of 128, 164 epochs (64k steps on
        CIFAR-10); ``warmup_epochs=1`` for ResNet-110."""
        return cls(**{"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9,
                      "weight_decay": 1e-4, "epochs": 164, "batch_size": 128,
                      "schedule": "step", **overrides})

    def replace(self, **changes):
        """A copy with some fields changed (and validated)."""
        return dataclasses.replace(self, **_known(changes))

    def to_dict(self):
        """The fields as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`; unknown keys raise a `ValueError`."""
        if not isinstance(data, dict):
            _fail("recipe", data, "a dict of Recipe fields")
        return cls(**_known(data))

    @classmethod
    def coerce(cls, recipe=None, **fields):
        """A `Recipe` from ``None`` (the default), a `Recipe` or a dict, with ``fields`` changed."""
        if recipe is None:
            recipe = cls()
        elif isinstance(recipe, dict):
            recipe = cls.from_dict(recipe)
        elif not isinstance(recipe, cls):
            _fail("recipe", recipe, "a Recipe, a dict of its fields or None")
        return recipe.replace(**fields) if fields else recipe


def _known(fields):
    allowed = sorted(f.name for f in dataclasses.fields(Recipe))
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"recipe has unknown field(s) {unknown}; allowed fields are {allowed}.")
    return fields


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
    total = recipe.epochs * steps_per_epoch
    boundaries = [round(f * total) for f in STEP_BOUNDARIES] if recipe.schedule == "step" else []
    return StepSchedule(recipe.learning_rate, boundaries, recipe.warmup_epochs * steps_per_epoch)


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
        ``num_train``, ``num_validation`` and ``data_source``."""

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
              f"validation images from the {info['data_source']}{start}", flush=True)

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


class _Recorder(keras.callbacks.Callback):
    """Writes a run's metrics, checkpoints and status while ``model.fit`` trains it, checks
    for a cancel request before each batch and stops on a non-finite loss."""

    def __init__(self, run, schedule, data, recipe, initial_epoch, callbacks):
        super().__init__()
        self.run, self.schedule, self.recipe = run, schedule, recipe
        self.steps, self.num_train = data.steps_per_epoch, data.num_train
        self.completed = initial_epoch
        self.callbacks = callbacks
        self.interval = max(1, self.steps // 20)
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
        write_atomic(self.run.checkpoint_path, self.model.save_weights)
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
        _fail("dataset", dataset, f"one of {sorted(DATASETS)}")
    info = DATASETS[dataset]
    if not architecture.include_top:
        _fail("architecture.include_top", False, "True: training needs the classifier")
    if tuple(architecture.input_shape) != tuple(info.image_shape):
        _fail("architecture.input_shape", architecture.input_shape,
              f"{tuple(info.image_shape)}, the image shape of dataset {dataset!r}")
    if architecture.classes != info.classes:
        _fail("architecture.classes", architecture.classes,
              f"{info.classes}, the number of classes of dataset {dataset!r}")


def resolve_architecture(architecture, dataset):
    """An `Architecture` from an instance, dict, JSON string or preset name; a preset is
    fitted to the image shape and classes of ``dataset``."""
    if isinstance(architecture, str) and architecture in PRESETS:
        if dataset not in DATASETS:
            _fail("dataset", dataset, f"one of {sorted(DATASETS)}")
        info = DATASETS[dataset]
        return get_preset(architecture, input_shape=tuple(info.image_shape), classes=info.classes)
    return coerce_architecture(architecture)


def train(architecture, dataset="mnist_sample", recipe=None, *, runs_dir="runs", run_id=None,
          subset=None, validation_split=0.1, data_dir=None, augment=False, seed=0,
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
        (a diverged loss). Ctrl-C marks it ``interrupted`` and raises `KeyboardInterrupt`.

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
    _check_int("seed", seed, 0)
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
    return _fit(run, resuming=False, callbacks=callbacks)


def resume(run_id_or_path, *, runs_dir="runs", callbacks=(), verbose=0):
    """Continues an interrupted, cancelled or failed run from its last checkpoint.

    It reaches the metrics an uninterrupted run would have reached (on the same backend).

    Args:
        run_id_or_path: a run id in ``runs_dir``, or the path of a run directory.
        runs_dir: the run store's root directory.
        callbacks, verbose: as for `train`.

    Raises:
        ValueError: if it is not a run, has completed, is still running or was trained on
            another backend.
    """
    callbacks = _with_progress(callbacks, verbose)
    run = open_run(run_id_or_path, runs_dir)
    status = run.status
    if status["state"] == "completed":
        _fail("run", run.id, "a run that has not completed (this one has)")
    if status["state"] == "running":
        _fail("run", run.id, f"a run that is not running (pid {status.get('pid')} is training it)")
    backend = run.config.get("backend")
    if backend != keras.backend.backend():
        _fail("run", run.id, f"resumed with KERAS_BACKEND={backend}, the backend it was trained "
                             f"with (this process uses {keras.backend.backend()})")
    check_distribution(run.config.get("distribution", "none"), run.config["recipe"]["batch_size"])
    run.clear_cancel()
    return _fit(run, resuming=True, callbacks=callbacks)


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
        _fail("verbose", verbose, "0, 1 or 2")
    callbacks = list(callbacks)
    for callback in callbacks:
        if not isinstance(callback, Callback):
            _fail("callbacks", callback, "keras_resnets.training.Callback instances")
    return callbacks + ([ProgressBar(bar=verbose == 1)] if verbose else [])


def _fit(run, resuming, callbacks):
    """Trains ``run`` from scratch or from its checkpoint, recording state as it goes."""
    config = run.config
    arch = Architecture.from_dict(config["architecture"])
    recipe = Recipe.from_dict(config["recipe"])
    recorder = None
    previous_source = run.status.get("data_source")
    run.write_status(state="running", pid=os.getpid(), epochs=recipe.epochs,
                     message="loading the data")
    try:
        with distribution_scope(config.get("distribution", "none"), recipe.batch_size):
            keras.utils.set_random_seed(config["seed"])
            model = build_resnet(arch)
            data = _epoch_data(config, recipe, arch, epoch=0)
            schedule = compile_model(model, recipe, data.steps_per_epoch,
                                     from_logits=arch.classifier_activation is None)
            initial_epoch = _restore(run, model, data.steps_per_epoch) if resuming else 0
            if previous_source and previous_source != data.source:
                warnings.warn(f"run {run.id} was trained on the {previous_source} and resumes on "
                              f"the {data.source}: it will not reach the result it would have.",
                              stacklevel=3)
            recorder = _Recorder(run, schedule, data, recipe, initial_epoch, callbacks)
            run.write_status(epoch=initial_epoch, data_source=data.source,
                             message=f"training from epoch {initial_epoch + 1}")
            info = {"epochs": recipe.epochs, "initial_epoch": initial_epoch,
                    "steps_per_epoch": data.steps_per_epoch, "num_train": data.num_train,
                    "num_validation": data.num_validation, "data_source": data.source}
            for callback in callbacks:
                callback.on_begin(run, info)
            for epoch in range(initial_epoch, recipe.epochs):
                if epoch:
                    data = _epoch_data(config, recipe, arch, epoch)
                model.fit(data.train, validation_data=data.validation, initial_epoch=epoch,
                          epochs=epoch + 1, callbacks=[recorder], shuffle=False, verbose=0)
            _save_model(run, arch, model)
            last = [e for e in run.metrics() if e.get("event") == "epoch"][-1:]
            run.write_status(state="completed", message="completed: " + (
                format_epoch(last[0], recipe.epochs) if last else f"{recipe.epochs} epochs"))
    except Stop as stop:
        run.write_status(state=stop.state, message=stop.message)
    except KeyboardInterrupt:
        epoch = recorder.completed if recorder else 0
        run.write_status(state="interrupted", message=(
            f"interrupted after {epoch} of {recipe.epochs} epochs; the checkpoint of the last "
            f"completed epoch is kept; resume with: python -m keras_resnets resume {run.id}"))
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
    dataset = config["dataset"]
    return load_data(dataset["name"], batch_size=recipe.batch_size,
                     validation_split=dataset["validation_split"], subset=dataset["subset"],
                     data_dir=dataset["data_dir"], augment=dataset["augment"],
                     seed=config["seed"], shuffle_seed=epoch_seed(config["seed"], epoch),
                     data_format=arch.data_format,
                     drop_remainder=config.get("distribution", "none") != "none", reshuffle=False)


def _restore(run, model, steps_per_epoch):
    """Loads the run's checkpoint into ``model`` (weights and optimizer), drops the metrics
    recorded after it and returns its epoch."""
    epoch = 0
    if run.checkpoint_path.exists():
        model.load_weights(run.checkpoint_path)
        steps = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        epoch, rest = divmod(steps, steps_per_epoch)
        if rest:
            raise ValueError(f"{run.checkpoint_path} holds {steps} steps, not whole epochs of "
                             f"{steps_per_epoch} steps: it is not this run's checkpoint.")
    run.keep_metrics(epoch)
    return epoch


def _save_model(run, arch, model):
    """Writes the trained model, without optimizer, as ``model.keras``."""
    final = build_resnet(arch)
    final.set_weights(model.get_weights())
    write_atomic(run.model_path, final.save)
