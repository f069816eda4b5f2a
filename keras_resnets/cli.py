"""The command line of keras_resnets (python -m keras_resnets, or keras-resnets): train an
architecture as a new run, resume a run, list the runs, cancel one, or summarise an architecture.

Examples::

    python -m keras_resnets train --preset mnist_resnet --dataset mnist --epochs 1
    python -m keras_resnets train --architecture arch.json --recipe paper --epochs 2 --seed 1
    python -m keras_resnets train --request request.json   # a TrainingRequest, whole
    KERAS_BACKEND=jax python -m keras_resnets train --preset mnist_resnet --distribution data_parallel
    python -m keras_resnets train --preset mnist_resnet --processes 2
    python -m keras_resnets summary --preset resnet50
    python -m keras_resnets runs
    python -m keras_resnets resume 20250101-120000-mnist_resnet-3fa2

Help and bad arguments answer without starting a backend; the backend's start-up log is
hidden unless ``--verbose``. Bad input prints ``error: ...`` and exits with status 2. Ctrl-C
or SIGTERM stops a run before its next step (a second one at once); it exits with 130 and can
be resumed. A failed run exits with 1.
"""

import argparse
import contextlib
import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

from keras_resnets.design.validation import parse_json
from keras_resnets.runs.files import read_json
from keras_resnets.runs.status import DAMAGED
from keras_resnets.runs.store import RunStore
from keras_resnets.runtime.environment import QUIET_BACKEND, quiet_backend_start
from keras_resnets.training.choices import DISTRIBUTIONS
from keras_resnets.training.interrupts import stop_on_sigterm

EXIT_CODES = {"completed": 0, "cancelled": 0, "failed": 1}


