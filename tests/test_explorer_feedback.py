"""The explorer's third round (issue 28, parts 2-5): curves from the first minute, feedback that
says what each number is, designs named by what changed, and the rough edges a new user hits.
AppTest (and the logic below the pages), on the test's KERAS_BACKEND."""

import os
import time

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("altair")

from streamlit import dataframe_util  # noqa: E402
from test_explorer import TINY, app, new_app_test  # noqa: E402

from explorer import charts, designs, progress, runner  # noqa: E402
from keras_resnets import get_preset  # noqa: E402
from keras_resnets.runs.store import RunStore  # noqa: E402
from keras_resnets.training import Recipe  # noqa: E402
from keras_resnets.training.probe import PROBES, probe_steps  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
pytestmark = pytest.mark.usefixtures("runs_dir")


def one_epoch_run(runs_dir, run_id, design=None, done=True, phase=None):
    """A one-epoch run of 256 steps written as a worker writes it: batches, probes, its epoch."""
    design = design or get_preset("mnist_resnet", nb_blocks=1).to_dict()
    run = RunStore(runs_dir).create({"architecture": design, "recipe": {"epochs": 1, "batch_size": 16},
                                     "dataset": {"name": "mnist_sample", "subset": 4096},
                                     "backend": BACKEND, "seed": 0}, run_id=run_id)
    run.write_status(state="running", pid=os.getpid(), epochs=1, num_train=4096, num_validation=1000,
                     phase=phase or "training")
    events = [{"event": "batch", "epoch": 0, "step": s, "loss": 2.0 - s / 200, "accuracy": s / 300,
               "images_per_second": 100.0, "time": time.time()} for s in range(12, 257, 12)]
    events += [{"event": "probe", "epoch": 0, "step": s, "val_loss": 1.0, "val_accuracy": 0.5 + s / 600,
                "images": 256, "time": time.time()} for s in probe_steps(256, 1)]
    events.sort(key=lambda e: e["step"])
    if done:
        events.append({"event": "epoch", "epoch": 0, "step": 256, "loss": 0.9, "accuracy": 0.74,
                       "val_loss": 0.3, "val_accuracy": 0.93, "learning_rate": 3e-4, "seconds": 40.0})
        run.write_status(state="completed", epoch=1, phase=None)
    run.append_metrics(*events)
    return run


def chart_data(element):
    return dataframe_util.convert_arrow_bytes_to_pandas_df(element.proto.datasets[0].data.data)


# -- 2. Curves from the first minute -------------------------------------------------------------
def test_a_one_epoch_run_has_a_validation_curve_on_train_and_compare(runs_dir):
    run = one_epoch_run(runs_dir, "one-epoch")
    at = app(TINY, page="train")
    accuracy = chart_data(at.get("vega_lite_chart")[1])
    validation = accuracy[accuracy["split"] == "validation"]
    assert len(validation) == PROBES + 1 >= 8 and validation["epoch"].is_monotonic_increasing
    at.switch_page("app_pages/compare.py").run()
    assert at.toggle(key="compare.batches").value is True  # on at first for single epochs
    at.toggle(key="compare.batches").set_value(False).run()
    assert not at.exception
    for element in at.get("vega_lite_chart"):
        rows = chart_data(element)
        assert (rows[(rows["run"] == run.id) & (rows["split"] == "validation")]["granularity"] != "batch").sum() >= 8


def test_charts_pad_their_scales_so_no_point_is_cut():
    frame = charts.curve_frame([{"event": "epoch", "epoch": 0, "step": 4, "loss": 0.5, "accuracy": 1.0,
                                 "val_loss": 0.4, "val_accuracy": 1.0}])
    for chart in (charts.learning_curves(frame, "accuracy"), charts.learning_curves(frame, "loss", compare=True)):
        spec = chart.to_dict()
        scales = [layer["encoding"][axis]["scale"] for layer in spec["layer"] for axis in ("x", "y")]
        assert all(scale["padding"] == charts.PADDING for scale in scales)


def test_old_runs_without_probes_still_load(runs_dir):
    run = one_epoch_run(runs_dir, "old-run")
    kept = [e for e in run.metrics() if e["event"] != "probe"]
    run.keep_metrics(0)
    run.append_metrics(*kept)
    at = app(TINY, page="train")
    validation = chart_data(at.get("vega_lite_chart")[1]).query("split == 'validation'")
    assert len(validation) == 1


