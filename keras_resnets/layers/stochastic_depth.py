"""Stochastic depth (Huang et al. 2016) and its per-sample form, "drop path"."""

import keras
from keras import ops

from keras_resnets.design.choices import DROP_MODES
from keras_resnets.design.validation import check_choice, check_probability


@keras.saving.register_keras_serializable(package="keras_resnets")
class StochasticDepth(keras.layers.Layer):
    """Keeps a residual branch with probability ``survival_probability`` while training.

    ``mode="batch"`` is the paper's rule: one Bernoulli draw per mini-batch keeps or drops the
    whole branch while training, and the branch is scaled by ``p`` at test time.
    ``mode="sample"`` is "drop path" (timm): one draw per example, kept branches rescaled by
    ``1 / p`` while training, identity at test time.

    Randomness comes from a `keras.random.SeedGenerator`, so a jit-compiled train step works.

    Applied to a tensor, a dropped branch is multiplied by zero: it was computed anyway. The
    residual blocks of this library use `draw` instead, and do not compute a dropped branch,
    so that a training step costs the expected depth, as in the paper.

    Args:
        survival_probability: ``p_l`` in (0, 1].
        mode: ``"batch"`` or ``"sample"``.
        seed: optional integer seed.

    Example:
    >>> layer = StochasticDepth(0.5)
    >>> x = keras.ops.ones((2, 3))
    >>> keras.ops.convert_to_numpy(layer(x, training=False)).tolist()
    [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
    """

    def __init__(self, survival_probability=0.5, mode="batch", seed=None, **kwargs):
        super().__init__(**kwargs)
        survival_probability = check_probability("survival_probability", survival_probability)
        check_choice("mode", mode, DROP_MODES)
        self.survival_probability = float(survival_probability)
        self.mode = mode
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        p = self.survival_probability
        if p == 1.0:
            return inputs
        if not training:
            return inputs * p if self.mode == "batch" else inputs
        if self.mode == "batch":
            return inputs * ops.cast(self.draw(), inputs.dtype)
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        keep = keras.random.uniform(shape, seed=self.seed_generator) < p
        return inputs * ops.cast(keep, inputs.dtype) / p

    def draw(self):
        """One training draw of ``mode="batch"``: a boolean scalar, True (keep) with
        probability ``survival_probability``. The residual blocks call it to skip a dropped
        branch's computation instead of multiplying it by zero."""
        return keras.random.uniform((), seed=self.seed_generator) < self.survival_probability

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "survival_probability": self.survival_probability,
            "mode": self.mode,
            "seed": self.seed,
        }
