"""A `Recipe` in Keras terms: the learning-rate schedule, the optimizer, the weight-decay
penalty, the loss and the metrics (`compile_model`).

Example:
>>> schedule = make_schedule(Recipe.paper(epochs=4), steps_per_epoch=10)
>>> [round(float(schedule(step)), 6) for step in (0, 20, 30)]
[0.1, 0.01, 0.001]
"""

import keras
import numpy as np

from keras_resnets.training.recipe import Recipe  # noqa: F401 (the doctests')


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate / 10`` for ``warmup_steps`` steps (or, with ``gradual_from``, a linear
    rise from that rate: Goyal et al.'s gradual warm-up), then ``learning_rate`` divided by 10
    at each of ``boundaries`` (in steps).

    Example:
    >>> schedule = StepSchedule(0.1, boundaries=(50, 75), warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 50, 75)]
    [0.01, 0.1, 0.01, 0.001]
    >>> schedule = StepSchedule(3.2, boundaries=(50,), warmup_steps=10, gradual_from=0.1)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 50)]
    [0.1, 1.65, 3.2, 0.32]
    """

    def __init__(self, learning_rate, boundaries=(), warmup_steps=0, gradual_from=None):
        self.learning_rate = float(learning_rate)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.warmup_steps = int(warmup_steps)
        self.gradual_from = None if gradual_from is None else float(gradual_from)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rate = keras.ops.convert_to_tensor(self.learning_rate, "float32")
        for boundary in self.boundaries:
            rate = keras.ops.where(step >= boundary, rate * 0.1, rate)
        if self.gradual_from is None:
            warm = rate * 0.1
        else:
            warm = self.gradual_from + (rate - self.gradual_from) * step / max(self.warmup_steps, 1)
        return keras.ops.where(step < self.warmup_steps, warm, rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "boundaries": list(self.boundaries),
                "warmup_steps": self.warmup_steps, "gradual_from": self.gradual_from}


class CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate / 10`` for ``warmup_steps`` steps (as in `StepSchedule`), else Keras'
    `CosineDecay` from ``learning_rate`` to 0 over ``decay_steps`` steps (counted from step 0,
    so the warm-up only replaces the start of the curve).

    Example:
    >>> schedule = CosineSchedule(0.1, decay_steps=100, warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 50, 100)]
    [0.01, 0.097553, 0.05, 0.0]
    """

    def __init__(self, learning_rate, decay_steps, warmup_steps=0):
        self.learning_rate = float(learning_rate)
        self.decay_steps = int(decay_steps)
        self.warmup_steps = int(warmup_steps)
        self.cosine = keras.optimizers.schedules.CosineDecay(self.learning_rate, self.decay_steps)

    def __call__(self, step):
        rate = self.cosine(step)
        return keras.ops.where(keras.ops.cast(step, "float32") < self.warmup_steps,
                               self.learning_rate * 0.1, rate)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_steps": self.decay_steps,
                "warmup_steps": self.warmup_steps}


def make_schedule(recipe, steps_per_epoch):
    """The learning-rate schedule of ``recipe`` for epochs of ``steps_per_epoch`` steps: a
    `CosineSchedule` for ``"cosine"``, else a `StepSchedule` (warming up gradually for
    ``"goyal"``).

    Example:
    >>> schedule = make_schedule(Recipe(schedule="cosine", epochs=2), steps_per_epoch=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 20)]
    [0.003, 0.0015, 0.0]
    """
    warmup_steps = recipe.warmup_epochs * steps_per_epoch
    if recipe.schedule == "cosine":
        return CosineSchedule(recipe.learning_rate, recipe.epochs * steps_per_epoch, warmup_steps)
    return StepSchedule(recipe.learning_rate, recipe.decay_steps(steps_per_epoch), warmup_steps,
                        recipe.gradual_warmup_start())


def compile_model(model, recipe, steps_per_epoch, from_logits=True, build=True):
    """Compiles ``model`` for ``recipe`` (loss, accuracy, optimizer, weight decay) and, if
    ``build``, builds it all, so that a checkpoint can be loaded into it; returns the
    learning-rate schedule.

    The experiments pass ``build=False``: they load no checkpoint, and the build's evaluation
    of a batch moves the random state that ``fit`` then shuffles their arrays with.
    """
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
    if not build:
        return schedule
    optimizer.build(model.trainable_variables)
    # Build loss and metrics on a batch of zeros, so that `fit` need not take a batch of the
    # data to build them (that would start a pass of the pipeline, and shift its shuffling).
    images = np.zeros((recipe.batch_size, *model.input_shape[1:]), "float32")
    model.test_on_batch(images, np.zeros((recipe.batch_size,), "int32"))
    return schedule
