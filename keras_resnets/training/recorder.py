"""The recorder: what a run writes while ``model.fit`` trains it (metrics, checkpoints, status),
and where it stops it (an interrupt, a cancel request, a non-finite loss)."""

import math
import time
from collections import deque

import keras
import numpy as np

from keras_resnets.training.callbacks import format_epoch


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


class Recorder(keras.callbacks.Callback):
    """Writes a run's metrics, checkpoints and status while ``model.fit`` trains it, checks
    for an interrupt or a cancel request before each batch and stops on a non-finite loss."""

    def __init__(self, run, schedule, data, recipe, initial_epoch, callbacks, interrupts):
        super().__init__()
        self.run, self.schedule, self.recipe = run, schedule, recipe
        self.interrupts = interrupts
        self.steps, self.num_train = data.steps_per_epoch, data.num_train
        self.num_validation = data.num_validation
        self.trained_a_step = False
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
        self._write_phase(batch)
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
        last = self.completed == self.recipe.epochs
        self.run.write_status(epoch=self.completed, phase="saving" if last else "training",
                              message=format_epoch(event, self.recipe.epochs) + (
                                  "; saving the trained model" if last else ""))
        for callback in self.callbacks:
            callback.on_epoch(event)

    def _write_phase(self, batch):
        """Says in the status when compiling ends (the first step this process trains) and
        when an epoch's held-out evaluation begins (its last step)."""
        if batch + 1 == self.steps and self.num_validation:
            self.run.write_status(phase="evaluating", message=(
                f"evaluating epoch {self.epoch + 1} on the {self.num_validation:,} held-out "
                "images"))
        elif not self.trained_a_step:
            self.run.write_status(phase="training", message=f"training epoch {self.epoch + 1}")
        self.trained_a_step = True

    def _kept(self):
        if not self.completed:
            return "no epoch had completed, so there is no checkpoint"
        return f"the checkpoint of epoch {self.completed} is kept"
