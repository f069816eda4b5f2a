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

from explorer import claims, dissect  # noqa: E402
from keras_resnets import build_resnet, presets  # noqa: E402
from keras_resnets.runs.records import RunConfig  # noqa: E402
from keras_resnets.runs.store import RunStore  # noqa: E402
from keras_resnets.training import Recipe  # noqa: E402

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
                        "recipe": Recipe().to_dict(), "backend": os.environ.get("KERAS_BACKEND")}, run_id=run_id)
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
    assert [w.split(":")[0] for w in warnings(at)] == ["This network reaches "
                                                        f"{at.metric[0].value} on held-out digits after 1 epoch"]
    assert any("with its twin" in c.value for c in at.caption)
    labels = [m.label for m in at.metric]
    assert labels == ["ResNet: held-out accuracy", "plain twin: held-out accuracy"]
    at.multiselect(key="apart.deleted").set_value([2]).run()
    assert all(m.delta.endswith("points") for m in at.metric)
    assert not at.get("vega_lite_chart")
    at.toggle(key="apart.study").set_value(True).run()
    assert len(at.get("vega_lite_chart")) == 4  # one block, k blocks, paths, ratios
    assert any("Veit et al. 2016" in m.value for m in at.markdown)
    assert sum(m.value.startswith("**Here:** ") for m in at.markdown) == 3  # lesion, smooth, paths
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
        config = {"architecture": arch.to_dict(), "dataset": DIGITS, "recipe": Recipe().to_dict(), "seed": 0}
        (pretrained.FOLDER / f"{name}.json").write_text(json.dumps(config))
    return pretrained


def test_the_shipped_network_and_its_twin_are_taken_apart_offline(store, shipped):
    at = page(digits=20)
    assert at.selectbox(key="apart.source").value.startswith("Pretrained")
    assert [m.label for m in at.metric] == ["ResNet: held-out accuracy",
                                            "plain twin: held-out accuracy"]
    assert len(at.multiselect(key="apart.deleted").options) == 3
    assert at.toggle  # no studies stored with these stand-ins: the page offers to run one


def test_the_shipped_studies_are_read_as_data_and_told_with_their_numbers(store, shipped):
    studies = {"mnist_resnet": _study([0.2, 0.01, 0.0], gradient=[0.5, 0.3, 0.15, 0.05]),
               "mnist_plain": _study([0.5, 0.3, 0.8], random=(0.4, 0.2, 0.1))}
    for name, study in studies.items():
        path = shipped.FOLDER / f"{name}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "lesions": study}))
    at = page(digits=20)
    here = [m.value for m in at.markdown if m.value.startswith("**Here:**")]
    assert here[0] == ("**Here:** Holds for 2 of the 3 blocks: deleting any of blocks 2–3 costs at "
                       "most 1.0 point. Fails for block 1, the first after the stem: deleting it "
                       "costs 20.0 points (the first blocks build the features from single "
                       "pixels, which the 1x1 stem only mixes). The plain twin: deleting one of "
                       "its blocks costs 50.0 points at the median (ResNet: 1.0 point), up to "
                       "80.0 points (block 3).")
    assert len(here) == 3 and not at.toggle and len(at.get("vega_lite_chart")) == 4


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


def _study(drops, intact=0.98, random=(0.97, 0.95, 0.9), gradient=None):
    """A lesion study's numbers with single-block lesions that cost ``drops``."""
    study = {"digits": 1000, "intact": intact, "each": [intact - d for d in drops],
             "random": {"k": list(range(1, len(random) + 1)), "accuracy": list(random),
                        "std": [0.0] * len(random), "samples": 10}}
    if gradient is not None:
        study["gradient"] = {"k": list(range(len(gradient))), "share": list(gradient)}
        study["ratios"] = [0.1] * len(drops)
    return study


def test_the_lesion_claim_holds_for_blocks_that_cost_little_and_fails_for_the_rest():
    early = [0.06, 0.88, 0.3, 0.2, 0.1, 0.08, 0.07, 0.065]  # blocks 1-8 build the features
    mixed = claims.lesion_verdict(_study(early + [0.028] + [0.004] * 16))
    assert mixed.startswith("Holds for 17 of the 25 blocks: deleting any of blocks 9–25 costs "
                            "at most 2.8 points.")
    assert "Fails for blocks 1–8, the first ones after the stem: deleting one costs 6.0–88.0 " \
           "points" in mixed
    assert claims.lesion_verdict(_study([0.01, 0.02, 0.0])) == (
        "Holds for all 3 blocks: deleting any one costs at most 2.0 points (median 1.0 point).")
    middle = claims.lesion_verdict(_study([0.0, 0.5, 0.01]))
    assert "Fails for block 2: deleting it costs 50.0 points." in middle and "stem" not in middle
    assert claims.lesion_verdict(_study([0.4, 0.5])).startswith("Fails for blocks 1–2")
    with_plain = claims.lesion_verdict(_study([0.01, 0.02, 0.0]), _study([0.5, 0.3, 0.8]))
    assert with_plain.endswith("The plain twin: deleting one of its blocks costs 50.0 points at "
                               "the median (ResNet: 1.0 point), up to 80.0 points (block 3).")
    assert claims.one_block(_study([0.01, 0.02, 0.06])) == pytest.approx(
        {"mean": 0.03, "median": 0.02, "worst": 0.06, "worst_block": 3})


def test_the_smooth_and_paths_claims_read_the_curves():
    smooth = claims.smooth_verdict(_study([0.0], random=(0.97, 0.94, 0.9)),
                                   _study([0.5], random=(0.4, 0.2, 0.11)))
    assert smooth.startswith("Holds: the steepest step, from 2 to 3 deleted blocks, costs 4.0 "
                             "points")
    assert "The plain twin: 40.0% with 1 deleted, 11.0% with 3 (chance: 10%)." in smooth
    assert claims.smooth_verdict(_study([0.0], random=(0.97, 0.5))).startswith(
        "Fails: the steepest step, from 1 to 2 deleted blocks, costs 47.0 points")
    short = claims.paths_verdict(_study([0.0] * 4, gradient=[0.5, 0.3, 0.15, 0.04, 0.01]))
    assert short == ("Holds: half of the 2^4 paths cross 2 or more blocks, but paths of at most "
                     "2 blocks carry 90% of the gradient, and paths of 0 blocks the most.")
    long = claims.paths_verdict(_study([0.0] * 4, gradient=[0.0, 0.1, 0.2, 0.3, 0.4]))
    assert long.startswith("Fails:") and "paths of 4 blocks the most" in long


def test_a_briefly_trained_network_is_flagged():
    assert claims.training_warning(0.986, 6) is None and claims.training_warning(0.98, None) is None
    assert claims.training_warning(0.914, 1).startswith(
        "This network reaches 91.4% on held-out digits after 1 epoch:")
    assert "after 1 epoch" in claims.training_warning(0.99, 1)
    assert claims.block_ranges([1, 2, 3, 7, 9, 10]) == "blocks 1–3, 7 and 9–10"
