"""The lecture's claims about why residual networks train, as runnable experiments.

Each experiment has a registry entry in `EXPERIMENTS` whose ``run(size="quick", seed=0,
progress=None)`` returns a `Result`: tidy data (a `pandas.DataFrame`), an Altair chart and
headline numbers. ``size="quick"`` takes a minute or two on two CPU cores, ``"full"`` is
the real experiment, for a GPU; each module's ``SIZES`` and ``Config`` say what they are,
and ``run`` also takes a ``Config``. Every run is seeded and works on TensorFlow, JAX and
PyTorch; `input_gradient` is the one place that differentiates with a backend's autodiff.

Example:
>>> from keras_resnets.experiments import EXPERIMENTS
>>> list(EXPERIMENTS)[:3]
['plain_vs_residual', 'shattered_gradients', 'looks_linear']
>>> result = EXPERIMENTS["shattered_gradients"].run(size="tiny")
>>> result.summary["lag1_1_layer"] > result.summary["lag1_24_layer"]
True
"""

from keras_resnets.experiments import (
    depth,
    ensembles,
    gradient_norms,
    highway,
    looks_linear,
    shattered,
    stochastic_depth,
)
from keras_resnets.experiments._autodiff import input_gradient
from keras_resnets.experiments._common import SIZE_NAMES, Experiment, Result

EXPERIMENTS = {
    module.EXPERIMENT.name: module.EXPERIMENT
    for module in (depth, shattered, looks_linear, ensembles, stochastic_depth, highway,
                   gradient_norms)
}

__all__ = [
    "EXPERIMENTS",
    "SIZE_NAMES",
    "Experiment",
    "Result",
    "depth",
    "ensembles",
    "gradient_norms",
    "highway",
    "input_gradient",
    "looks_linear",
    "shattered",
    "stochastic_depth",
]
