"""``python -m keras_resnets.experiments NAME --size quick --seed 0 --out DIR``: a worker.

Runs one experiment of `EXPERIMENTS` on the backend of ``KERAS_BACKEND`` and writes its
progress, data, chart and summary into ``DIR`` (see `keras_resnets.experiments.store`).
SIGTERM, or a ``CANCEL`` file seen at a progress report, stops it with the state
``cancelled``. Exit status: 0 completed, 1 failed, 2 bad arguments, 143 cancelled.
"""

import argparse
import json
import sys
import time
import traceback

import keras

from keras_resnets.experiments import EXPERIMENTS, SIZE_NAMES
from keras_resnets.experiments.store import ExperimentRun
from keras_resnets.runs.files import now
from keras_resnets.runs.processes import identity
from keras_resnets.training.interrupts import stop_on_sigterm


class Cancelled(BaseException):
    """The worker was asked to stop (a `BaseException`, like `KeyboardInterrupt`, so that no
    library's ``except Exception`` swallows it)."""


def parse(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m keras_resnets.experiments",
        description="Runs one of the lecture's experiments and writes its results into a directory.")
    parser.add_argument("name", metavar="NAME", choices=list(EXPERIMENTS),
                        help=f"the experiment: one of {', '.join(EXPERIMENTS)}")
    parser.add_argument("--size", choices=SIZE_NAMES, default="quick",
                        help="quick: minutes on a CPU; full: the real experiment, for a GPU (default: quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and initialisations (default: 0)")
    parser.add_argument("--out", required=True, help="output directory (created if needed)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    with stop_on_sigterm(Cancelled):
        return _run(args)


def _run(args):
    """Runs the experiment that ``args`` names into ``args.out``; returns the exit status."""
    run = ExperimentRun(args.out)
    run.path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    run.write_status(state="running", fraction=0.0, message="running", **identity(), name=args.name,
                     size=args.size, seed=args.seed, backend=keras.backend.backend(),
                     started=run.status.get("started") or now())

    def progress(fraction, message):
        if run.cancel_requested:
            raise Cancelled
        run.write_status(state="running", fraction=float(fraction), message=message)

    try:
        result = EXPERIMENTS[args.name].run(size=args.size, seed=args.seed, progress=progress)
        run.save(result)
    except Cancelled:
        run.write_status(state="cancelled", message="cancelled")
        return 143
    except Exception as err:
        traceback.print_exc()
        run.write_status(state="failed", message=f"{type(err).__name__}: {err}")
        return 1
    run.write_status(state="completed", fraction=1.0, message="done",
                     seconds=round(time.perf_counter() - started, 1))
    print(json.dumps(result.summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
