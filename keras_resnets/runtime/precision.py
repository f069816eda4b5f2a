"""The dtype policy a model computes in when its architecture names none.

On a CPU with bfloat16 dot products in hardware (AMX, Intel's matrix units since Sapphire
Rapids; or AVX-512 BF16, as on AMD EPYC since Zen 4), TensorFlow with oneDNN and PyTorch train
the lecture's network about 1.5x faster per step in bfloat16 with float32 weights (Keras'
``"mixed_bfloat16"``), and it reaches 98% held-out accuracy within the same steps as in
float32: on AMX 1.44x (TensorFlow) and 1.54x (PyTorch) the speed of the lecture's PyTorch
code to 98%, against 1.01x and 1.03x in float32; on AVX-512 BF16 about 1.5x per training step
on both (benchmarks/RESULTS.md). There it is the default. Everywhere else the default is
float32: JAX (XLA:CPU has no fast bfloat16 convolution), a GPU (where ``"mixed_float16"`` or
``"mixed_bfloat16"`` is yours to choose), and CPUs without either, where bfloat16 is emulated
and slower than float32.

What a user chose always wins: an architecture's ``dtype_policy``, then the environment
variable ``KERAS_RESNETS_DTYPE_POLICY``, then a global policy other than float32
(``keras.config.set_dtype_policy``); ``KERAS_RESNETS_FAST_CPU=0`` keeps float32.

Example:
>>> default_dtype_policy("torch", environ={}, flags={"amx_bf16"}, gpu=False)
'mixed_bfloat16'
>>> default_dtype_policy("jax", environ={}, flags={"amx_bf16"}, gpu=False)
'float32'
>>> default_dtype_policy("torch", environ={"KERAS_RESNETS_DTYPE_POLICY": "float32"},
...                      flags={"amx_bf16"}, gpu=False)
'float32'
"""

import contextlib
import os

import keras

from keras_resnets.design.choices import DTYPE_POLICIES
from keras_resnets.design.validation import check_choice
from keras_resnets.runtime.environment import ONEDNN, OPT_OUT

VARIABLE = "KERAS_RESNETS_DTYPE_POLICY"
"""The environment variable that names the default policy, one of `DTYPE_POLICIES`."""

BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""The CPU flags (``/proc/cpuinfo``) of bfloat16 dot products in hardware: AMX's matrix
products, AVX-512's ``vdpbf16ps``."""


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags as Linux lists them; empty where it does not (macOS, Windows)."""
    try:
        with open(path) as file:
            for line in file:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _uses_gpu(backend):
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _onednn(backend, environ):
    """Whether ``backend``'s CPU convolutions run on oneDNN (its bfloat16 kernels use AMX or
    AVX-512 BF16)."""
    return backend == "torch" or (backend == "tensorflow" and environ.get(ONEDNN) != "0")


def default_dtype_policy(backend=None, environ=None, flags=None, gpu=None):
    """The name of the policy of a model whose architecture names none (see the module's
    docstring); ``backend`` (Keras'), ``environ`` (``os.environ``), ``flags`` (`cpu_flags`)
    and ``gpu`` (whether the backend sees one) describe the process."""
    environ = os.environ if environ is None else environ
    if environ.get(VARIABLE):
        return check_choice(VARIABLE, environ[VARIABLE], DTYPE_POLICIES[1:])
    current = keras.config.dtype_policy().name
    backend = backend or keras.backend.backend()
    faster = (current == "float32" and environ.get(OPT_OUT) != "0" and _onednn(backend, environ)
              and BF16_FLAGS & (cpu_flags() if flags is None else flags)
              and not (_uses_gpu(backend) if gpu is None else gpu))
    return "mixed_bfloat16" if faster else current


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Layers made inside the block compute in policy ``name`` (``None``:
    `default_dtype_policy`); Keras' global policy is restored after it.

    Example:
    >>> with dtype_policy_scope("mixed_bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.dtype_policy.name, keras.config.dtype_policy().name
    ('mixed_bfloat16', 'float32')
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name or default_dtype_policy())
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
