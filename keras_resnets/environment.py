"""The environment of a worker process that trains with a given Keras backend.

Some of the fastest CPU settings are environment variables that a backend reads once, when it
is imported; so they cannot be switched on inside a running process, only given to a new one.
The explorer's training and experiment workers start with them (benchmarks/RESULTS.md
measures each); a variable already set in the parent's environment is kept as it is.

Example:
>>> env = worker_environment("tensorflow", {})
>>> env["KERAS_BACKEND"], env["TF_ENABLE_ONEDNN_OPTS"]
('tensorflow', '1')
"""

import importlib.metadata
import os

KERAS_BACKENDS = ("jax", "numpy", "openvino", "tensorflow", "torch")
"""The values Keras accepts for ``KERAS_BACKEND``."""


def check_backend(environ=None):
    """Raises a `ValueError` naming ``KERAS_BACKEND`` if it is set to a backend Keras lacks.

    Example:
    >>> check_backend({"KERAS_BACKEND": "bogus"})
    Traceback (most recent call last):
    ...
    ValueError: KERAS_BACKEND='bogus' is not allowed: one of ('jax', 'numpy', 'openvino', 'tensorflow', 'torch').
    """
    backend = (os.environ if environ is None else environ).get("KERAS_BACKEND")
    if backend is not None and backend not in KERAS_BACKENDS:
        raise ValueError(f"KERAS_BACKEND={backend!r} is not allowed: one of {KERAS_BACKENDS}.")


# oneDNN convolutions: TensorFlow enables them by default only on CPUs with AVX-512.
TENSORFLOW_CPU = {"TF_ENABLE_ONEDNN_OPTS": "1"}
# XLA:CPU (JAX): YNNPACK for reductions (batch-norm statistics, pooling); its convolutions
# are slower than XLA's own. An unknown flag aborts XLA, so only jaxlib versions that have it.
YNN_REDUCE = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE"
YNN_JAXLIB = (0, 10)


def _jaxlib_version():
    try:
        return tuple(int(part) for part in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def fast_cpu_variables(backend, environ=None):
    """The environment variables that speed up training with ``backend`` on CPU, given the
    current ``environ`` (``os.environ`` by default): ``{}`` for PyTorch."""
    environ = os.environ if environ is None else environ
    if backend == "tensorflow":
        return {k: v for k, v in TENSORFLOW_CPU.items() if k not in environ}
    if backend == "jax":
        flags = environ.get("XLA_FLAGS", "")
        version = _jaxlib_version()
        if "ynn" not in flags and version is not None and version >= YNN_JAXLIB:
            return {"XLA_FLAGS": f"{flags} {YNN_REDUCE}".strip()}
    return {}


def worker_environment(backend, environ=None):
    """A copy of ``environ`` (``os.environ`` by default) for a worker process training with
    ``backend``: ``KERAS_BACKEND`` set, the backend's log noise off, output unbuffered, and
    `fast_cpu_variables`."""
    environ = dict(os.environ if environ is None else environ)
    return {**environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONUNBUFFERED": "1", **fast_cpu_variables(backend, environ)}