# -- 3. Feedback that tells the truth ---------------------------------------------------------------
def test_the_bar_counts_evaluation_and_saving_and_names_the_phase():
    status = {"state": "running", "epoch": 0, "epochs": 1, "num_train": 4096, "num_validation": 1000}
    events = [{"event": "batch", "epoch": 0, "step": 252, "images_per_second": 100.0}]
    events += [{"event": "probe", "epoch": 0, "step": s} for s in probe_steps(256, 1)]
    recipe = Recipe(batch_size=16)
    evaluating = progress.run_progress({**status, "phase": "evaluating"}, recipe, events, 256)
    saving = progress.run_progress({**status, "phase": "saving", "epoch": 1}, recipe, events, 256)
    assert evaluating.fraction < 0.95 and evaluating.phase == "Evaluating on the 1,000 held-out images"
    assert evaluating.seconds_left > 3  # the evaluation is still to come
    assert 0.95 < saving.fraction < 1 and saving.phase == "Saving the trained model"
    starting = progress.run_progress({"state": "created"}, recipe, [], None, backend="PyTorch")
    assert starting.phase.startswith("Starting the backend") and "PyTorch" in starting.phase


def test_the_train_page_names_the_phase_and_what_each_number_is(runs_dir):
    run = one_epoch_run(runs_dir, "compiling-run", done=False, phase="compiling")
    run.keep_metrics(0)
    at = app(TINY, page="train")
    assert any("Compiling the model" in p.proto.text for p in at.get("progress"))
    assert any("No curves yet: compiling" in i.value for i in at.info)
    one_epoch_run(runs_dir, "finished-run")
    at.run()
    at.selectbox(key="train.view").set_value("finished-run").run()
    cards = {m.label: m for m in at.metric}
    assert cards["Training accuracy"].value == "74.0%" and cards["Held-out accuracy"].value == "93.0%"
    assert "mean over all of epoch 1" in cards["Training accuracy"].proto.help
    assert "all 1,000 held-out images, end of epoch 1" in cards["Held-out accuracy"].proto.help
    assert any(c.value.startswith("Training: mean over all of epoch 1") for c in at.caption)


def test_a_running_run_shows_its_latest_probe_as_held_out(runs_dir):
    one_epoch_run(runs_dir, "running-run", done=False)
    at = app(TINY, page="train")
    cards = {m.label: m for m in at.metric}
    assert cards["Held-out accuracy"].value == f"{0.5 + 232 / 600:.1%}"
    assert cards["Held-out accuracy"].proto.help == "256 held-out images, step 232"
    assert "running mean over epoch 1 so far" in cards["Training loss"].proto.help


# -- 4. Designs keep their own names ----------------------------------------------------------------
def test_an_edited_design_is_named_by_what_changed_on_every_page(monkeypatch, runs_dir):
    launched = []
    monkeypatch.setattr(runner.Runner, "launch", lambda self, request, backend: launched.append(request) or "r")
    at = app(TINY)
    at.toggle(key="design.preactivation").set_value(True).run()
    name = at.session_state["design"]["name"]
    assert name == "mnist_resnet-stem.filters4-1x4-preact", name
    assert "name" not in at.query_params  # the link says what changed; the name follows from it
    assert any(f"`{name}` (started from `mnist_resnet`)" in m.value for m in at.markdown)
    assert any(f"`{name}`" in m.value for m in at.sidebar.markdown)
    at.switch_page("app_pages/train.py").run()
    assert any(f"`{name}`" in m.value for m in at.markdown if m.value.startswith("**Will train**"))
    at.button(key="start_training").click().run()
    assert launched[0].architecture.name == name  # the run store's config records it
    linked = app({"preset": "mnist_resnet", "stages": "1x4", "stem.filters": "4", "preactivation": "true"})
    assert linked.session_state["design"]["name"] == name


