"""Fixtures shared by the test suite. Every test file runs once per ``KERAS_BACKEND``."""

import os
import weakref
from types import MappingProxyType, SimpleNamespace

# The environment a user's process starts with: a child that trains as a user's would (the
# command line, the explorer's server) gets it through the `user_environment` fixture, without
# the two settings below, which are for this process only.
USER_ENVIRONMENT = dict(os.environ)

# JAX compiles each random initialiser anew for every weight shape, and on CPU XLA's
# optimisation passes make that take seconds per shape. The suite builds many small models,
# so it skips those passes (about 5x faster builds) unless XLA_FLAGS is already set. This must
# happen before JAX starts its backend, hence here, before anything imports Keras. Compiled
# that way, the lecture's network trains 2.6x slower.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

# TensorFlow without oneDNN (2.2x slower training of the lecture's network). The looks-linear
# CReLU network of test_experiments is linear, but its batch norms see a one-dimensional signal
# and amplify float32 rounding about sixfold per layer, so over 24 layers its input gradient is
# set by rounding on every backend. It comes out constant only where every row of the batch
# gets the same arithmetic; oneDNN computes the last rows of a batch with another kernel, and
# their gradient differs (lag-1 autocorrelation 0.5 instead of 1).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# Models compute in float32 in this process, on every CPU: the suite compares them with the
# lecture's PyTorch code and with exact properties at float32 tolerances. On CPUs with AMX or
# AVX-512 BF16 the default would be bfloat16; test_precision checks that choice, and bfloat16 training.
os.environ.setdefault("KERAS_RESNETS_DTYPE_POLICY", "float32")

# Before Keras, as a user's script would: the suite runs with the settings users get.
import keras_resnets  # noqa: E402, F401  isort: skip
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()


@pytest.fixture(params=["channels_last", "channels_first"])
def data_format(request):
    """Runs a test under each image data format (``keras.config.set_image_data_format``)."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format(request.param)
    yield request.param
    keras.config.set_image_data_format(previous)


@pytest.fixture(scope="session")
def user_environment():
    """The environment a user's process starts with (`USER_ENVIRONMENT`, read-only), with this
    pass's ``KERAS_BACKEND``: a child process given it runs with keras_resnets' own settings."""
    return MappingProxyType({**USER_ENVIRONMENT, "KERAS_BACKEND": BACKEND,
                             "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _uses_channels_first(layer):
    return any(
        getattr(sub, "data_format", None) == "channels_first"
        for sub in layer._flatten_layers(include_self=True, recursive=True)
    )


_JAX_CALLS = weakref.WeakKeyDictionary()


def _jax_model_call(model, x, training):
    """A jitted stateless call (as `Model.predict` does); the state is written back."""
    import jax

    calls = _JAX_CALLS.setdefault(model, {})
    if training not in calls:
        # A weak reference: a function that held the model would keep its own key (and the
        # model, with its compiled code) alive in the weak dictionary for the whole session.
        model_ref = weakref.ref(model)
        calls[training] = jax.jit(
            lambda trainable, non_trainable, t: model_ref().stateless_call(
                trainable, non_trainable, t, training=training
            )
        )
    y, state = calls[training](
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        x,
    )
    for variable, value in zip(model.non_trainable_variables, state):
        variable.assign(value)  # moving statistics, seed generator states
    return y


def _run(layer, x, training=False):
    """``layer(x, training=training)`` as a NumPy array (or a structure of them, for a model
    with several outputs), building the layer first if needed.

    On JAX a whole model is compiled at once: compiling each eager op for every new shape
    costs more. TensorFlow has no channels_first convolution on CPU; there the call is
    XLA-compiled.
    """
    x = keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))
    if not layer.built:
        layer(keras.KerasTensor(tuple(x.shape)))
    if BACKEND == "jax" and isinstance(layer, keras.Model):
        y = _jax_model_call(layer, x, training)
    elif BACKEND == "tensorflow" and _uses_channels_first(layer):
        import tensorflow as tf

        y = tf.function(lambda t: layer(t, training=training), jit_compile=True)(x)
    else:
        y = layer(x, training=training)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, y)


@pytest.fixture
def run():
    """``run(layer, x, training=False)``: a layer's or model's output as NumPy, on any backend."""
    return _run


# -- PyTorch reference models: random weights, and their values under Keras variable paths --------


def _randomise_torch(module, seed=0):
    """Random weights and batch-norm statistics (so nothing is a no-op); eval mode."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.3)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module.eval()


def _copy_torch_weights(module, layer, rename):
    """Copies ``module``'s weights into ``layer`` (a Keras layer or model).

    Conv kernels go from (out, in, kh, kw) to (kh, kw, in, out), linear ones are transposed and
    batch norms map to gamma/beta/moving_mean/moving_variance. ``rename(torch_name)`` gives the
    Keras path of each torch module; every Keras weight must be assigned exactly once.
    """
    from torch import nn

    strip = not isinstance(layer, keras.Model)  # a layer's paths start with its own name
    variables = {(v.path.split("/", 1)[1] if strip else v.path): v for v in layer.weights}
    assigned = set()

    def put(path, value):
        variables[path].assign(value.detach().numpy().astype("float32"))
        assigned.add(path)

    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = m.weight.permute(2, 3, 1, 0) if isinstance(m, nn.Conv2d) else m.weight.T
            put(f"{rename(name)}/kernel", weight)
            if m.bias is not None:
                put(f"{rename(name)}/bias", m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            for leaf, value in (("gamma", m.weight), ("beta", m.bias),
                                ("moving_mean", m.running_mean), ("moving_variance", m.running_var)):
                put(f"{rename(name)}/{leaf}", value)
    assert assigned == set(variables), sorted(set(variables) - assigned)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An empty run store (``KERAS_RESNETS_RUNS_DIR``): the explorer's tests use one each."""
    path = tmp_path / "runs"
    monkeypatch.setenv("KERAS_RESNETS_RUNS_DIR", str(path))
    return path


@pytest.fixture
def torch_port():
    """``torch_port.randomise(module)`` and ``torch_port.copy(module, keras_layer, rename)``."""
    return SimpleNamespace(randomise=_randomise_torch, copy=_copy_torch_weights)
