"""Run settings of the benchmark: Keras' defaults, and the fastest settings found per backend.

A setting is a plain dict (JSON, so it can travel to a worker process):

- ``env``: environment variables set before the backend is imported (``XLA_FLAGS``, ...).
  Every worker imports keras_resnets before Keras, as a user's script does: ``"default"``
  opts out of its fast CPU settings (Keras' defaults), ``"plain"`` takes what that import
  sets, ``"best"`` sets them explicitly, as the explorer's workers do; ``"plain-float32"`` is
  ``"plain"`` in float32 where keras_resnets' default would compute in bfloat16 (the
  precision default's "without" row).
- ``keras_first``: the worker imports Keras before keras_resnets (``"keras-first"``: a user's
  script in the other order, where keras_resnets is too late to set anything and warns).
- ``jit_compile``: passed to ``model.compile`` (``"auto"`` is Keras' default).
- ``steps_per_execution``: passed to ``model.compile`` (PyTorch only allows 1).
- ``data_format``: the image layout of the model and its data.
- ``threads``: intra-op threads (``None`` leaves the backend's default: one per core).

`BEST_CPU` and `BEST_GPU` hold the fastest settings found per backend: benchmarks/README.md
says why each one helps; benchmarks/RESULTS.md, written by the benchmark, has the numbers.
"""

import copy

from keras_resnets.runtime.environment import OPT_OUT, fast_cpu_variables
from keras_resnets.runtime.precision import VARIABLE as DTYPE_POLICY

DEFAULT = {
    "env": {OPT_OUT: "0"},
    "jit_compile": "auto",
    "steps_per_execution": 1,
    "data_format": "channels_last",
    "threads": None,
    "keras_first": False,
}

# What keras_resnets' worker processes set (keras_resnets.runtime.environment): oneDNN for TensorFlow,
# YNNPACK reductions for JAX, nothing for PyTorch. See README.md ("Where the time goes").
BEST_CPU = {backend: {"env": fast_cpu_variables(backend, environ={})}
            for backend in ("tensorflow", "jax", "torch")}

BEST_GPU = {
    "tensorflow": {"jit_compile": True},
    "jax": {},
    "torch": {"jit_compile": True},
}


NAMES = ("default", "plain", "plain-float32", "keras-first", "best")


def resolve(name, backend, device="cpu"):
    """The full setting called ``name`` (one of `NAMES`) for ``backend``."""
    setting = copy.deepcopy(DEFAULT)
    if name == "default":
        return setting
    if name not in NAMES:
        raise ValueError(f"settings={name!r} is not known; choose one of {NAMES}.")
    del setting["env"][OPT_OUT]
    if name == "plain-float32":
        setting["env"][DTYPE_POLICY] = "float32"
    if name in ("plain", "plain-float32", "keras-first"):
        setting["keras_first"] = name == "keras-first"
        return setting
    table = BEST_GPU if device == "gpu" else BEST_CPU
    for key, value in table.get(backend, {}).items():
        if key == "env":
            setting["env"].update(value)
        else:
            setting[key] = value
    return setting


def describe(setting):
    """A short human-readable summary of the non-default parts of ``setting``."""
    env = setting.get("env", {})
    parts = [f"{key}={value}" for key, value in env.items() if key != OPT_OUT]
    if setting.get("keras_first"):
        parts.append("Keras imported first: keras_resnets sets nothing")
    elif OPT_OUT not in env and not parts:
        parts.append("what import keras_resnets sets")
    for key in ("jit_compile", "steps_per_execution", "data_format", "threads"):
        if setting.get(key) != DEFAULT[key]:
            parts.append(f"{key}={setting[key]}")
    return ", ".join(parts) or "Keras defaults"
