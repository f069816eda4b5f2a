"""Training: a `Recipe` (how to train, as data), a `TrainingRequest` (what one run trains:
architecture, data, recipe, seed, devices and processes), the one training loop that records a run
(`train`, `resume`) on the epoch loop the experiments share (`fit_epochs`), its subscribers
(`Callback`, `ProgressBar`), Ctrl-C and SIGTERM (`interrupts`, the one signal handler) and
the engines for several devices (`distribution`).

The names load on first use (PEP 562): ``recipe`` and ``choices`` need no Keras, so the
command line imports them before a backend starts.

Example:
>>> from keras_resnets.training import Recipe
>>> Recipe.paper(epochs=160).learning_rate
0.1
"""

import importlib

# Public name -> the module of this package that defines it.
_EXPORTS = {
    "Callback": "callbacks", "ProgressBar": "callbacks", "format_epoch": "callbacks",
    "check_distribution": "distribution", "distribution_scope": "distribution",
    "scaled_learning_rate": "distribution", "fit_epochs": "epochs",
    "deferred_interrupts": "interrupts", "stop_on_sigterm": "interrupts",
    "check_data": "loop", "check_train": "loop", "check_fits": "loop", "open_run": "loop",
    "resume": "loop",
    "train": "loop", "compile_model": "optimization", "make_schedule": "optimization",
    "StepSchedule": "optimization", "CosineSchedule": "optimization",
    "FIRST_MINUTE_SUBSET": "recipe", "Recipe": "recipe", "VALIDATION_SPLIT": "recipe",
    "default_subset": "recipe", "RECIPES": "recipe", "TrainingRequest": "request",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