def _field(text):
    """``KEY=VALUE`` with VALUE read as JSON when it parses within bounds (``3``, ``true``,
    ``[32, 32, 3]``), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key, parse_json(value, f"--set {key}")
    except ValueError:
        return key, value


def _add_architecture(parser, request=False):
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", help="a preset name, e.g. mnist_resnet, cifar_resnet20, resnet50")
    group.add_argument("--architecture", metavar="FILE.json",
                       help="an architecture description (Architecture.to_json())")
    if request:
        group.add_argument("--request", metavar="FILE.json",
                           help="a whole request (TrainingRequest.to_dict()): architecture, "
                                "data, recipe, seed, distribution and processes; the options "
                                "that say them are refused with it")
    parser.add_argument("--set", dest="fields", metavar="KEY=VALUE", type=_field, action="append",
                        default=[], help="a preset argument or architecture field (repeatable), "
                                         "e.g. --set nb_blocks=3 --set shortcut=A")


def build_parser():
    """The `argparse` parser of all commands."""
    parser = argparse.ArgumentParser(prog="keras-resnets",
                                     description=" ".join(__doc__.split("\n\n")[0].split()))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true",
                        help="show the backend's start-up log (hidden by default)")
    commands = _Commands(parser.add_subparsers(dest="command", required=True), common)
    _add_train_command(commands)
    _add_resume_command(commands)

    runs = commands.add_parser("runs", help="list the runs, newest first")
    _add_store(runs)

    cancel = commands.add_parser("cancel", help="ask a running run to stop")
    cancel.add_argument("run_id")
    _add_store(cancel)

    _add_summary_command(commands)
    return parser


def _add_train_command(commands):
    """``train``: the architecture, the data, the recipe and its overrides, and where the run
    goes. The options that say the request default to None, so that ``--request`` knows which
    were given (`_REQUEST_OPTIONS`); `TrainingRequest.build` holds their defaults."""
    from keras_resnets.data.datasets import DATASETS
    from keras_resnets.data.transforms import TRANSFORMS
    from keras_resnets.training.recipe import FIRST_MINUTE_SUBSET, RECIPES, VALIDATION_SPLIT, Recipe

    quick = Recipe()
    train = commands.add_parser("train", help="train an architecture as a new run")
    _add_architecture(train, request=True)
    train.add_argument("--dataset", type=_dataset, metavar="NAME|PATH",
                       help=f"one of {', '.join(sorted(DATASETS))}, or an image folder: one "
                            "subfolder of JPEG/PNG images per class (default: mnist_sample)")
    train.add_argument("--validation-dataset", metavar="PATH",
                       help="an image folder of held-out images with the training folder's "
                            "classes (then --validation-split 0)")
    train.add_argument("--subset", type=int,
                       help=f"training images used; 0: all (default: {FIRST_MINUTE_SUBSET} for "
                            "mnist_sample, the first minute's run, all for other datasets)")
    train.add_argument("--validation-split", type=float,
                       help=f"the fraction held out (default: {VALIDATION_SPLIT})")
    train.add_argument("--data-dir", help="tensorflow-datasets directory")
    train.add_argument("--augment", action="store_true", default=None,
                       help="the paper's crop-and-flip")
    train.add_argument("--transforms", choices=tuple(TRANSFORMS),
                       help="the input transforms (default: the dataset's; --augment is 'cifar')")
    train.add_argument("--recipe", choices=RECIPES,
                       help=f"quick: {quick.optimizer} {quick.learning_rate:g} ({quick.schedule} "
                            f"rate), {quick.epochs} epochs of {quick.batch_size}; "
                            "paper: He et al.'s SGD; goyal: Goyal et al.'s ImageNet SGD, its "
                            "rate scaled to --batch-size (default: quick)")
    for field in dataclasses.fields(Recipe):  # --optimizer, --learning-rate, ...: one home
        train.add_argument(f"--{field.name.replace('_', '-')}", type=field.type,
                           choices=field.metadata.get("choices"))
    train.add_argument("--seed", type=int, help="(default: 0)")
    train.add_argument("--distribution", choices=DISTRIBUTIONS,
                       help="data_parallel: split each (global) batch over all visible devices; "
                            "JAX and TensorFlow (default: none)")
    _add_store(train)
    train.add_argument("--run-id", help="the run's id (default: time, name and random hex)")
    _add_processes(train, "1")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors")


_DATA_OPTIONS = ("subset", "validation_split", "data_dir", "augment", "transforms",
                 "validation_dataset")
"""The options of ``train`` that go to the `DataSpec` (`TrainingRequest.build`'s names)."""
_REQUEST_OPTIONS = ("fields", "dataset", *_DATA_OPTIONS, "recipe", "seed", "distribution",
                    "processes")
"""The options of ``train`` (besides the recipe's fields) that say what the request says."""


def _add_processes(parser, default):
    parser.add_argument("--processes", type=int, metavar="N",
                        help="train one run with N processes on this machine, each backend on "
                             "its own engine (jax.distributed, MultiWorkerMirroredStrategy, "
                             f"torch.distributed DDP under torchrun); the batch is global "
                             f"(default: {default})")
    parser.add_argument("--port", type=int,
                        help="the first loopback port of --processes (default: free ones)")


def _add_resume_command(commands):
    resume = commands.add_parser("resume", help="resume an interrupted or cancelled run")
    resume.add_argument("run_id")
    _add_store(resume)
    resume.add_argument("--force", action="store_true",
                        help="resume a run whose status names a live process once that process "
                             "is confirmed not to be the run's (its pid was reused)")
    _add_processes(resume, "as many as trained the run")
    resume.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _add_summary_command(commands):
    from keras_resnets.data.datasets import DATASETS

    summary = commands.add_parser("summary", help="print the parameter table per stage")
    _add_architecture(summary)
    summary.add_argument("--dataset", type=_dataset, metavar="NAME|PATH",
                         help=f"fit a preset to the images and classes of {', '.join(sorted(DATASETS))} "
                              "or an image folder")


class _Commands:
    """``add_parser`` of every command with the options all commands share."""

    def __init__(self, subparsers, common):
        self.subparsers, self.common = subparsers, common

    def add_parser(self, name, **kwargs):
        return self.subparsers.add_parser(name, parents=[self.common], **kwargs)


def _add_store(parser):
    parser.add_argument("--runs-dir", default="runs", help="the run store (default: runs)")


def _dataset(text):
    """``--dataset``: a dataset's name, or an image folder's path made absolute."""
    from keras_resnets.data.spec import check_dataset

    try:
        return check_dataset(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _architecture(args, dataset):
    """The `Architecture` of ``--preset``/``--architecture`` and ``--set``, a preset fitted to
    the images (after ``--transforms``) and classes of ``dataset``."""
    from keras_resnets.data.datasets import describe
    from keras_resnets.design.architecture import coerce_architecture
    from keras_resnets.design.presets import get_preset

    fields = dict(args.fields)
    if args.architecture:
        return coerce_architecture(read_json(args.architecture, f"--architecture={args.architecture!r}"),
                                   **fields)
    if dataset:
        info = describe(dataset, validation_split=0, transforms=getattr(args, "transforms", None),
                        augment=bool(getattr(args, "augment", False))).info
        fields = {"input_shape": tuple(info.image_shape), "classes": info.classes, **fields}
    try:
        return get_preset(args.preset, **fields)
    except TypeError as err:
        raise ValueError(f"--set {sorted(fields)} is not allowed for preset "
                         f"{args.preset!r}: {err}") from None


def _train(args):
    from keras_resnets.runs.store import new_run_id
    from keras_resnets.training import check_train, train

    cluster = _join(args)
    request = _request(args, cluster)
    if cluster is None and request.processes > 1:  # this process launches the others
        check_train(request)
        run_id = args.run_id or new_run_id(request.architecture.name)
        _check_new_run(args.runs_dir, run_id)
        return _launch(args, request.processes, [] if args.run_id else ["--run-id", run_id],
                       Path(args.runs_dir) / run_id / "logs")
    run = train(request, runs_dir=args.runs_dir, run_id=args.run_id, cluster=cluster,
                verbose=0 if args.quiet else 1)
    args.completed = run.status["state"] == "completed"
    return EXIT_CODES[run.status["state"]]


def _request(args, cluster):
    """The `TrainingRequest` of ``--request FILE.json``, or of the options (several processes:
    those of ``cluster``, else ``--processes``)."""
    from keras_resnets.data.datasets import SAMPLE_NAME
    from keras_resnets.training import Recipe, TrainingRequest, default_subset

    recipe_fields = [field.name for field in dataclasses.fields(Recipe)]
    if args.request:
        given = [name for name in (*_REQUEST_OPTIONS, *recipe_fields)
                 if getattr(args, name) not in (None, [])]
        if given:
            flags = ", ".join("--set" if name == "fields" else f"--{name.replace('_', '-')}"
                              for name in given)
            raise ValueError(f"{flags} cannot go with --request: the request file says it all.")
        where = f"--request={args.request!r}"
        raw = read_json(args.request, where)
        try:
            return TrainingRequest.from_dict(raw)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    dataset = args.dataset or SAMPLE_NAME
    recipe = Recipe.named(args.recipe or "quick", **{
        name: getattr(args, name) for name in recipe_fields if getattr(args, name) is not None})
    options = {name: getattr(args, name) for name in (*_DATA_OPTIONS, "seed", "distribution")
               if getattr(args, name) is not None}
    options["subset"] = default_subset(dataset) if args.subset is None else (args.subset or None)
    processes = cluster.count if cluster else args.processes or 1
    return TrainingRequest.build(_architecture(args, dataset), dataset, recipe,
                                 processes=processes, **options)


def _resume(args):
    from keras_resnets.training import open_run, resume
    from keras_resnets.training.loop import check_resumable

    cluster = _join(args)
    if cluster is None:
        run = open_run(args.run_id, args.runs_dir)
        processes = args.processes or run.config.processes
        if processes > 1:  # this process launches the others
            if processes != run.config.processes:
                raise ValueError(f"--processes={processes} is not allowed: run {run.id} was "
                                 f"trained by {run.config.processes} processes; resume it "
                                 "with as many.")
            check_resumable(run, args.force)
            extra = [] if args.processes else ["--processes", str(processes)]
            return _launch(args, processes, extra, run.path / "logs")
    run = resume(args.run_id, runs_dir=args.runs_dir, verbose=0 if args.quiet else 1,
                 force=args.force, cluster=cluster)
    args.completed = run.status["state"] == "completed"
    return EXIT_CODES[run.status["state"]]


def _launches(args):
    """Whether this command starts several local processes (``--processes`` > 1 outside a
    cluster's variables)."""
    from keras_resnets.training.processes import ENGINES, cluster_size

    return ((getattr(args, "processes", None) or 1) > 1
            and not any(cluster_size(backend) for backend in ENGINES))


def _ended(args, code):
    """``code``; but a process of several whose run did not complete (cancelled, failed,
    interrupted, refused) exits at once: the
    others may wait in a collective step that it will never join, and the engines' exit
    handlers would wait for them (JAX's for minutes)."""
    if getattr(args, "cluster", None) is not None and not getattr(args, "completed", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _join(args):
    """This process' place among several (`keras_resnets.training.processes.join`) when the
    engine's variables name a cluster, else None (after checking ``--processes``)."""
    import keras

    from keras_resnets.training import processes

    if args.processes is not None:
        processes.check_processes(args.processes, None if args.processes == 1 else
                                  keras.backend.backend())
    args.cluster = processes.join(keras.backend.backend(), args.processes)
    return args.cluster


def _check_new_run(runs_dir, run_id):
    if RunStore(runs_dir).path(run_id).exists():
        raise ValueError(f"--run-id={run_id!r} is not allowed: {runs_dir}/{run_id} exists.")


def _launch(args, processes, extra, logs):
    """Runs this command as ``processes`` local processes (`launcher.launch`)."""
    import keras

    from keras_resnets.training.launcher import launch

    return launch([*args.argv, *extra], processes, keras.backend.backend(), args.port, logs)


def _runs(args):
    if os.path.exists(args.runs_dir) and not os.path.isdir(args.runs_dir):
        raise ValueError(f"--runs-dir={args.runs_dir!r} is not allowed: a directory of runs.")
    runs = RunStore(args.runs_dir).list()
    if not runs:
        print(f"no runs in {args.runs_dir}")
        return 0
    print(f"{'run':<44} {'state':<11} {'epoch':>7} {'architecture':<16} {'dataset':<14} "
          f"{'val_accuracy':>12}")
    for run in runs:
        status = run.status
        epochs = run.epochs()
        accuracy = epochs[-1].get("val_accuracy") if epochs else None
        damaged = status.state == DAMAGED
        progress = "" if damaged else f"{status.epoch}/{status.epochs or '?'}"
        print(f"{run.id:<44} {status.state:<11} {progress:>7} "
              f"{run.config.architecture.get('name', '?')!s:<16} "
              f"{run.config.dataset.name or '?'!s:<14} "
              f"{'' if accuracy is None else f'{accuracy:.4f}':>12}")
        if damaged:
            print(f"  {status.message}")
    return 0


def _cancel(args):
    run = RunStore(args.runs_dir).get(args.run_id)
    run.request_cancel()
    print(f"asked run {run.id} to stop")
    return 0


def _summary(args):
    from keras_resnets.models.summary import format_plan_summary

    arch = _architecture(args, args.dataset)
    print(f"{arch.name}: depth {arch.depth}, {arch.num_blocks} {arch.block} blocks, "
          f"input {'x'.join(map(str, arch.input_shape))}, {arch.classes} classes")
    print(format_plan_summary(arch.plan()))  # the plan's counts equal the built model's
    return 0


def _start_backend(verbose, data=False):
    """Imports Keras, and so the backend, now, and TensorFlow too when the command reads
    ``data`` (its pipelines are tf.data); unless ``verbose``, without their start-up log.

    TensorFlow's C++ libraries log as they load, before its logging reads
    ``TF_CPP_MIN_LOG_LEVEL``; so the log is hidden by loading them while standard error is
    (`quiet_backend_start`), not by that variable alone.
    """
    if not verbose:
        for key, value in QUIET_BACKEND.items():
            os.environ.setdefault(key, value)
    with quiet_backend_start() if not verbose else contextlib.nullcontext():
        import keras  # noqa: F401

        if data and importlib.util.find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401


def main(argv=None):
    """Runs the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    command = {"train": _train, "resume": _resume, "runs": _runs, "cancel": _cancel,
               "summary": _summary}[args.command]
    try:
        if getattr(args, "processes", None) is not None and args.processes < 1:
            from keras_resnets.training.processes import check_processes

            check_processes(args.processes, None)  # before the backend starts
        if command in (_train, _resume, _summary):
            launcher = _launches(args)
            if launcher and args.port is not None:
                from keras_resnets.training.launcher import check_port

                check_port(args.port)  # before the backend starts: a clear answer at once
            # tf.data is read by the processes a launcher starts, not by the launcher
            _start_backend(args.verbose, data=command in (_train, _resume) and not launcher)
        with stop_on_sigterm():  # SIGTERM stops a run like Ctrl-C
            return _ended(args, command(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return _ended(args, 130)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return _ended(args, 2)
    except OSError as err:  # a read-only or full store, a vanished directory
        print(f"error: {err.strerror or err}: {err.filename}", file=sys.stderr)
        return 1
