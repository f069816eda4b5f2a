"""Subscribers to a run's progress: subclass `Callback`; `ProgressBar` is the command line's."""

import keras


class Callback:
    """Receives a run's progress; override what you need.

    Events are the dicts written to ``metrics.jsonl`` (see `keras_resnets.runs.store`), but
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
