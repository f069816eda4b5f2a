"""The environment of a process that trains with a given Keras backend.

Some of the fastest CPU settings are environment variables that a backend reads once, when it
is imported (benchmarks/RESULTS.md measures each). `use_fast_cpu_settings` sets them in the
current process; ``import keras_resnets`` calls it, so a script that imports keras_resnets
before Keras, the command line, the explorer and the notebooks all get them. Where the backend
was imported first it is too late: a warning says so, once. The explorer's workers start with
`worker_environment`. A variable the user has set is kept as it is (``XLA_FLAGS``: only what
is missing is appended); ``KERAS_RESNETS_FAST_CPU=0`` leaves every backend at its defaults.

Example:
>>> env = worker_environment("tensorflow", {})
>>> env["KERAS_BACKEND"], env["TF_ENABLE_ONEDNN_OPTS"]
('tensorflow', '1')
"""

import contextlib
import importlib.metadata
import json
import os
import sys
import tempfile
import warnings

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
ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
TENSORFLOW_CPU = {ONEDNN: "1"}
# XLA:CPU (JAX): YNNPACK for reductions (batch-norm statistics, pooling); its convolutions
# are slower than XLA's own. An unknown flag aborts XLA, so only jaxlib versions that have it.
YNN_REDUCE = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE"
YNN_JAXLIB = (0, 10)
# Set to "0" by a user who wants the backends' own defaults (to compare, or oneDNN's numerics).
OPT_OUT = "KERAS_RESNETS_FAST_CPU"
# The backend's C++ start-up log (TensorFlow: CUDA probing, CPU features) is off.
QUIET_BACKEND = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# The modules whose import means the backend has read its settings already.
_BACKEND_MODULES = {"tensorflow": ("keras", "tensorflow"), "jax": ("keras", "jax")}
# What `use_fast_cpu_settings` changed in os.environ: variable -> (the user's value, ours).
_CHANGED = {}


def _jaxlib_version():
    try:
        return tuple(int(part) for part in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def fast_cpu_variables(backend, environ=None):
    """The environment variables that speed up training with ``backend`` on CPU, given the
    current ``environ`` (``os.environ`` by default): ``{}`` for PyTorch."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT) == "0":
        return {}
    if backend == "tensorflow":
        return {k: v for k, v in TENSORFLOW_CPU.items() if k not in environ}
    if backend == "jax":
        flags = environ.get("XLA_FLAGS", "")
        version = _jaxlib_version()
        if "ynn" not in flags and version is not None and version >= YNN_JAXLIB:
            return {"XLA_FLAGS": f"{flags} {YNN_REDUCE}".strip()}
    return {}


def user_environment():
    """``os.environ`` as the user set it: without what `use_fast_cpu_settings` changed (for
    this process' backend, which need not be a child process' one)."""
    environ = dict(os.environ)
    for key, (before, ours) in _CHANGED.items():
        if environ.get(key) == ours:
            environ.pop(key)
            environ.update({} if before is None else {key: before})
    return environ


def core_share(workers, environ=None):
    """``{"OMP_NUM_THREADS": ...}`` giving each of ``workers`` processes that train at once its
    share of the cores (at least one thread), or ``{}`` for a process alone or where the user set
    the variable. PyTorch's OpenMP threads spin at every barrier: on 2 cores beside one busy
    core, a PyTorch training example took 14.4 s with 2 threads and 7.1 s with 1.

    >>> core_share(3, {"OMP_NUM_THREADS": "4"}), core_share(1, {})
    ({}, {})
    """
    environ = os.environ if environ is None else environ
    if workers <= 1 or "OMP_NUM_THREADS" in environ:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}


def worker_environment(backend, environ=None, workers=1):
    """A copy of ``environ`` (by default `user_environment`) for a worker process training
    with ``backend``, one of ``workers`` that train at once: ``KERAS_BACKEND`` set, the
    backend's log noise off, output unbuffered, `fast_cpu_variables` and `core_share`."""
    environ = dict(user_environment() if environ is None else environ)
    return {**environ, "KERAS_BACKEND": backend, **QUIET_BACKEND, "PYTHONUNBUFFERED": "1",
            **fast_cpu_variables(backend, environ), **core_share(workers, environ)}


def configured_backend(environ=None):
    """The backend Keras will pick, without importing it: ``KERAS_BACKEND``, else the
    ``backend`` of ``keras.json`` in ``KERAS_HOME`` (default ``~/.keras``), else TensorFlow.

    >>> configured_backend({"KERAS_BACKEND": "jax"})
    'jax'
    """
    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    home = environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as file:
            return json.load(file).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def use_fast_cpu_settings(environ=None, modules=None):
    """Sets `fast_cpu_variables` of the `configured_backend` in ``environ`` (``os.environ``)
    and returns them; if ``modules`` (``sys.modules``) shows the backend imported already,
    sets nothing and warns how to get them.

    >>> use_fast_cpu_settings({"KERAS_BACKEND": "torch"}, modules={})
    {}
    """
    record = environ is None
    environ = os.environ if environ is None else environ
    modules = sys.modules if modules is None else modules
    backend = configured_backend(environ)
    variables = fast_cpu_variables(backend, environ)
    if not variables:
        return {}
    if any(name in modules for name in _BACKEND_MODULES.get(backend, ())):
        advice = " ".join(f"{key}='{value}'" for key, value in variables.items())
        warnings.warn(f"keras_resnets was imported after {backend}, too late for its fastest "
                      f"CPU settings; import keras_resnets first, or set {advice}", stacklevel=3)
        return {}
    if record:
        _CHANGED.update({key: (environ.get(key), value) for key, value in variables.items()})
    environ.update(variables)
    return variables


@contextlib.contextmanager
def quiet_backend_start():
    """Hides what the process writes to its standard error (file descriptor 2, where a
    backend's C++ libraries log while they load) inside the block; shows it if the block fails.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
