"""Files that earlier versions wrote (tests/data/legacy/<commit>/, made by make.py at that
commit) still load, on every backend, to the same numbers."""

import io
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from keras_resnets import Architecture, RunStore, build_resnet, count_params
from keras_resnets.training import TrainingRequest

LEGACY = Path(__file__).parent / "data" / "legacy"
VERSIONS = sorted(p.name for p in LEGACY.iterdir() if (p / "VERSION").exists())
MODELS = [(v, p.name) for v in VERSIONS for p in sorted((LEGACY / v).glob("*.keras"))]


def test_the_fixtures_are_complete():
    assert VERSIONS == ["49f275a", "f26a99c"]
    for version in VERSIONS:
        assert (LEGACY / version / "VERSION").read_text().strip() == version
    assert len([m for m in MODELS if m[0] == "f26a99c"]) == 5
    assert len([m for m in MODELS if m[0] == "49f275a"]) == 8  # every block kind and option


@pytest.mark.parametrize(("version", "name"), MODELS)
def test_keras_file_loads_to_the_same_outputs(version, name, run):
    outputs = np.load(LEGACY / version / "outputs.npz")
    model = keras.saving.load_model(LEGACY / version / name)  # safe_mode: no Lambda, all registered
    y = run(model, outputs[f"{name}.input"])
    np.testing.assert_allclose(y, outputs[f"{name}.output"], rtol=1e-4, atol=1e-5)


def _block_arrays(weights_h5):
    """``{block: sorted bytes of its arrays}`` of a ``model.weights.h5``, blocks being the
    top-level layers with sub-layers (their paths are what changed)."""
    blocks = {}

    def visit(path, item):
        parts = path.split("/")
        if isinstance(item, h5py.Dataset) and parts[0] == "layers" and len(parts) > 4:
            blocks.setdefault(parts[1], []).append(item[()].tobytes())

    with h5py.File(weights_h5, "r") as f:
        f.visititems(visit)
    return {block: sorted(arrays) for block, arrays in blocks.items()}


def _weights_of(keras_file):
    return io.BytesIO(zipfile.ZipFile(keras_file).read("model.weights.h5"))


@pytest.mark.parametrize(("version", "name"), MODELS)
def test_block_weights_load_from_their_earlier_paths_bit_for_bit(version, name, tmp_path):
    """Blocks keep their sub-layers as attributes now (``conv1``, ``bn1``, ...), where files
    of earlier versions have them under ``units``: each loads from there, unchanged, without a
    warning, and saves under its attribute, once."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = keras.saving.load_model(LEGACY / version / name)
    model.save(tmp_path / name)
    old, new = _block_arrays(_weights_of(LEGACY / version / name)), _block_arrays(_weights_of(tmp_path / name))
    assert new == old
    with h5py.File(_weights_of(tmp_path / name), "r") as f:
        assert not [path for path in f["layers"] if "units" in f["layers"][path]]


@pytest.fixture(params=VERSIONS)
def legacy_store(request, tmp_path):
    shutil.copytree(LEGACY / request.param / "runs", tmp_path / "runs")
    return RunStore(tmp_path / "runs")


def test_run_store_reads(legacy_store):
    (run,) = legacy_store.list()
    assert run.id == "legacy-run"
    assert run.status["state"] == "completed"
    epochs = run.epochs()
    assert len(epochs) == 1 and np.isfinite(epochs[0]["loss"])
    assert run.config.design() == Architecture.from_dict(run.config["architecture"])
    assert run.config.design().num_blocks == 2
    request = TrainingRequest.from_config(run.config)  # the typed request of an older config
    assert request.architecture == run.config.design() and request.seed == 0
    assert request.recipe.to_dict() == run.config["recipe"] and request.dataset.subset == 96


def test_run_checkpoint_and_model_agree(legacy_store, run):
    stored = legacy_store.get("legacy-run")
    trained = stored.load_model()
    rebuilt = build_resnet(stored.config.design())
    rebuilt.load_weights(stored.checkpoint_path)
    assert count_params(rebuilt) == count_params(trained)
    x = np.random.default_rng(1).normal(size=(2, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(run(rebuilt, x), run(trained, x), rtol=1e-4, atol=1e-5)


def test_a_bare_import_registers_the_layers_for_load_model():
    """``import keras_resnets`` alone lets Keras load our models (a fresh process: nothing else
    has imported the layers)."""
    code = ("import sys, keras_resnets, keras; "
            "print(keras.saving.load_model(sys.argv[1]).count_params())")
    proc = subprocess.run([sys.executable, "-c", code, str(LEGACY / VERSIONS[0] / "highway.keras")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0
