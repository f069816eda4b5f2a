"""Run settings of the benchmark: Keras' defaults, and the fastest settings found per backend.

A setting is a plain dict (JSON, so it can travel to a worker process):

- ``env``: environment variables set before the backend is imported (``XLA_FLAGS``, ...).
- ``jit_compile``: passed to ``model.compile`` (``"auto"`` is Keras' default).
- ``steps_per_execution``: passed to ``model.compile`` (PyTorch only allows 1).
- ``data_format``: the image layout of the model and its data.
- ``threads``: intra-op threads (``None`` leaves the backend's default: one per core).

`BEST_CPU` and `BEST_GPU` hold the fastest settings found per backend: benchmarks/README.md
says why each one helps; benchmarks/RESULTS.md, written by the benchmark, has the numbers.
"""

import copy

DEFAULT = {
    "env": {},
    "jit_compile": "auto",
    "steps_per_execution": 1,
    "data_format": "channels_last",
    "threads": None,
}

# XLA:CPU (JAX): YNNPACK for reductions only (its weight-gradient convolutions are slower than
# XLA's own), and no loop fusion: XLA:CPU duplicates each block's elementwise tail into every
# consumer, recursively along the residual stream, so fused work grows with depth squared.
# See README.md ("Where the time goes").
YNN_REDUCE_ONLY = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE"
XLA_CPU_FLAGS = "--xla_disable_hlo_passes=fusion " + YNN_REDUCE_ONLY

BEST_CPU = {
    # oneDNN convolutions: TensorFlow enables them by default only on CPUs with AVX-512.
    "tensorflow": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    "jax": {"env": {"XLA_FLAGS": XLA_CPU_FLAGS}},
    # Keras' defaults (eager, channels_last, a thread per core) measured fastest.
    "torch": {},
}

BEST_GPU = {
    "tensorflow": {"jit_compile": True},
    "jax": {},
    "torch": {"jit_compile": True},
}


def resolve(name, backend, device="cpu"):
    """The full setting called ``name`` (``"default"`` or ``"best"``) for ``backend``."""
    setting = copy.deepcopy(DEFAULT)
    if name == "default":
        return setting
    if name != "best":
        raise ValueError(f"settings={name!r} is not known; choose 'default' or 'best'.")
    table = BEST_GPU if device == "gpu" else BEST_CPU
    for key, value in table.get(backend, {}).items():
        if key == "env":
            setting["env"].update(value)
        else:
            setting[key] = value
    return setting


def describe(setting):
    """A short human-readable summary of the non-default parts of ``setting``."""
    parts = []
    for key, value in setting.get("env", {}).items():
        parts.append(f"{key}={value}")
    for key in ("jit_compile", "steps_per_execution", "data_format", "threads"):
        if setting.get(key) != DEFAULT[key]:
            parts.append(f"{key}={setting[key]}")
    return ", ".join(parts) or "Keras defaults"
