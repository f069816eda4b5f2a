"""The dtype policy a model computes in: bfloat16 by default on CPUs with AMX or AVX-512 BF16
(TensorFlow with oneDNN, PyTorch), float32 elsewhere, and whatever the user chose; a mixed-precision model
has the lecture's parameters, float32 weights and logits, trains, and survives a `.keras`
round trip."""

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets import build_resnet
from keras_resnets.data.datasets import load_arrays, normalize
from keras_resnets.runtime import precision
from keras_resnets.runtime.precision import (
    VARIABLE,
    cpu_flags,
    default_dtype_policy,
    dtype_policy_scope,
)

BACKEND = keras.backend.backend()
AMX = {"avx512f", "amx_bf16"}


@pytest.mark.parametrize(("backend", "environ", "flags", "gpu", "expected"), [
    ("torch", {}, AMX, False, "mixed_bfloat16"),
    ("tensorflow", {}, AMX, False, "mixed_bfloat16"),
    ("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"}, AMX, False, "float32"),  # Eigen's bfloat16
    ("jax", {}, AMX, False, "float32"),  # XLA:CPU: no fast bfloat16 convolution
    ("torch", {}, {"avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),  # AMD EPYC: 1.5x measured
    ("tensorflow", {}, {"avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),
    ("torch", {}, {"avx512f", "avx512_vnni"}, False, "float32"),  # bfloat16 emulated: slower
    ("torch", {}, AMX, True, "float32"),  # a GPU: the user's choice
    ("torch", {"KERAS_RESNETS_FAST_CPU": "0"}, AMX, False, "float32"),
    ("torch", {VARIABLE: "float32"}, AMX, False, "float32"),
    ("jax", {VARIABLE: "mixed_bfloat16"}, set(), False, "mixed_bfloat16"),
])
def test_the_default_is_bfloat16_only_where_it_was_measured_faster(backend, environ, flags, gpu,
                                                                    expected):
    assert default_dtype_policy(backend, environ, flags, gpu) == expected


def test_a_global_policy_the_user_set_wins(monkeypatch):
    monkeypatch.delenv(VARIABLE)  # the suite's float32 pin (conftest), which would win
    with dtype_policy_scope("mixed_float16"):
        assert default_dtype_policy("torch", {}, AMX, False) == "mixed_float16"
        assert keras_resnets.mnist_resnet(nb_blocks=1).dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"


def test_a_wrong_policy_is_named_with_what_is_allowed():
    with pytest.raises(ValueError, match=f"{VARIABLE}='bfloat17'.*mixed_bfloat16"):
        default_dtype_policy("torch", {VARIABLE: "bfloat17"}, AMX, False)
    with pytest.raises(ValueError, match="dtype_policy='float64'"):
        keras_resnets.design.presets.mnist_resnet(dtype_policy="float64")


def test_cpu_flags_are_read_from_linux_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n\nflags : other\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "amx_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "missing") == frozenset()  # macOS, Windows: float32


def _on_an_amx_cpu(monkeypatch):
    """This process as on a CPU with AMX, without the suite's float32 pin (conftest); returns
    the default policy that calls for on this backend."""
    monkeypatch.delenv(VARIABLE)
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMX)
    monkeypatch.setattr(precision, "_uses_gpu", lambda backend: False)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    return "float32" if BACKEND == "jax" else "mixed_bfloat16"


def test_the_default_follows_this_process(monkeypatch):
    assert keras_resnets.mnist_resnet(nb_blocks=1).dtype_policy.name == "float32"  # the pin
    expected = _on_an_amx_cpu(monkeypatch)
    assert keras_resnets.mnist_resnet(nb_blocks=1).dtype_policy.name == expected
    assert keras_resnets.mnist_resnet(nb_blocks=1, dtype_policy="float32").dtype_policy.name == "float32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset())
    assert keras_resnets.mnist_resnet(nb_blocks=1).dtype_policy.name == "float32"


def test_the_experiments_measure_in_float32_on_every_machine(monkeypatch):
    from keras_resnets.experiments import depth, highway, shattered
    from keras_resnets.experiments._common import digit_architecture, resolve_size

    _on_an_amx_cpu(monkeypatch)
    models = [build_resnet(digit_architecture(resolve_size("tiny", depth.SIZES), 2)),
              build_resnet(highway.highway_architecture(resolve_size("tiny", highway.SIZES), 2)),
              shattered.resblock_resnet(2, 4)]
    assert {model.dtype_policy.name for model in models} == {"float32"}


def test_a_mixed_model_has_the_lectures_parameters_in_float32_and_float32_logits():
    model = keras_resnets.mnist_resnet(dtype_policy="mixed_bfloat16")
    assert keras_resnets.count_params(model)["trainable"] == 117802
    assert keras.config.dtype_policy().name == "float32"  # the scope restored it
    assert {w.dtype for w in model.weights} == {"float32"}
    layers = [layer for layer in model._flatten_layers(include_self=False) if layer.weights]
    assert {layer.dtype_policy.name for layer in layers if layer.name != "classifier"} == {
        "mixed_bfloat16"}
    assert model.get_layer("classifier").compute_dtype == "float32"
    logits = model(np.zeros((2, 28, 28, 1), "float32"))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def _fit(policy, x, y):
    keras.utils.set_random_seed(0)
    model = keras_resnets.mnist_resnet(nb_blocks=2, dtype_policy=policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, model.fit(x, y, batch_size=64, epochs=3, verbose=0).history


def test_a_bfloat16_model_learns_as_the_float32_one_and_round_trips_through_a_keras_file(tmp_path):
    (x, y), _, _ = load_arrays("mnist_sample")
    x, y = normalize(x[:512], data_format="channels_last"), y[:512]
    model, mixed = _fit("mixed_bfloat16", x, y)
    _, single = _fit("float32", x, y)
    assert mixed["loss"][-1] < 0.9 * mixed["loss"][0]
    np.testing.assert_allclose(mixed["loss"], single["loss"], atol=0.05)
    model.save(tmp_path / "mixed.keras")
    loaded = keras.saving.load_model(tmp_path / "mixed.keras")
    block = loaded.get_layer("stage1_block1")  # its sub-layers too, rebuilt outside the scope
    assert {layer.dtype_policy.name for layer in block._flatten_layers()} == {"mixed_bfloat16"}
    np.testing.assert_allclose(loaded.predict(x[:64], verbose=0), model.predict(x[:64], verbose=0),
                               rtol=1e-5, atol=1e-5)


TWO_STAGES = (keras_resnets.Stage(blocks=1, channels=16),
              keras_resnets.Stage(blocks=1, channels=32, strides=2))


@pytest.mark.parametrize("variant", [
    {"block": "bottleneck", "preactivation": True, "shortcut": "C", "stages": TWO_STAGES},
    {"shortcut": "A", "final_survival_probability": 0.5, "dropout": 0.2, "stages": TWO_STAGES},
    {"block": "highway", "residual": False},
    {"residual": False, "activation": "crelu", "looks_linear": True, "batch_norm": False},
])
def test_every_block_trains_in_mixed_precision(variant):
    model = build_resnet(dtype_policy="mixed_bfloat16", **variant)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((8, 28, 28, 1), "float32")
    assert np.isfinite(model.train_on_batch(x, np.arange(8)))
    logits = model.predict(x, verbose=0)
    assert logits.dtype == np.float32 and np.isfinite(logits).all()
