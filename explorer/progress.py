"""A run's progress and its latest numbers, each said with what it is (no Streamlit).

The bar counts all the work of a run, not only its training steps: a run also evaluates its
held-out images at each epoch's end and at its probes (`keras_resnets.training.probe`), then
saves the model; an image evaluated costs about a third of one trained (a forward pass
against a forward and a backward one). So the bar does not sit near its end while the last
evaluation and the saving take their seconds, and its phase says what the worker is doing.

Example:
>>> status = {"state": "running", "phase": "training", "epoch": 0, "epochs": 1,
...           "num_train": 4096, "num_validation": 1000}
>>> events = [{"event": "batch", "epoch": 0, "step": 128, "loss": 0.9, "accuracy": 0.7,
...            "images_per_second": 100.0}]
>>> p = run_progress(status, Recipe(batch_size=16), events, steps_per_epoch=256)
>>> round(p.fraction, 2), p.phase, round(p.seconds_left)
(0.39, 'Training', 33)
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_resnets.runs import records
from keras_resnets.training.probe import PROBE_IMAGES, PROBES
from keras_resnets.training.recipe import Recipe

EVALUATION_COST = 1 / 3
"""The cost of evaluating one image, in images trained (one forward pass of three)."""
SAVING_SECONDS = 2.0
"""About how long the worker takes to save the trained model (it builds it anew first)."""
PHASES = {
    "starting": "Starting the backend: the worker imports Keras and {backend}",
    "created": "Starting the backend: the worker imports Keras and {backend}",
    "preparing the data": "Preparing the data and building the model",
    "compiling": "Compiling the model and its training step (the first batch takes longest)",
    "training": "Training",
    "evaluating": "Evaluating on the {validation} held-out images",
    "saving": "Saving the trained model",
}
"""What the page says for each phase a worker writes (`keras_resnets.runs.status.PHASES`),
and for a worker that has not written one yet."""


@dataclass(frozen=True)
class Progress:
    fraction: float
    """The share of the run's work done, 1.0 once it has stopped."""
    phase: str | None
    """What the worker is doing, for the user (None once it has stopped)."""
    seconds_left: float | None
    """About how long it needs still, at its current speed (None before it has one)."""


def run_progress(status, recipe: Recipe, events, steps_per_epoch, backend="the backend", processes=1) -> Progress:
    """The `Progress` of a run from its ``status``, `Recipe`, metric ``events``,
    ``steps_per_epoch`` (None when unknown) and the ``processes`` that train it (several make no
    held-out probes: `keras_resnets.training.loop` leaves them out)."""
    epochs = status.get("epochs") or recipe.epochs
    done_epochs = status.get("epoch", 0)
    state = status.get("state")
    if state not in ("created", "running"):
        return Progress(1.0 if state == "completed" else done_epochs / epochs, None, None)
    phase_key = status.get("phase") or state
    validation = status.get("num_validation") or 0
    phase = PHASES.get(phase_key, PHASES["training"]).format(backend=backend,
                                                              validation=f"{validation:,}")
    batches = records.batches(events)
    if not (steps_per_epoch and batches):
        return Progress(done_epochs / epochs, phase, None)
    per_step = recipe.batch_size  # images trained per step
    probe = min(PROBE_IMAGES, validation) * EVALUATION_COST
    evaluation = validation * EVALUATION_COST
    speed = batches[-1].get("images_per_second")
    step = max(batches[-1]["step"], done_epochs * steps_per_epoch)
    if phase_key == "saving":
        step, done_epochs = epochs * steps_per_epoch, epochs
    saving = SAVING_SECONDS * (speed or 0)
    probes = PROBES if processes == 1 else 0
    total = epochs * steps_per_epoch * per_step + epochs * evaluation + probes * probe + saving
    done = (step * per_step + done_epochs * evaluation
            + len(records.probes(events)) * probe)
    fraction = min(done / total, 1.0)
    left = (total - done) / speed if speed else None
    return Progress(fraction, phase, left)


@dataclass(frozen=True)
class Reading:
    """A number of a run with what it is: ``value`` (None when there is none yet) and
    ``source`` (words: over what images, when)."""

    value: float | None
    source: str


def training_numbers(events) -> tuple[Reading, Reading]:
    """``(loss, accuracy)`` of the training images, from the run's newest event: a running mean
    over the epoch's batches so far (the weights change as it goes), or the whole epoch's."""
    latest = [e for e in events if e.get("event") in ("batch", "epoch")][-1:]
    if not latest:
        return Reading(None, "no batch yet"), Reading(None, "no batch yet")
    event = latest[0]
    where = (f"mean over all of epoch {event['epoch'] + 1}" if event["event"] == "epoch" else
             f"running mean over epoch {event['epoch'] + 1} so far, step {event['step']:,}")
    return Reading(event.get("loss"), where), Reading(event.get("accuracy"), where)


def held_out_accuracy(events, num_validation=None) -> Reading:
    """The newest held-out accuracy: of an epoch's end (all the held-out images) or of a probe
    (a fixed few hundred of them)."""
    latest = [e for e in events if e.get("event") in ("probe", "epoch")
              and e.get("val_accuracy") is not None][-1:]
    if not latest:
        return Reading(None, "none yet: the first probe comes after about a ninth of the run")
    event = latest[0]
    if event["event"] == "probe":
        return Reading(event["val_accuracy"],
                       f"{event['images']:,} held-out images, step {event['step']:,}")
    everything = f"all {num_validation:,}" if num_validation else "all the"
    return Reading(event["val_accuracy"],
                   f"{everything} held-out images, end of epoch {event['epoch'] + 1}")


def bar_text(status, progress: Progress, epochs) -> str:
    """The words on a run's progress bar: its phase, the epochs done of ``epochs``, the share
    done, the time left, and where its data and precision came from when known.

    >>> bar_text({"epoch": 1, "dtype_policy": "float32"}, Progress(0.5, "Training", 12.3), 2)
    'Training · epoch 1 of 2 done · 50% · about 12 s left · computes in float32'
    """
    text = f"epoch {status.get('epoch', 0)} of {epochs} done · {progress.fraction:.0%}"
    if progress.phase:
        text = f"{progress.phase} · {text}"
    if progress.seconds_left is not None:
        text += f" · about {progress.seconds_left:.0f} s left"
    if status.get("data_source"):
        text += f" · data: {status['data_source']}"
    if status.get("dtype_policy"):
        text += f" · computes in {status['dtype_policy']}"
    return text


def numbers(events, status) -> tuple[list[tuple[str, str, str]], str]:
    """The Train page's cards, ``(label, value, what it is)``, and the line under them: the
    run's newest numbers, all from the same events."""
    loss, accuracy = training_numbers(events)
    held_out = held_out_accuracy(events, status.get("num_validation"))
    batches = records.batches(events)
    speed = batches[-1].get("images_per_second") if batches else None
    cards = [("Training loss", _text(loss.value, ".3f"), loss.source),
             ("Training accuracy", _text(accuracy.value, ".1%"), accuracy.source),
             ("Held-out accuracy", _text(held_out.value, ".1%"), held_out.source),
             ("Images / s", f"{speed:.0f}" if speed else "–", "training images per second, recently")]
    line = (f"Training: {loss.source} (the weights change as it goes). Held out (never trained on): "
            f"{held_out.source}.")
    return cards, line


def _text(value, spec) -> str:
    return "–" if value is None else format(value, spec)


def experiment_fraction(status) -> float:
    """The share of an experiment done, as its worker last wrote it, within 0 and 1."""
    return min(max(float(status.get("fraction") or 0.0), 0.0), 1.0)
