"""Held-out probes: the model in inference mode on a fixed few hundred held-out images, a few
times while it trains, so that even a one-epoch run has a validation curve, not one point.

A probe is a ``"probe"`` event of ``metrics.jsonl`` (`keras_resnets.runs.records.ProbeEvent`):
``val_loss`` and ``val_accuracy`` on the first `PROBE_IMAGES` held-out images (always the same
ones), at the steps `probe_steps` names. It reads the model and changes nothing of its state
(no metric, no random draw, no batch-norm statistic), so a resumed run reaches the result an
uninterrupted one would have. The epoch event still holds the whole held-out set's numbers.

Example:
>>> probe_steps(steps_per_epoch=256, epochs=1)
[29, 58, 87, 116, 145, 174, 203, 232]
>>> probe_steps(steps_per_epoch=4, epochs=2)  # never at an epoch's end: the epoch event is there
[1, 2, 3, 5, 6, 7]
"""

import math
import time

import keras
import numpy as np

PROBE_IMAGES = 256
"""How many held-out images a probe evaluates: enough to tell 90% from 95% (a standard error
of 1.9 points at 90%), a fifth of the work of evaluating the first minute's 1,000 held-out
digits."""
PROBES = 8
"""Probes per run, spread evenly over its steps: the validation curve of a one-epoch run has
these and the epoch's end."""


def probe_steps(steps_per_epoch, epochs):
    """The steps (counted from the run's start, from 1) after which a probe runs: `PROBES`
    evenly spaced ones, leaving out the ends of epochs."""
    total = steps_per_epoch * epochs
    interval = max(1, math.ceil(total / (PROBES + 1)))
    return [step for step in range(interval, total, interval) if step % steps_per_epoch]


def probe_images(validation, limit=PROBE_IMAGES):
    """The first ``limit`` images and labels of a batched ``tf.data`` validation pipeline, as
    NumPy arrays (``None`` without a validation set)."""
    if validation is None:
        return None
    images, labels = [], []
    for x, y in validation.as_numpy_iterator():
        images.append(x)
        labels.append(y)
        if sum(len(b) for b in labels) >= limit:
            break
    return np.concatenate(images)[:limit], np.concatenate(labels)[:limit]


def held_out_numbers(predictions, labels, from_logits):
    """``(loss, accuracy)`` of ``predictions`` (logits or probabilities): the mean sparse
    categorical cross-entropy, as the run's loss computes it, and the share of right answers.

    >>> loss, accuracy = held_out_numbers(np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([0, 0]), True)
    >>> round(loss, 4), accuracy
    (0.3466, 1.0)
    """
    predictions = predictions.astype("float64")
    if from_logits:
        shifted = predictions - predictions.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    else:  # Keras clips probabilities at its epsilon before the logarithm
        epsilon = keras.config.epsilon()
        log_p = np.log(np.clip(predictions, epsilon, 1 - epsilon))
    loss = -log_p[np.arange(len(labels)), labels.astype(int)].mean()
    accuracy = (predictions.argmax(axis=1) == labels).mean()
    return float(loss), float(accuracy)


class HeldOutProbe(keras.callbacks.Callback):
    """Runs the probes of `probe_steps` while ``model.fit`` trains ``run``: the model on the
    fixed ``images`` in batches of ``batch_size`` (the shapes it already runs)."""

    def __init__(self, run, images, steps_per_epoch, epochs, batch_size, from_logits):
        super().__init__()
        self.run, self.images, self.batch_size = run, images, batch_size
        self.steps_per_epoch, self.from_logits = steps_per_epoch, from_logits
        self.steps = set(probe_steps(steps_per_epoch, epochs))
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        if self.images is None or step not in self.steps:
            return
        x, y = self.images
        model = self.model  # on JAX, reading it brings the trained state back into the model
        # predict, not predict_on_batch: under a distribution strategy it gathers the replicas.
        predictions = keras.ops.convert_to_numpy(
            model.predict(x, batch_size=self.batch_size, verbose=0))
        loss, accuracy = held_out_numbers(predictions, y, self.from_logits)
        if not math.isfinite(loss):  # diverged: the recorder stops the run at the epoch's end
            return
        self.run.append_metrics({"event": "probe", "epoch": self.epoch, "step": step,
                                 "val_loss": loss, "val_accuracy": accuracy, "images": len(y),
                                 "time": time.time()})
