"""The lecture's claims about why residual networks train, as runnable experiments.

Each experiment has a registry entry in `EXPERIMENTS` whose ``run(size="quick", seed=0,
progress=None)`` returns a `Result`: tidy data (a `pandas.DataFrame`), an Altair chart and
headline numbers. ``size="quick"`` takes about a minute on two CPU cores, ``"full"`` is the
real experiment, for a GPU. Every run is seeded and works on TensorFlow, JAX and PyTorch.

Example:
>>> from keras_resnets.experiments import EXPERIMENTS
>>> EXPERIMENTS["shattered_gradients"].title
'Shattered gradients and looks-linear initialisation'
"""

from keras_resnets.experiments import shattered
from keras_resnets.experiments._autodiff import input_gradient
from keras_resnets.experiments._common import Experiment, Result

EXPERIMENTS = {
    experiment.name: experiment
    for experiment in (
        shattered.EXPERIMENT,
    )
}

__all__ = ["EXPERIMENTS", "Experiment", "Result", "input_gradient", "shattered"]
