"""How to train, as data: a `Recipe` and the first minute's defaults, importable without Keras
(the command line shows them in ``--help`` before a backend starts).

Example:
>>> Recipe().replace(epochs=3).epochs
3
>>> Recipe.paper(epochs=160).optimizer
'sgd'
"""

import dataclasses
from dataclasses import dataclass

from keras_resnets.design.validation import check_choice, check_int, check_number, fail
from keras_resnets.training.choices import OPTIMIZERS, SCHEDULES

MAX_STEPS = 2**31 - 1
"""The most optimizer steps of a run, and the largest epochs or batch size: a signed 32-bit
integer, which every backend's step counters and schedule arithmetic hold."""
STEP_BOUNDARIES = (0.5, 0.75)  # the paper divides the learning rate by 10 at 32k and 48k of 64k steps
GOYAL_BOUNDARIES = (30 / 90, 60 / 90, 80 / 90)  # Goyal et al. divide by 10 at epochs 30, 60 and 80 of 90
GOYAL_REFERENCE_BATCH = 256  # their rate is 0.1 x batch / 256; the gradual warm-up starts at 0.1


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, weight decay, epochs and batch size.

    The default is the first minute's recipe (see `FIRST_MINUTE_SUBSET`): Adam at 3e-3
    divided by 10 at 50% and 75% of the steps (the decay settles the batch-norm statistics),
    no weight decay, 1 epoch of batches of 16.
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
        warmup_epochs: epochs at ``learning_rate / 10`` first (the paper's ResNet-110 warm-up;
            gradual with ``"goyal"``).
        schedule: ``"constant"``; ``"step"``: divided by 10 at 50% and 75% of the steps;
            ``"cosine"``: from ``learning_rate`` down to 0 along half a cosine over all the
            steps (Loshchilov & Hutter's SGDR without restarts); or ``"goyal"``: Goyal et
            al.'s gradual warm-up (linear over ``warmup_epochs`` from ``learning_rate x
            256 / batch_size``) and divisions by 10 at 1/3, 2/3 and 8/9 of the steps.

    Example:
    >>> Recipe.paper(warmup_epochs=1).replace(epochs=2).learning_rate
    0.1
    >>> Recipe(learning_rate=0)
    Traceback (most recent call last):
    ...
    ValueError: learning_rate=0 is not allowed: a finite number in (0, inf).
    """

    # The command line's flags are these fields (--learning-rate ...), of their type and choices.
    optimizer: str = dataclasses.field(default="adam", metadata={"choices": OPTIMIZERS})
    learning_rate: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 1
    batch_size: int = 16
    warmup_epochs: int = 0
    schedule: str = dataclasses.field(default="step", metadata={"choices": SCHEDULES})

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            fail("optimizer", self.optimizer, f"one of {OPTIMIZERS}")
        check_number("learning_rate", self.learning_rate, 0, low_open=True)
        check_number("momentum", self.momentum, 0, 1, high_open=True)
        check_number("weight_decay", self.weight_decay, 0)
        check_int("epochs", self.epochs, 1, MAX_STEPS)
        check_int("batch_size", self.batch_size, 1, MAX_STEPS)
        check_int("warmup_epochs", self.warmup_epochs, 0, MAX_STEPS)
        if self.warmup_epochs >= self.epochs:
            fail("warmup_epochs", self.warmup_epochs, f"fewer than epochs={self.epochs}")
        if self.schedule not in SCHEDULES:
            fail("schedule", self.schedule, f"one of {SCHEDULES}")

    @classmethod
    def paper(cls, **overrides):
        """He et al. (2015), §4.2: SGD, momentum 0.9, weight decay 1e-4, learning rate 0.1
        divided by 10 at 50% and 75% of training, batches of 128, 164 epochs (64k steps on
        CIFAR-10); ``warmup_epochs=1`` for ResNet-110."""
        return cls(**{"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9,
                      "weight_decay": 1e-4, "epochs": 164, "batch_size": 128,
                      "schedule": "step", **overrides})

    @classmethod
    def goyal(cls, batch_size=8192, **overrides):
        """Goyal et al. (2017), ImageNet in one hour: SGD, momentum 0.9, weight decay 1e-4,
        90 epochs, the linear scaling rule ``0.1 x batch_size / 256`` (3.2 at 8,192), reached
        by a gradual warm-up over 5 epochs, divided by 10 at epochs 30, 60 and 80. Build the
        network with ``zero_init_last_bn=True`` as they do.

        Example:
        >>> Recipe.goyal().learning_rate, Recipe.goyal(batch_size=256).learning_rate
        (3.2, 0.1)
        """
        rate = 0.1 * batch_size / GOYAL_REFERENCE_BATCH
        return cls(**{"optimizer": "sgd", "learning_rate": rate, "momentum": 0.9,
                      "weight_decay": 1e-4, "epochs": 90, "batch_size": batch_size,
                      "warmup_epochs": 5, "schedule": "goyal", **overrides})

    @classmethod
    def named(cls, name, **overrides):
        """The recipe called ``name`` (one of `RECIPES`: ``"quick"``, the default; ``"paper"``;
        ``"goyal"``) with ``overrides``.

        Example:
        >>> Recipe.named("paper", epochs=2).epochs, Recipe.named("quick") == Recipe()
        (2, True)
        """
        check_choice("recipe", name, RECIPES)
        return {"quick": cls, "paper": cls.paper, "goyal": cls.goyal}[name](**_known(overrides))

    def decay_steps(self, steps_per_epoch):
        """The steps at which the learning rate is divided by 10: `STEP_BOUNDARIES` of all the
        steps for the ``"step"`` schedule, `GOYAL_BOUNDARIES` for ``"goyal"``, none for the
        others.

        Example:
        >>> Recipe(epochs=8).decay_steps(steps_per_epoch=124)
        [496, 744]
        >>> Recipe.goyal().decay_steps(steps_per_epoch=156)
        [4680, 9360, 12480]
        """
        total = self.epochs * steps_per_epoch
        fractions = {"step": STEP_BOUNDARIES, "goyal": GOYAL_BOUNDARIES}.get(self.schedule, ())
        return [round(f * total) for f in fractions]

    def gradual_warmup_start(self):
        """The rate Goyal et al.'s gradual warm-up rises from, the rate at batch 256, for
        ``"goyal"``; ``None`` for the other schedules (their warm-up is ``learning_rate / 10``).

        Example:
        >>> Recipe.goyal().gradual_warmup_start(), Recipe().gradual_warmup_start()
        (0.1, None)
        """
        if self.schedule != "goyal":
            return None
        return min(self.learning_rate, self.learning_rate * GOYAL_REFERENCE_BATCH / self.batch_size)

    def check_steps(self, examples):
        """Raises a `ValueError` naming the field unless a run over ``examples`` training
        images can go: a batch no larger than the images, at most `MAX_STEPS` steps in all.

        Example:
        >>> Recipe(batch_size=128).check_steps(64)
        Traceback (most recent call last):
        ...
        ValueError: batch_size=128 is not allowed: at most 64, the training images.
        """
        if self.batch_size > examples:
            fail("batch_size", self.batch_size, f"at most {examples:,}, the training images")
        steps_per_epoch = -(-examples // self.batch_size)
        if self.epochs * steps_per_epoch > MAX_STEPS:
            fail("epochs", self.epochs, f"at most {MAX_STEPS // steps_per_epoch:,}: "
                                        f"{MAX_STEPS:,} steps of {steps_per_epoch:,} an epoch")

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
            fail("recipe", data, "a dict of Recipe fields")
        return cls(**_known(data))

    @classmethod
    def coerce(cls, recipe=None, **fields):
        """A `Recipe` from ``None`` (the default), a `Recipe` or a dict, with ``fields`` changed."""
        if recipe is None:
            recipe = cls()
        elif isinstance(recipe, dict):
            recipe = cls.from_dict(recipe)
        elif not isinstance(recipe, cls):
            fail("recipe", recipe, "a Recipe, a dict of its fields or None")
        return recipe.replace(**fields) if fields else recipe


RECIPES = ("quick", "paper", "goyal")
"""The names of `Recipe.named`: the first minute's, He et al.'s and Goyal et al.'s."""
FIRST_MINUTE_SUBSET = 4096
"""Training digits of the embedded sample in a default run (the command line's and the
explorer's): with the default `Recipe` and `VALIDATION_SPLIT` the lecture's MNIST ResNet
trains for 40-55 s on 2 quiet CPU cores and reaches 90-94% on 1,000 held-out digits
(measured, seeds 0-2: PyTorch 91.4/94.4/90.9%, TensorFlow 91.5/90.6%, JAX 93.2/93.2%;
2,048 digits gave 79.6%)."""
VALIDATION_SPLIT = 0.1
"""The fraction of the training data held out by default (1,000 digits of the sample)."""


def default_subset(dataset):
    """The training images of ``dataset`` used when none is asked for: `FIRST_MINUTE_SUBSET`
    for the embedded sample, None (all) otherwise."""
    return FIRST_MINUTE_SUBSET if dataset == "mnist_sample" else None


def _known(fields):
    allowed = sorted(f.name for f in dataclasses.fields(Recipe))
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"recipe has unknown field(s) {unknown}; allowed fields are {allowed}.")
    return fields
