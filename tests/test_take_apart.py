"""The explorer's "Take apart" page (AppTest) and its logic (`explorer.dissect`), on tiny
runs written straight into a run store, and on the shipped pretrained network."""

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import dissect  # noqa: E402
from keras_resnets import build_resnet, presets  # noqa: E402
from keras_resnets.runs.records import RunConfig  # noqa: E402
from keras_resnets.runs.store import RunStore  # noqa: E402

DIGITS = {"name": "mnist_sample", "validation_split": 0.1, "subset": None, "data_dir": None,
          "augment": False}


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "runs"
    monkeypatch.setenv("KERAS_RESNETS_RUNS_DIR", str(path))
    return RunStore(path)


def add_run(store, run_id, residual=True, state="completed", dataset=DIGITS, blocks=3, **fields):
    arch = presets.mnist_resnet(nb_channels=4, nb_blocks=blocks, residual=residual, **fields)
    run = store.create({"architecture": arch.to_dict(), "dataset": dataset, "seed": 0,
                        "recipe": {}, "backend": os.environ.get("KERAS_BACKEND")}, run_id=run_id)
    if state == "completed":
        build_resnet(arch).save(run.model_path)
    run.write_status(state=state, pid=os.getpid())
    return run


def page(label=None, digits=None):
    at = AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/take_apart.py").run()
    if digits is not None:
        at.number_input(key="apart.digits").set_value(digits).run()
    if label is not None:
        at.selectbox(key="apart.source").set_value(label).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def warnings(at):
    return [w.value for w in at.warning]


def test_a_run_and_its_plain_twin_lose_blocks(store):
    add_run(store, "tiny-plain", residual=False)
    add_run(store, "tiny-resnet")
    at = page("Run tiny-resnet", digits=40)
    assert not warnings(at)
    assert any("with its twin" in c.value for c in at.caption)
    labels = [m.label for m in at.metric]
    assert labels == ["ResNet: held-out accuracy", "plain twin: held-out accuracy"]
    at.multiselect(key="apart.deleted").set_value([2]).run()
    assert all(m.delta.endswith("points") for m in at.metric)
    assert not at.get("vega_lite_chart")
    at.toggle(key="apart.study").set_value(True).run()
    assert len(at.get("vega_lite_chart")) == 4  # one block, k blocks, paths, ratios
    assert any("Veit et al. 2016" in m.value for m in at.markdown)
    at.multiselect(key="apart.deleted").set_value([1, 2, 3]).run()
    assert any("Deleting all 3 blocks" in w for w in warnings(at))
    at.toggle(key="apart.study").set_value(False).run()
    assert not at.get("vega_lite_chart") and not at.exception


@pytest.mark.parametrize("run_id, kwargs, message", [
    ("training", {"state": "running"}, "the run is running"),
    ("other-data", {"dataset": {**DIGITS, "name": "fashion_mnist"}}, "trained on fashion_mnist"),
    ("all-seen", {"dataset": {**DIGITS, "validation_split": 0.0}}, "held no digits out"),
    ("strided", {"stages": ({"blocks": 2, "channels": 4, "strides": 2},)}, "only blocks that keep"),
])
def test_runs_that_cannot_be_taken_apart_get_an_inline_message(store, run_id, kwargs, message):
    add_run(store, run_id, **kwargs)
    at = page(f"Run {run_id}")
    assert any(message in w for w in warnings(at)), warnings(at)
    assert not at.multiselect


def test_a_damaged_model_file_is_named(store):
    run = add_run(store, "garbled")
    run.model_path.write_bytes(b"not a zip archive")
    at = page("Run garbled")
    assert any("model.keras is not a .keras archive" in w for w in warnings(at)), warnings(at)


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """Tiny stand-ins for the shipped pair, written as scripts/make_pretrained.py writes them."""
    from keras_resnets.runs import pretrained

    monkeypatch.setattr(pretrained, "FOLDER", tmp_path / "pretrained")
    pretrained.FOLDER.mkdir()
    for name, residual in (("mnist_resnet", True), ("mnist_plain", False)):
        arch = presets.mnist_resnet(nb_channels=4, nb_blocks=3, residual=residual)
        build_resnet(arch).save_weights(pretrained.weights_path(name))
        config = {"architecture": arch.to_dict(), "dataset": DIGITS, "seed": 0}
        (pretrained.FOLDER / f"{name}.json").write_text(json.dumps(config))
    return pretrained


def test_the_shipped_network_and_its_twin_are_taken_apart_offline(store, shipped):
    at = page(digits=20)
    assert at.selectbox(key="apart.source").value.startswith("Pretrained")
    assert [m.label for m in at.metric] == ["ResNet: held-out accuracy",
                                            "plain twin: held-out accuracy"]
    assert len(at.multiselect(key="apart.deleted").options) == 3


def test_with_nothing_to_take_apart_the_page_says_what_to_do(store, shipped):
    for path in shipped.FOLDER.iterdir():
        path.unlink()
    at = page()
    assert any("make_pretrained.py" in i.value for i in at.info)


def test_twin_of_finds_the_same_design_with_residual_flipped():
    resnet = {"architecture": presets.mnist_resnet(nb_blocks=2).to_dict(), "dataset": DIGITS,
              "seed": 0}
    plain = {**resnet, "architecture": presets.mnist_resnet(nb_blocks=2, residual=False).to_dict()}
    resnet, plain, other_seed = map(RunConfig.from_dict, (resnet, plain, {**plain, "seed": 1}))
    done, running = {"state": "completed"}, {"state": "running"}
    assert dissect.twin_of(resnet, [("a", plain, running), ("b", plain, done)]) == "b"
    assert dissect.twin_of(plain, [("r", resnet, done)]) == "r"
    assert dissect.twin_of(resnet, [("c", other_seed, done)]) is None