def test_a_typed_name_is_kept_and_travels_in_the_link():
    at = app(TINY)
    at.text_input(key="design.name").input("my_net").run()
    at.toggle(key="design.preactivation").set_value(True).run()
    assert at.session_state["design"]["name"] == "my_net" and at.query_params["name"] == "my_net"
    at.text_input(key="design.name").input("").run()
    assert at.session_state["design"]["name"] == designs.auto_name(at.session_state["design"])


def test_compare_tells_two_designs_apart(runs_dir):
    for run_id, stages in (("run-a", [{"blocks": 9, "channels": 32}]), ("run-b", [{"blocks": 3, "channels": 32}])):
        design = {**designs.preset_design("mnist_resnet"), "stages": stages}
        one_epoch_run(runs_dir, run_id, {**design, "name": designs.auto_name(design)})
    at = app(TINY, page="compare")
    labels = list(at.dataframe[0].value["run"])
    assert len(set(labels)) == 2 and "mnist_resnet-9x32" in labels[1] and "mnist_resnet-3x32" in labels[0]


def test_compare_labels_say_only_what_differs_from_the_preset(runs_dir):
    preset = designs.preset_design("mnist_resnet")
    one_epoch_run(runs_dir, "run-a", preset)
    one_epoch_run(runs_dir, "run-b", {**preset, "name": "mine", "residual": False})
    at = app(TINY, page="compare")
    labels = sorted(at.dataframe[0].value["run"])
    assert labels[0].startswith("mine · plain · option B · ") and "option" not in labels[1], labels


# -- 5. Edges ---------------------------------------------------------------------------------------
def test_a_link_with_several_bad_fields_names_every_one():
    at = app({"classes": "-5", "stem.filters": "-3", "shortcut": "Z", "stagez": "1x4", "residual": "maybe"})
    text = " ".join(w.value for w in at.warning)
    for field in ("classes=-5", "stem.filters=-3", "shortcut='Z'", "'stagez'", "residual='maybe'"):
        assert field in text, (field, text)


def test_compare_explains_a_bad_runs_parameter(runs_dir):
    one_epoch_run(runs_dir, "real-run")
    at = new_app_test()
    at.query_params["runs"] = "nope,real-run"
    at.switch_page("app_pages/compare.py").run()
    assert any("'nope' is not a run of the store" in w.value for w in at.warning)
    assert at.multiselect(key="compare.runs").value == ["real-run"]


def test_labels_fit_their_columns():
    at = app(TINY)
    checkbox_labels = [c.label for c in at.checkbox if c.key in ("design.avg_down", "design.shortcut_batch_norm")]
    assert checkbox_labels and all(len(label) <= 18 for label in checkbox_labels), checkbox_labels
    headers = [c.value for c in at.caption]
    assert "stage" not in headers and "\\#" in headers  # a narrow column wrapped "sta/ge"; a bare "#" is a heading
    at.switch_page("app_pages/train.py").run()
    recipe = at.selectbox(key="train.recipe")
    assert all(len(option) <= 14 for option in recipe.options), recipe.options


def test_compare_shows_a_dash_not_none_where_a_number_is_missing(runs_dir):
    one_epoch_run(runs_dir, "done-run")
    one_epoch_run(runs_dir, "starting-run", done=False).keep_metrics(0)
    at = app(TINY, page="compare")
    at.multiselect(key="compare.runs").set_value(["done-run", "starting-run"]).run()
    table = at.dataframe[0]
    assert table.value.isna().to_numpy().any()  # missing numbers there are
    assert table.proto.placeholder == "—"  # shown as a dash, not as Streamlit's "None"
    assert "best val. accuracy ± std" in table.value.columns


def test_experiments_before_any_run_say_what_to_do():
    at = app(TINY, page="experiments")
    assert not any("0 of 0" in c.value for c in at.caption)
    assert any("Run all quick experiments" in i.value for i in at.info)


def test_no_page_draws_a_stray_docstring(runs_dir):
    """Streamlit's magic draws a page module's bare strings: only its first (the docstring) is safe."""
    import ast
    from pathlib import Path

    for path in Path(__file__).resolve().parent.parent.joinpath("explorer", "app_pages").glob("*.py"):
        body = ast.parse(path.read_text()).body
        strays = [node.lineno for node in body[1:] if isinstance(node, ast.Expr)
                  and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)]
        assert not strays, (path.name, strays)
