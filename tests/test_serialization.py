"""get_config/from_config, `.keras` round trips loaded with ``safe_mode=True``, and weights
saved on one backend loaded on the others."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets import LooksLinear, Stage, Stem, build_resnet, presets
from keras_resnets.layers import (
    BottleneckBlock,
    CReLU,
    DenseResBlock,
    HighwayConv2D,
    HighwayDense,
    PreActBottleneckBlock,
    PreActResBlock,
    ResBlock,
    Shortcut,
    StochasticDepth,
)

BACKEND = keras.backend.backend()
IMAGE = (8, 8, 4)
VECTOR = (6,)

LAYERS = {
    "ResBlock": (lambda: ResBlock(4, 3, 2, shortcut="C", survival_probability=0.8, drop_mode="sample",
                                  activation="elu", use_bias=True, zero_init_last_bn=True, bn_momentum=0.99,
                                  kernel_initializer="glorot_uniform", seed=3), IMAGE),
    "ResBlock_crelu_ll": (lambda: ResBlock(4, residual=False, activation="crelu",
                                           kernel_initializer=LooksLinear()), IMAGE),
    "BottleneckBlock": (lambda: BottleneckBlock(2, strides=2, expansion=2, shortcut="B"), IMAGE),
    "PreActResBlock": (lambda: PreActResBlock(4, preactivate=False, shortcut="A"), IMAGE),
    "PreActBottleneckBlock": (lambda: PreActBottleneckBlock(1, strides=2, survival_probability=0.5), IMAGE),
    "DenseResBlock": (lambda: DenseResBlock(8, shortcut="A", batch_norm=False), VECTOR),
    "Shortcut_A": (lambda: Shortcut("A", 8, 2), IMAGE),
    "Shortcut_B": (lambda: Shortcut("B", 8, 2, batch_norm=False), IMAGE),
    "HighwayDense": (lambda: HighwayDense(activation="tanh", transform_gate_bias=-1.5), VECTOR),
    "HighwayConv2D": (lambda: HighwayConv2D(5, batch_norm=True, residual=True), IMAGE),
    "StochasticDepth": (lambda: StochasticDepth(0.6, "batch", seed=5), IMAGE),
    "CReLU": (lambda: CReLU(axis=-1), IMAGE),
}


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_get_config_from_config_round_trip(name):
    layer = LAYERS[name][0]()
    config = layer.get_config()
    json.dumps(config)  # plain data
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == config


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_keras_file_round_trip_in_safe_mode(name, tmp_path, rng, run):
    make, shape = LAYERS[name]
    inputs = keras.Input(shape)
    model = keras.Model(inputs, make()(inputs))
    x = rng.standard_normal((2,) + shape).astype("float32")
    expected = run(model.layers[1], x)
    model.save(tmp_path / "layer.keras")
    loaded = keras.saving.load_model(tmp_path / "layer.keras", safe_mode=True)
    assert type(loaded.layers[1]) is type(model.layers[1])
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    np.testing.assert_array_equal(run(loaded.layers[1], x), expected)
    original = _weights(model)
    assert set(_weights(loaded)) == set(original)
    for path, value in _weights(loaded).items():
        np.testing.assert_array_equal(value, original[path])


def test_looks_linear_serialises():
    init = LooksLinear(base="glorot_uniform", seed=4)
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, LooksLinear)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again((4, 3))),
                                  keras.ops.convert_to_numpy(init((4, 3))))


SMALL = {"input_shape": (8, 8, 3), "stem": Stem(filters=4), "stages": (Stage(1, 4), Stage(1, 8, 2))}

MODELS = {
    "mnist": lambda: keras_resnets.mnist_resnet(4, 3, 2, input_shape=(8, 8, 1)),
    "cifar20": lambda: keras_resnets.cifar_resnet(20, input_shape=(8, 8, 3)),
    "preactivation": lambda: keras_resnets.cifar_resnet(8, **SMALL, preactivation=True, shortcut="B"),
    "bottleneck": lambda: build_resnet(presets.cifar_resnet(
        8, input_shape=(8, 8, 3), block="bottleneck", shortcut="C", stem=Stem(filters=4),
        stages=(Stage(1, 1), Stage(1, 2, 2)),
    )),
    "highway": lambda: keras_resnets.highway_net(2, 8, input_shape=(8, 8, 1)),
    "crelu_ll": lambda: keras_resnets.crelu_net(2, 4, input_shape=(8, 8, 1)),
    "stochastic_depth": lambda: keras_resnets.cifar_resnet(8, **SMALL, final_survival_probability=0.5, seed=1),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_keras_file_round_trip_in_safe_mode(name, tmp_path, rng):
    model = MODELS[name]()
    x = rng.standard_normal((2,) + model.input_shape[1:]).astype("float32")
    model(x, training=True)  # move the batch-norm statistics away from their initial values
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]


# -- weights across backends ----------------------------------------------------------------------

CROSS_ARCH = presets.cifar_resnet(
    8, input_shape=(8, 8, 3), shortcut="B", stem=Stem(filters=8), stages=(Stage(1, 8), Stage(1, 16, 2)),
    final_survival_probability=0.8, name="cross_backend",
)

SAVE_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from keras_resnets import Architecture, build_resnet

    out = sys.argv[1]
    keras.utils.set_random_seed(0)
    model = build_resnet(Architecture.from_json(open(f"{out}/arch.json").read()))
    rng = np.random.default_rng(0)
    for v in model.non_trainable_weights:  # batch-norm statistics away from 0 and 1
        low, high = (0.5, 1.5) if v.path.endswith("variance") else (-0.2, 0.2)
        v.assign(rng.uniform(low, high, v.shape).astype("float32"))
    model.save_weights(f"{out}/model.weights.h5")
    np.save(f"{out}/y.npy", model.predict(np.load(f"{out}/x.npy"), verbose=0))
    """
)


@pytest.mark.slow
def test_weights_saved_on_the_other_backends_load_here(tmp_path, rng):
    """Each other backend builds the model, saves its weights and outputs; this process loads
    each file and must reproduce that backend's outputs (float32, 1e-4)."""
    (tmp_path / "save.py").write_text(SAVE_SCRIPT)
    x = rng.standard_normal((4, 8, 8, 3)).astype("float32")
    others = [b for b in ("tensorflow", "jax", "torch") if b != BACKEND]
    runs = {}
    for other in others:
        out = tmp_path / other
        out.mkdir()
        (out / "arch.json").write_text(CROSS_ARCH.to_json())
        np.save(out / "x.npy", x)
        # On CPU: two more processes must not grab a GPU this one may hold.
        env = {**os.environ, "KERAS_BACKEND": other, "TF_CPP_MIN_LOG_LEVEL": "3",
               "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
        runs[other] = subprocess.Popen(
            [sys.executable, str(tmp_path / "save.py"), str(out)], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
    for other, proc in runs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{other}:\n{output[-3000:]}"
    for other in others:
        model = build_resnet(CROSS_ARCH)
        before = model.predict(x, verbose=0)
        model.load_weights(tmp_path / other / "model.weights.h5")
        expected = np.load(tmp_path / other / "y.npy")
        assert np.abs(before - expected).max() > 1e-3  # the file, not chance, makes them agree
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4,
                                   err_msg=f"weights saved by {other}")
