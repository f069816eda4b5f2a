"""What the explorer's pages compute, tested directly, without Streamlit: the pages only draw it
(their AppTests are in test_explorer*.py)."""

import ast
import json
from pathlib import Path

import pytest

from explorer import count_tables, designs, dissect
from keras_resnets import Architecture, get_preset
from keras_resnets.runs.records import RunConfig
from keras_resnets.runs.store import RunStore

EXPLORER = Path(__file__).resolve().parent.parent / "explorer"
STREAMLIT_MODULES = {"app", "models", "state", "ui"}
"""The explorer's modules that draw or cache with Streamlit; its pages are in app_pages/."""
DESIGN = get_preset("mnist_resnet", nb_blocks=1).to_dict()
EPOCH = {"event": "epoch", "epoch": 0, "step": 256, "loss": 0.9, "accuracy": 0.74, "val_loss": 0.3,
         "val_accuracy": 0.93, "learning_rate": 3e-4, "seconds": 40.0}


def completed_run(runs_dir, run_id, seed=0, **changes):
    """A completed one-epoch run of the lecture's network with ``changes`` to its design."""
    run = RunStore(runs_dir).create({"architecture": {**DESIGN, **changes}, "recipe": {"epochs": 1, "batch_size": 16},
                                     "dataset": {"name": "mnist_sample", "subset": 4096}, "backend": "jax",
                                     "seed": seed}, run_id=run_id)
    run.write_status(state="completed", epoch=1, epochs=1)
    run.append_metrics({"event": "batch", "epoch": 0, "step": 128, "loss": 1.5, "accuracy": 0.5,
                        "images_per_second": 100.0}, {**EPOCH, "val_accuracy": 0.9 + seed / 100})
    return RunStore(runs_dir).get(run_id)


def _explorer_imports(path):
    """The explorer modules and top-level packages that ``path`` imports, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "explorer":
                yield from (f"explorer.{alias.name}" for alias in node.names)
            else:
                yield node.module


def test_logic_modules_import_no_streamlit():
    """Every explorer module but the app, its pages and the Streamlit helpers is plain Python,
    and so is everything of the explorer that it imports."""
    modules = {p.stem: p for p in EXPLORER.glob("*.py") if p.stem != "__init__"}
    assert STREAMLIT_MODULES <= set(modules)
    for name in sorted(set(modules) - STREAMLIT_MODULES):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            seen.add(current)
            for module in _explorer_imports(modules[current]):
                assert module.split(".")[0] != "streamlit", f"{name} imports streamlit through {current}"
                inner = module.removeprefix("explorer.")
                if module.startswith("explorer.") and inner not in seen:
                    assert inner not in STREAMLIT_MODULES, f"{name} imports explorer.{inner} through {current}"
                    todo.append(inner)


# -- the Design and Export pages ----------------------------------------------------------------
def test_stages_are_added_and_removed_as_copies():
    design = designs.preset_design("mnist_resnet")
    wider = designs.with_stage(design)
    assert len(wider["stages"]) == len(design["stages"]) + 1
    assert wider["stages"][-1]["strides"] == 2
    assert designs.with_stage({**design, "block": "dense"})["stages"][-1] == design["stages"][-1]
    assert designs.without_stage(wider, 0)["stages"] == wider["stages"][1:]
    assert designs.without_stage(design, 0)["stages"] == design["stages"]  # the last stage stays


def test_the_count_tables():
    summary = {"stages": [{"name": "stage1", "blocks": 2, "output_shape": [None, 28, 28, 16], "trainable": 10,
                           "non_trainable": 2, "macs": 2_000_000}],
               "layers": [{"name": "conv", "kind": "Conv2D", "stage": 0, "block": 0, "output_shape": [None, 10],
                           "trainable": 10, "non_trainable": 0, "macs": 0}]}
    assert count_tables.stage_frame(summary).iloc[0]["output shape"] == "?×28×28×16"
    layer = count_tables.layer_frame(summary).iloc[0]
    assert layer["stage"] is None and layer["block"] is None and layer["kind"] == "Conv2D"


def test_reading_an_uploaded_description():
    text = Architecture.from_dict(DESIGN).to_json()
    assert designs.read_description(text.encode(), "a.json").name == "mnist_resnet"
    config = json.dumps({"architecture": json.loads(text), "seed": 0}).encode()
    assert designs.read_description(config, "config.json").to_dict() == Architecture.from_dict(DESIGN).to_dict()
    with pytest.raises(ValueError, match="^That file cannot be read: "):
        designs.read_description(b"{", "a.json")
    with pytest.raises(ValueError, match="^b.json is not a valid architecture: "):
        designs.read_description(b'{"stages": 3}', "b.json")


def test_share_links_and_file_names():
    assert designs.share_link("https://host/app/export/", "preset=x") == "https://host/app/?preset=x"
    assert designs.share_link("", "preset=x") == "?preset=x"
    assert designs.file_stem("ResNet-50 (B)") == "ResNet-50__B_"


# -- the Take apart page ------------------------------------------------------------------------
def test_sources_pair_a_run_with_its_twin(runs_dir):
    resnet = completed_run(runs_dir, "run-r")
    plain = completed_run(runs_dir, "run-p", residual=False)
    found = dissect.sources([resnet, plain])
    assert {"Run run-r", "Run run-p"} <= set(found)
    config, status, source, stamp = found["Run run-r"]
    assert status["state"] == "completed" and source == f"run:{resnet.model_path}" and stamp == 0.0
    kind, picked = dissect.networks("Run run-p", found)
    assert kind == "plain" and picked["resnet"][1] == source
    alone = dissect.sources([resnet])
    assert dissect.networks("Run run-r", alone)[1].keys() == {"resnet"}


def test_lesion_charts():
    study = {"intact": 0.98, "each": [0.5, 0.97], "random": {"k": [1], "accuracy": [0.7]}}
    one, several = dissect.lesion_charts({"resnet": study, "plain": {**study, "intact": 0.9}})
    assert set(one.data["network"]) == {"ResNet", "plain twin"}
    assert list(several.data["k"]) == [0, 1, 0, 1]
    assert dissect.ratio_chart([0.1, 0.2]).data["block"].tolist() == [1, 2]
    gradient = {"k": [0, 1, 2], "share": [0.2, 0.5, 0.3]}
    assert "The 2^2 paths" in json.dumps(dissect.path_chart(2, gradient).to_dict())


def test_a_run_config_without_residual_is_a_resnet():
    config = RunConfig.from_dict({"architecture": {"name": "x"}, "dataset": {"name": "mnist_sample"}})
    found = {"Run a": (config, {"state": "completed"}, "run:a", 0.0)}
    assert dissect.networks("Run a", found)[0] == "resnet"
