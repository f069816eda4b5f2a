"""The training loop: train a `TrainingRequest` (an architecture description, its data, a recipe,
a seed) as a run.

`check_train` says whether a request can run here before anything is written. `train` records
everything in a run directory (see `keras_resnets.runs.store`): the config first,
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
import functools
import importlib.metadata
import os
import platform
import sys
import warnings
from pathlib import Path

import keras

from keras_resnets.data.datasets import (
    DataUnavailableError,
    check_arguments,
    describe,
    is_available,
    load_data,
)
from keras_resnets.design.limits import check_training_memory
from keras_resnets.design.validation import fail
from keras_resnets.models.builder import build_resnet
from keras_resnets.runs.processes import identity, process_command
from keras_resnets.runs.store import PeerRun, Run, RunStore
from keras_resnets.training.callbacks import Callback, ProgressBar, format_epoch
from keras_resnets.training.distribution import check_distribution, distribution_scope
from keras_resnets.training.epochs import fit_epochs
from keras_resnets.training.interrupts import deferred_interrupts
from keras_resnets.training.optimization import compile_model
from keras_resnets.training.probe import HeldOutProbe, probe_images
from keras_resnets.training.processes import (
    ENGINES,
    average_statistics,
    check_processes,
    keep_log,
    lost_peer,
    weights_digest,
)
from keras_resnets.training.recorder import Recorder, Stop
from keras_resnets.training.request import TrainingRequest


def versions():
    """The versions of Python and of the libraries a run depends on."""
    found = {"python": platform.python_version()}
    for package in ("keras-resnets", "keras", "numpy", "tensorflow", "jax", "jaxlib", "torch"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def check_fits(architecture, info):
    """Raises a `ValueError` unless ``architecture`` can be trained on the images and classes
    of ``info`` (a dataset's `DatasetInfo`, as `describe` gives it)."""
    if not architecture.include_top:
        fail("architecture.include_top", False, "True: training needs the classifier")
    if tuple(architecture.input_shape) != tuple(info.image_shape):
        fail("architecture.input_shape", architecture.input_shape,
              f"{tuple(info.image_shape)}, the image shape of dataset {info.name!r}")
    if architecture.classes != info.classes:
        fail("architecture.classes", architecture.classes,
              f"{info.classes}, the number of classes of dataset {info.name!r}")


def train(request, dataset=None, recipe=None, *, runs_dir="runs", run_id=None, callbacks=(),
          verbose=0, cluster=None, **fields):
    """Trains ``request`` as a new run and returns the `Run`.

    Args:
        request: a `TrainingRequest`; or what `TrainingRequest.build` makes one of: an
            architecture (an `Architecture`, its dict or JSON, or a preset's name, fitted to
            the data) with ``dataset`` (a key of `keras_resnets.data.datasets.DATASETS` or the
            path of an image folder: one subfolder of JPEG or PNG images per class; default
            ``"mnist_sample"``), ``recipe`` (a `Recipe`, its dict or None for the default) and
            ``fields``: the data's (``subset``, ``validation_split``, ``data_dir``,
            ``augment``, ``transforms``, ``validation_dataset``), ``seed``, ``distribution``
            and single recipe fields (``epochs=1``).
        runs_dir: the run store's root directory.
        run_id: the run's id; None makes a fresh one.
        callbacks: `Callback` instances that receive the progress.
        verbose: 0 silent, 1 a progress bar and a line per epoch, 2 only the lines.
        cluster: the `keras_resnets.training.processes.Cluster` that `processes.join`
            returned when several processes train this run together (each calls `train`
            with the same request and ``run_id``); None for one process.

    Returns:
        The `Run`; ``run.status["state"]`` is ``completed``, ``cancelled`` or ``failed``
        (a diverged loss). Ctrl-C or SIGTERM stops it before its next step, marks it
        ``interrupted`` and raises `KeyboardInterrupt` (a second one raises at once).

    Raises:
        ValueError: for a wrong request (`TrainingRequest`), one that cannot run here
            (`check_train`: its data, an architecture that does not fit the images or
            classes, a distribution this backend cannot run), or a run id that is taken or
            unsafe.

    Example:
    >>> import tempfile
    >>> run = train("mnist_resnet", subset=128, epochs=1, batch_size=32,
    ...             runs_dir=tempfile.mkdtemp(), run_id="lecture")  # doctest: +SKIP
    >>> run.status["state"], run.path.name  # doctest: +SKIP
    ('completed', 'lecture')
    """
    callbacks = _with_progress(callbacks, verbose)
    count = cluster.count if cluster else 1
    if not isinstance(request, TrainingRequest):
        fields = {"processes": count, **fields}
    request = as_request(request, dataset, recipe, **fields)
    if request.processes != count:
        fail("processes", request.processes, f"{count}, the processes that train the run")
    config = check_train(request)
    run = _create_run(RunStore(runs_dir), config, run_id, cluster)
    with run.lock():
        return _fit(run, resuming=False, callbacks=callbacks, cluster=cluster)


def as_request(request, dataset=None, recipe=None, **fields):
    """``request`` if it is a `TrainingRequest` (then with no other argument), else
    `TrainingRequest.build` of the arguments (``dataset`` None: the default)."""
    if not isinstance(request, TrainingRequest):
        data = {} if dataset is None else {"dataset": dataset}
        return TrainingRequest.build(request, recipe=recipe, **data, **fields)
    given = sorted([*fields, *(["dataset"] if dataset is not None else []),
                    *(["recipe"] if recipe is not None else [])])
    if given:
        raise ValueError(f"{', '.join(given)} cannot go with a TrainingRequest: change the "
                         "request instead (request.replace(...)).")
    return request


def check_train(request, dataset=None, recipe=None, **fields):
    """The ``config.json`` that `train` would write for ``request`` (or for these arguments,
    as `train` takes them), after checking that it can run here, and nothing written: its data
    can be had and fits the recipe's batches and steps, the architecture fits its images and
    classes and the memory limit, and this backend runs its processes and distribution. The
    config is the request's `TrainingRequest.to_dict` and its bookkeeping: the backend, the
    versions and, with several processes, the backend's ``engine``
    (`keras_resnets.training.processes`)."""
    request = as_request(request, dataset, recipe, **fields)
    data, recipe = request.dataset, request.recipe
    backend = keras.backend.backend()
    check_processes(request.processes, backend, data.name, recipe.batch_size)
    check_data(data.name, subset=data.subset, validation_split=data.validation_split,
               data_dir=data.data_dir, batch_size=recipe.batch_size, seed=request.seed)
    found = describe_data(data)
    check_fits(request.architecture, found.info)
    check_runnable(request.architecture, found, recipe)
    check_distribution(request.distribution, recipe.batch_size)
    config = {**request.to_dict(), "backend": backend, "versions": versions()}
    if request.processes > 1:
        config["engine"] = ENGINES[backend]
    return config


def _create_run(store, config, run_id, cluster):
    """The new run: process 0 creates it, the others wait for it and keep their logs in it."""
    if cluster is None:
        return store.create(config, run_id=run_id)
    if run_id is None:
        fail("run_id", None, "the same id given to each of the processes that train one run")
    run = store.create(config, run_id=run_id) if cluster.index == 0 else None
    cluster.barrier("the run is created")
    run = run or PeerRun(store.path(run_id), config)
    keep_log(run, cluster)
    return run


def check_data(dataset, *, subset, validation_split, data_dir, batch_size, seed):
    """Raises a `ValueError` naming the first data argument that is wrong, or the dataset if
    it cannot be had (MNIST falls back to the embedded sample), before anything is written."""
    check_arguments(dataset, batch_size=batch_size, validation_split=validation_split,
                    subset=subset, seed=seed)
    if dataset != "mnist" and not is_available(dataset, data_dir):
        raise DataUnavailableError(dataset, "it is not prepared locally and cannot be downloaded "
                                            "from here")


def describe_data(data):
    """What the run's `DataSpec` ``data`` holds (`keras_resnets.data.datasets.describe`):
    counted, its folders scanned, no image decoded."""
    return describe(data.name, validation_split=data.validation_split, subset=data.subset,
                    data_dir=data.data_dir, transforms=data.transforms,
                    validation_dataset=data.validation_dataset)


def check_runnable(arch, found, recipe):
    """Raises a `ValueError` naming the field unless the run can go, before anything is
    written: the recipe's batches and steps fit the training images of ``found`` (a
    `describe_data` result, `Recipe.check_steps`) and a training step fits the memory limit
    (`keras_resnets.design.limits.check_training_memory`)."""
    recipe.check_steps(found.num_train)
    check_training_memory(arch, recipe.batch_size)


def resume(run_id_or_path, *, runs_dir="runs", callbacks=(), verbose=0, force=False,
           cluster=None):
    """Continues an interrupted, cancelled or failed run from its last checkpoint.

    It reaches the metrics an uninterrupted run would have reached (on the same backend).

    Args:
        run_id_or_path: a run id in ``runs_dir``, or the path of a run directory.
        runs_dir: the run store's root directory.
        callbacks, verbose: as for `train`.
        force: resume a run whose status names a live process (``running``) once that process
            is confirmed not to be the run's: its command line does not name the run (its pid
            was reused). A process that holds the run's lock is never overridden.
        cluster: as for `train`: a run that several processes trained is resumed by as many.

    Raises:
        ValueError: if it is not a run, has completed, is still running, is damaged or was
            trained on another backend.
    """
    callbacks = _with_progress(callbacks, verbose)
    run = open_run(run_id_or_path, runs_dir)
    count = cluster.count if cluster else 1
    if run.config.processes != count:
        fail("run", run.id, f"resumed by {run.config.processes} processes, as many as trained "
                            f"it (--processes {run.config.processes}); this is {count}")
    if cluster is not None and cluster.index:
        run = PeerRun(run.path)
    with run.lock():
        if cluster is None or cluster.index == 0:
            check_resumable(run, force)
        if cluster is not None:
            cluster.barrier("the run is resumable")
            keep_log(run, cluster)
        run.clear_cancel()
        return _fit(run, resuming=True, callbacks=callbacks, cluster=cluster)


def check_resumable(run, force):
    """Raises a `ValueError` unless ``run`` can be resumed (``force``: as for `resume`)."""
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
    request = TrainingRequest.from_config(run.config)
    check_distribution(request.distribution, request.recipe.batch_size)


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


def _fit(run, resuming, callbacks, cluster=None):
    """Trains ``run`` from scratch or from its checkpoint; Ctrl-C and SIGTERM stop it before
    the next step (see `keras_resnets.training.interrupts`)."""
    if cluster is not None and cluster.index:
        callbacks = []  # process 0 reports the progress
    with deferred_interrupts() as interrupts:
        return _fit_recording(run, resuming, callbacks, interrupts, cluster)


def _fit_recording(run, resuming, callbacks, interrupts, cluster=None):
    """Trains ``run``, recording its state as it goes."""
    request = TrainingRequest.from_config(run.config)
    arch, recipe = request.architecture, request.recipe
    recorder = None
    before = run.status
    previous_source = before.get("data_source")
    previous_state = "interrupted" if before["state"] == "running" else before["state"]
    run.write_status(state="running", **identity(), epochs=recipe.epochs,
                     phase="preparing the data", message="loading the data and building the model")
    try:
        with distribution_scope(request.distribution, recipe.batch_size, cluster):
            keras.utils.set_random_seed(request.seed)
            model = build_resnet(arch)
            data = _epoch_data(request, 0, cluster)
            run.write_status(phase="compiling", num_train=data.num_train,
                             num_validation=data.num_validation,
                             message="compiling the model and its training step")
            from_logits = arch.classifier_activation is None
            schedule = compile_model(model, recipe, data.steps_per_epoch, from_logits=from_logits)
            initial_epoch = _restore(run, model, data.steps_per_epoch) if resuming else 0
            if previous_source and previous_source != data.source:
                warnings.warn(f"run {run.id} was trained on the {previous_source} and resumes on "
                              f"the {data.source}: it will not reach the result it would have.",
                              stacklevel=3)
            recorder = Recorder(run, schedule, data, recipe, initial_epoch, callbacks,
                                 interrupts)
            policy = model.dtype_policy.name
            run.write_status(epoch=initial_epoch, data_source=data.source, dtype_policy=policy,
                             message=f"compiling the training step; training from epoch "
                                     f"{initial_epoch + 1}")
            images = None if cluster else probe_images(data.validation)  # one process' call
            probe = HeldOutProbe(run, images, data.steps_per_epoch, recipe.epochs,
                                 recipe.batch_size, from_logits=from_logits)
            info = {"epochs": recipe.epochs, "initial_epoch": initial_epoch,
                    "steps_per_epoch": data.steps_per_epoch, "num_train": data.num_train,
                    "num_validation": data.num_validation, "data_source": data.source,
                    "dtype_policy": policy}
            for callback in callbacks:
                callback.on_begin(run, info)
            epoch_data = functools.partial(_epoch_data_from, request, data, cluster)
            _fit_epochs(model, cluster, recipe.epochs, epoch_data, initial_epoch, [recorder, probe])
            _save_model(run, arch, model)
            if cluster is not None:
                print(f"process {cluster.index} of {cluster.count}: weights sha256 "
                      f"{weights_digest(model)}", file=sys.stderr, flush=True)
            last = run.epochs()[-1:]
            run.write_status(state="completed", phase=None, message="completed: " + (
                format_epoch(last[0], recipe.epochs) if last else f"{recipe.epochs} epochs"))
    except Stop as stop:
        run.write_status(state=stop.state, phase=None, message=stop.message)
    except UnreadableCheckpoint as err:  # nothing was trained: the run is as it was
        run.write_status(state=previous_state, phase=None, message=str(err))
        raise
    except KeyboardInterrupt:
        _interrupted(run, recorder, recipe)
        raise
    except Exception as err:
        if interrupts.requested is not None or cluster and lost_peer(err):
            # stopped with the other processes, or one of them is gone
            _interrupted(run, recorder, recipe, f"{type(err).__name__}: {err}")
            raise KeyboardInterrupt(f"signal {interrupts.requested}" if interrupts.requested
                                    else "another process is gone") from err
        run.write_status(state="failed", phase=None, message=f"{type(err).__name__}: {err}")
        raise
    finally:
        for callback in callbacks:
            callback.on_end(run)
    return run


def _interrupted(run, recorder, recipe, cause=None):
    """Records that ``run`` was interrupted (by ``cause`` if given), and what is kept."""
    epoch = recorder.completed if recorder else 0
    kept = (f"the checkpoint of epoch {epoch} is kept" if epoch else
            "no epoch had completed, so there is no checkpoint and it starts again from epoch 1")
    processes = run.config.processes
    again = f" --processes {processes}" if processes > 1 else ""
    run.write_status(state="interrupted", phase=None, message=(
        f"interrupted after {epoch} of {recipe.epochs} epochs{f' ({cause:.300})' if cause else ''}; "
        f"{kept}; resume with: python -m keras_resnets resume {run.id}{again}"))


def epoch_seed(seed, epoch):
    """The global seed under which the data pipeline of ``epoch`` is built."""
    return (seed * 1_000_003 + epoch) % 2**32


def _epoch_data(request, epoch, cluster=None):
    """The run's data, with the training order (and augmentation) of ``epoch``.

    The split and the images depend on the run's seed alone, the order on the seed and the
    epoch: so the order of every epoch is fixed, whether or not the run was interrupted before
    it. (Not through the global seed: ``tf.random.set_seed`` clears TensorFlow's kernel
    caches, and the next step would then prepare the whole train function again.)

    With several processes (``cluster``), this process' share of every batch.
    """
    dataset = request.dataset
    data = load_data(dataset.name, batch_size=request.recipe.batch_size,
                     validation_split=dataset.validation_split, subset=dataset.subset,
                     data_dir=dataset.data_dir, augment=dataset.augment,
                     transforms=dataset.transforms, validation_dataset=dataset.validation_dataset,
                     seed=request.seed, shuffle_seed=epoch_seed(request.seed, epoch),
                     data_format=request.architecture.data_format,
                     drop_remainder=request.distribution != "none",
                     reshuffle=False, shard=cluster and (cluster.index, cluster.count))
    if cluster is None or cluster.strategy is None:
        return data
    # TensorFlow: each worker's own share, not auto-sharded again by the strategy.
    own = cluster.strategy.distribute_datasets_from_function
    return dataclasses.replace(data, train=own(lambda _: data.train), validation=(
        None if data.validation is None else own(lambda _: data.validation)))


def _epoch_data_from(request, first, cluster, epoch):
    """Epoch ``epoch``'s data: ``first`` is epoch 0's, loaded already."""
    return first if epoch == 0 else _epoch_data(request, epoch, cluster)


def _fit_epochs(model, cluster, epochs, epoch_data, initial_epoch, callbacks):
    """Trains ``model`` from ``initial_epoch`` to ``epochs`` on ``epoch_data(epoch)`` with
    ``callbacks``: `fit_epochs`, or on PyTorch with several processes the
    DistributedDataParallel loop (`keras_resnets.training.ddp`); with several processes on
    TensorFlow or PyTorch, the moving statistics are averaged after every epoch."""
    if cluster is not None and cluster.backend != "jax":
        callbacks = [average_statistics(cluster), *callbacks]
    if cluster is not None and cluster.backend == "torch":
        from keras_resnets.training import ddp

        wrapped = ddp.wrap(model)
        for epoch in range(initial_epoch, epochs):
            ddp.fit_epoch(model, wrapped, epoch_data(epoch), epoch, callbacks)
        return

    def inputs(epoch):
        data = epoch_data(epoch)
        return {"x": data.train, "validation_data": data.validation,
                "steps_per_epoch": data.steps_per_epoch if cluster else None}

    fit_epochs(model, epochs, inputs, initial_epoch=initial_epoch, callbacks=callbacks,
               shuffle=False)


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


class UnreadableCheckpoint(ValueError):
    """No checkpoint of a run can be read: it cannot be resumed as it is."""


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
        raise UnreadableCheckpoint(
            f"run {run.id} has no readable checkpoint ({'; '.join(problems)}). To train it "
            f"again from epoch 1, delete {run.checkpoint_path} and resume.")
    return None


def _save_model(run, arch, model):
    """Writes the trained model, without optimizer, as ``model.keras``."""
    final = build_resnet(arch)
    final.set_weights(model.get_weights())
    run.save_model(final.save)
