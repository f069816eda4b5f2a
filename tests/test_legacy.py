"""Files an earlier version wrote (tests/data/legacy, made by its make.py at the commit in
VERSION) still load, on every backend, to the same numbers."""

import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_resnets import Architecture, RunStore, build_resnet, count_params

LEGACY = Path(__file__).parent / "data" / "legacy"
OUTPUTS = np.load(LEGACY / "outputs.npz")
MODELS = sorted(p.name for p in LEGACY.glob("*.keras"))


def test_the_fixture_is_complete():
    assert len(MODELS) == 5
    assert (LEGACY / "VERSION").read_text().strip()


@pytest.mark.parametrize("name", MODELS)
def test_keras_file_loads_to_the_same_outputs(name, run):
    model = keras.saving.load_model(LEGACY / name)  # safe_mode: no Lambda, all registered
    y = run(model, OUTPUTS[f"{name}.input"])
    np.testing.assert_allclose(y, OUTPUTS[f"{name}.output"], rtol=1e-4, atol=1e-5)


@pytest.fixture
def legacy_store(tmp_path):
    shutil.copytree(LEGACY / "runs", tmp_path / "runs")
    return RunStore(tmp_path / "runs")


def test_run_store_reads(legacy_store):
    (run,) = legacy_store.list()
    assert run.id == "legacy-run"
    assert run.status["state"] == "completed"
    epochs = [e for e in run.metrics() if e.get("event") == "epoch"]
    assert len(epochs) == 1 and np.isfinite(epochs[0]["loss"])
    arch = Architecture.from_dict(run.config["architecture"])
    assert arch.num_blocks == 2


def test_run_checkpoint_and_model_agree(legacy_store, run):
    stored = legacy_store.get("legacy-run")
    trained = stored.load_model()
    rebuilt = build_resnet(Architecture.from_dict(stored.config["architecture"]))
    rebuilt.load_weights(stored.checkpoint_path)
    assert count_params(rebuilt) == count_params(trained)
    x = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(run(rebuilt, x), run(trained, x), rtol=1e-4, atol=1e-5)


def test_a_bare_import_registers_the_layers_for_load_model():
    """``import keras_resnets`` alone lets Keras load our models (a fresh process: nothing else
    has imported the layers)."""
    code = ("import sys, keras_resnets, keras; "
            "print(keras.saving.load_model(sys.argv[1]).count_params())")
    proc = subprocess.run([sys.executable, "-c", code, str(LEGACY / "highway.keras")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0
