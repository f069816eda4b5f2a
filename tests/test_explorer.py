"""The explorer (``explorer/``) with Streamlit's AppTest: every page, the main interactions,
the URL form of a design, a real (tiny) training run in a worker process, and the safety of
run ids, file names and query parameters that come from the browser.

Runs on the test process's ``KERAS_BACKEND`` (the app builds designs on it, and the training
worker is started with it). Designs are kept small so the whole file takes well under 90 s.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("altair")

from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "explorer" / "app.py"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import charts, designs, diagram, runner, uploads  # noqa: E402
from keras_resnets import Architecture, build_resnet, count_params, get_preset  # noqa: E402
from keras_resnets.runs.processes import process_alive  # noqa: E402
from keras_resnets.runs.store import RunStore  # noqa: E402
from keras_resnets.training.processes import ENGINES  # noqa: E402
from test_data_folders import numbered_folder  # noqa: E402
from test_explorer_logic import zipped  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
TINY = {"stages": "1x4", "stem.filters": "4"}  # the lecture's network with one block of 4 channels
pytestmark = pytest.mark.usefixtures("runs_dir")


_SHARED = {}


def new_app_test():
    """An AppTest of the explorer. Each AppTest scans the installed packages for Streamlit
    components (about 2 s); the scan's result is shared between the tests."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    if _SHARED.get("components") is not None and hasattr(at, "_bidi_component_manager"):
        at._bidi_component_manager = _SHARED["components"]
    return at


def app(query=None, page=None):
    at = new_app_test()
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    _SHARED.setdefault("components", getattr(at, "_bidi_component_manager", None))
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def errors(at):
    return [e.value for e in at.error]


# -- designs as data --------------------------------------------------------------------------
@pytest.mark.parametrize("preset", sorted(designs.PRESET_CHOICES))
def test_every_preset_round_trips_through_the_url(preset):
    design = designs.preset_design(preset)
    assert designs.encode_query(design, preset) == {"preset": preset}
    assert designs.decode_query({"preset": preset}) == (preset, design, [])


def test_changed_fields_round_trip_through_the_url():
    design = designs.preset_design("cifar_resnet20")
    design.update(shortcut="B", residual=False, seed=3, pooling=None, include_top=False,
                  final_survival_probability=1.0, input_shape=[64, 64, 3])
    design["stem"]["filters"] = 32
    design["stages"][2]["kernel_size"] = 5
    query = designs.encode_query(design, "cifar_resnet20")
    assert query["stages"] == "3x16,3x32/2,3x64/2k5"
    assert query["input_shape"] == "64x64x3" and query["stem.filters"] == "32"
    preset, decoded, problems = designs.decode_query(query)
    assert (preset, decoded, problems) == ("cifar_resnet20", design, [])


def test_bad_query_parameters_are_reported_and_ignored():
    preset, design, problems = designs.decode_query({
        "preset": "../../etc/passwd", "stages": "3x16;rm", "residual": "maybe", "classes": "ten",
        "input_shape": "x" * 5000, "unrelated": "reported", "runs": "a page's own",
    })
    assert preset == designs.DEFAULT_PRESET
    assert design["stages"] == designs.preset_design(designs.DEFAULT_PRESET)["stages"]
    text = " ".join(problems)
    for name in ("preset", "stages", "residual", "classes", "input_shape", "'unrelated' is not a link"):
        assert name in text
    assert not any(p.startswith("'runs'") for p in problems)


def test_python_snippet_rebuilds_the_design():
    architecture = get_preset("mnist_resnet", nb_blocks=2, nb_channels=4, shortcut="C")
    namespace = {}
    exec(designs.python_snippet(architecture).replace("print(", "str("), namespace)
    assert namespace["architecture"] == architecture
    assert count_params(namespace["model"]) == count_params(build_resnet(architecture))


def test_oversized_designs_are_refused_before_building():
    with pytest.raises(ValueError, match="max_parameters"):
        get_preset("resnet152").replace(stages=({"blocks": 40, "channels": 4096, "strides": 1},))
    assert designs.estimate_text(get_preset("resnet152")).startswith("about 60,")


@pytest.mark.parametrize("preset", ["mnist_resnet", "cifar_resnet20-plain", "resnet50", "highway_net",
                                    "crelu_net"])
def test_diagrams_are_graphviz_text(preset):
    architecture = designs.PRESET_CHOICES[preset].architecture()
    for dot in (diagram.block_dot(architecture, len(architecture.stages) - 1, True),
                diagram.network_dot(architecture), diagram.network_dot(architecture, expand=True)):
        assert dot.startswith("digraph") and dot.rstrip().endswith("}")
        assert dot.count("{") == dot.count("}")
    network = diagram.network_dot(get_preset("resnet34"), expand=False)
    assert "stage2: 4 x [3x3 conv 128, 3x3 conv 128], /2" in network
    block = diagram.block_dot(get_preset("mnist_resnet"))
    for name in ("conv1", "bn1", "ReLU", "conv2", "bn2", "+", "identity"):
        assert name in block


def test_curve_frame_places_batches_between_epochs():
    events = [{"event": "batch", "epoch": 0, "step": 2, "loss": 2.0, "accuracy": 0.2},
              {"event": "batch", "epoch": 0, "step": 4, "loss": 1.0, "accuracy": 0.5},
              {"event": "epoch", "epoch": 0, "step": 4, "loss": 1.5, "accuracy": 0.4, "val_loss": 1.2,
               "val_accuracy": 0.6}]
    frame = charts.curve_frame(events, "r")
    assert sorted(frame[frame.granularity == "batch"].epoch.unique()) == [0.5, 1.0]
    assert set(frame.split) == {"train", "validation"}
    for metric_name in ("loss", "accuracy"):
        charts.learning_curves(frame, metric_name).to_dict()
        charts.learning_curves(frame, metric_name, compare=True).to_dict()


# -- the Design page --------------------------------------------------------------------------
def test_default_design_shows_the_lectures_counts():
    at = app()
    assert metric(at, "Trainable parameters") == "117,802"
    assert metric(at, "Non-trainable") == "1,600"
    assert at.query_params["preset"] == "mnist_resnet"
    assert not errors(at)
    assert at.get("graphviz_chart"), "the network diagram is drawn"


def test_preset_change_updates_counts_and_url():
    at = app(TINY)
    at.selectbox(key="start_from").select("cifar_resnet20").run()
    assert metric(at, "Trainable parameters") == "269,722"
    assert at.query_params == {"preset": "cifar_resnet20"}
    at.selectbox(key="start_from").select("cifar_resnet20-plain").run()
    assert metric(at, "Trainable parameters") == "269,722"  # option A: the plain twin has the same weights
    at.number_input(key="design.stage0.blocks").set_value(1).run()
    assert at.query_params["stages"] == "1x16,3x32/2,3x64/2"
    assert metric(at, "Trainable parameters") == f"{269_722 - 2 * (2 * 9 * 16 * 16 + 2 * 32):,}"  # two blocks of two convs and BNs fewer


def test_precision_is_a_design_choice_kept_in_the_url():
    at = app(TINY)
    assert at.session_state["design"]["dtype_policy"] is None  # automatic
    params = metric(at, "Trainable parameters")
    at.selectbox(key="design.dtype_policy").select("mixed_bfloat16").run()
    assert at.session_state["design"]["dtype_policy"] == "mixed_bfloat16"
    assert at.query_params["dtype_policy"] == "mixed_bfloat16"
    assert metric(at, "Trainable parameters") == params and not errors(at)


def test_editing_widgets_changes_the_design():
    at = app(TINY)
    at.toggle(key="design.preactivation").set_value(True).run()
    at.radio(key="design.shortcut").set_value("C").run()
    at.button(key="add_stage").click().run()
    assert not errors(at)
    design = at.session_state["design"]
    assert design["preactivation"] is True and design["shortcut"] == "C"
    assert design["stages"][-1] == {"blocks": 1, "channels": 8, "strides": 2, "kernel_size": 3}
    expected = build_resnet(Architecture.from_dict(design))
    assert metric(at, "Trainable parameters") == f"{count_params(expected)['trainable']:,}"
    at.button(key="remove_stage1").click().run()
    assert len(at.session_state["design"]["stages"]) == 1


@pytest.mark.parametrize("widget, value, field", [
    ("activation", "crelu", "activation"),       # CReLU needs a plain network
    ("input_shape", "abc", "input_shape"),        # not a shape
    ("block", "highway", "stages[0].strides"),   # highway layers keep the shape
    ("stage0.kernel_size", 4, "kernel_size"),     # even kernel
])
def test_invalid_input_gives_a_message_naming_the_field(widget, value, field):
    at = app({**TINY, "stages": "1x4/2"})
    key = f"design.{widget}"
    if widget in ("activation", "block"):
        at.selectbox(key=key).select(value).run()
    elif widget == "input_shape":
        at.text_input(key=key).input(value).run()
    else:
        at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert any(field in message for message in errors(at)), errors(at)
    assert not any(m.label == "Trainable parameters" for m in at.metric)
    unreadable = value == "abc"  # text that is no shape at all never reaches the design
    for page in ("train", "export"):  # the other pages say so too, without a traceback
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception and (unreadable or any(field in m for m in errors(at)))


def test_family_preset_and_groups_on_the_design_page():
    at = app(TINY)
    at.selectbox(key="start_from").select("cifar_wide_resnet-16-4").run()
    expected = get_preset("cifar_wide_resnet", depth=16, widen_factor=4, dropout=0.3)
    assert metric(at, "Trainable parameters") == f"{expected.plan().count_params()['trainable']:,}"
    assert at.query_params == {"preset": "cifar_wide_resnet-16-4"}
    at.number_input(key="design.groups").set_value(2).run()  # basic blocks have no groups
    assert not at.exception and any("groups=2" in message for message in errors(at)), errors(at)
    at = app({"preset": "resnet50", "stages": "1x8,1x16/2", "input_shape": "32x32x3"})
    at.number_input(key="design.groups").set_value(4).run()
    at.number_input(key="design.width_per_group").set_value(16).run()
    at.checkbox(key="design.avg_down").check().run()
    assert not errors(at)
    design = at.session_state["design"]
    assert (design["groups"], design["width_per_group"], design["avg_down"]) == (4, 16, True)
    assert at.query_params["groups"] == "4" and at.query_params["avg_down"] == "true"
    architecture = Architecture.from_dict(design)
    assert metric(at, "Trainable parameters") == f"{count_params(build_resnet(architecture))['trainable']:,}"
    assert "4 groups" in diagram.block_dot(architecture, 1, True)


def test_query_parameters_restore_a_design():
    query = {"preset": "cifar_resnet20", "shortcut": "B", "stages": "1x8,1x16/2", "residual": "false",
             "stem.filters": "8", "final_survival_probability": "1.0"}
    at = app(query)
    design = at.session_state["design"]
    assert design["shortcut"] == "B" and design["residual"] is False and design["stem"]["filters"] == 8
    assert at.number_input(key="design.stage1.channels").value == 16
    assert at.toggle(key="design.residual").value is False
    expected = build_resnet(get_preset("cifar_resnet20", shortcut="B", residual=False, stem={"filters": 8,
                            "kernel_size": 3}, stages=({"blocks": 1, "channels": 8}, {"blocks": 1, "channels": 16,
                                                                                        "strides": 2})))
    assert metric(at, "Trainable parameters") == f"{count_params(expected)['trainable']:,}"
    assert at.query_params == {k: v for k, v in query.items() if k != "final_survival_probability"}


@pytest.mark.parametrize("query, field", [
    ({"stages": "1000000x1000000"}, "max_blocks"),
    ({"classes": "-5"}, "classes=-5"),
    ({"stem.filters": "-3"}, "stem.filters=-3"),
    ({"stages": "400x180"}, "max_parameters"),
])
@pytest.mark.parametrize("page", ["design", "train"])
def test_a_link_that_cannot_be_opened_says_why_on_any_page(query, field, page):
    at = new_app_test()
    for key, value in {"preset": "mnist_resnet", **query}.items():
        at.query_params[key] = value
    at.switch_page(f"app_pages/{page}.py").run()  # the link opens this page first
    assert not at.exception
    assert any(field in w.value and "not opened" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.session_state["design"] == designs.preset_design("mnist_resnet")
    if page == "design":
        assert metric(at, "Trainable parameters") == "117,802"


def test_a_link_opens_exactly_the_design_it_names():
    at = app({"preset": "mnist_resnet", "stages": "1x4k17", "stem.filters": "4", "classes": "3"})
    assert not at.warning and not errors(at)
    assert at.number_input(key="design.stage0.kernel_size").value == 17
    assert at.number_input(key="design.classes").value == 3
    assert at.query_params["stages"] == "1x4k17"
    expected = build_resnet(get_preset("mnist_resnet", nb_blocks=1, nb_channels=4, kernel_size=17, classes=3))
    assert metric(at, "Trainable parameters") == f"{count_params(expected)['trainable']:,}"
    assert any("Estimated from the description" in c.value for c in at.caption)


def test_damaged_runs_are_shown_as_damaged_and_the_others_as_usual(runs_dir):
    good = fake_running_run(runs_dir, "good-run")
    good.write_status(state="completed", epoch=2)
    good.append_metrics({"event": "epoch", "epoch": 0, "step": 2, "loss": 2.0, "accuracy": 0.2,
                         "val_loss": 2.1, "val_accuracy": 0.25, "learning_rate": 1e-3, "seconds": 1.0})
    for run_id, name, text in (("z-config", "config.json", '{"architecture": 5}'),
                               ("z-status", "status.json", '{"state": "running", "epoch": "three"}'),
                               ("z-recipe", "config.json", None)):
        run = fake_running_run(runs_dir, run_id)
        if text is None:  # a wrong type the store does not check: the page's reader meets it
            config = json.loads((run.path / "config.json").read_text())
            config["recipe"]["batch_size"] = "32"
            config["architecture"]["final_survival_probability"] = "high"
            text = json.dumps(config)
        (run.path / name).write_text(text)
        run.append_metrics({"event": "batch", "epoch": 0, "step": "x", "loss": "high"})
    at = app(TINY, page="train")
    for run_id in ("z-config", "z-status", "z-recipe", "good-run"):
        at.selectbox(key="train.view").set_value(run_id).run()
        assert not at.exception
        damaged = [w.value for w in at.warning if "damaged" in w.value]
        assert bool(damaged) == (run_id != "good-run"), (run_id, damaged)
    assert any("completed" in m.value for m in at.markdown) and at.get("vega_lite_chart")
    table = at.dataframe[0].value
    assert dict(zip(table["run"], table["state"])) == {  # the table does not read the batch size
        "good-run": "completed", "z-config": "damaged", "z-status": "damaged", "z-recipe": "running"}
    compare = new_app_test()
    compare.run()
    compare.switch_page("app_pages/compare.py").run()
    compare.multiselect(key="compare.runs").set_value(["good-run", "z-config", "z-status", "z-recipe"]).run()
    assert not compare.exception
    rows = compare.dataframe[0].value
    assert [s.startswith("damaged") for s in rows["state"]] == [False, True, True, True]
    assert rows["best val. accuracy"][0] == 0.25 and len(compare.get("vega_lite_chart")) == 2


def test_a_link_with_a_typo_names_the_nearest_parameter():
    at = app({"shortcutt": "C", "stage": "1x4"})
    text = " ".join(w.value for w in at.warning)
    assert "'shortcutt' is not a link parameter: did you mean shortcut?" in text
    assert "'stage' is not a link parameter: did you mean stages?" in text
    assert metric(at, "Trainable parameters") == "117,802"


def test_compare_explains_runs_that_are_not_in_the_store_and_shows_each_run_once(runs_dir):
    for run_id in ("run-a", "run-b", "run-c"):
        fake_running_run(runs_dir, run_id).write_status(state="completed")
    for runs, selected, warned in (("bogus", ["run-c", "run-b"], "'bogus' is not a run of the store"),
                                   (",".join(["run-a"] * 600), ["run-a"], None),
                                   ("run-b,../x,run-b", ["run-b"], "'../x' is not a run")):
        at = new_app_test()
        at.query_params["runs"] = runs
        at.switch_page("app_pages/compare.py").run()  # the link opens this page first
        assert not at.exception and at.multiselect(key="compare.runs").value == selected
        warnings = [w.value for w in at.warning]
        assert (any(warned in w for w in warnings) if warned else not warnings), warnings
        assert ("Showing the two newest" in " ".join(warnings)) == (runs == "bogus")


def test_a_bad_link_warns_and_still_opens():
    at = app({"preset": "nope", "stages": "../../etc", "runs": "../../x"})
    assert any("preset" in w.value for w in at.warning) and any("stages" in w.value for w in at.warning)
    assert metric(at, "Trainable parameters") == "117,802"
    assert "runs" not in at.query_params


# -- Export and share ----------------------------------------------------------------------------
def test_export_offers_json_snippet_model_and_link():
    at = app({**TINY, "shortcut": "C"}, page="export")
    link = at.code[0].value
    assert link.startswith("?") and "shortcut=C" in link and "stages=1x4" in link
    assert {b.proto.label for b in at.get("download_button")} >= {"Architecture (JSON)", "Python snippet (.py)",
                                                                  "Untrained model (.keras)"}
    json_code = next(c.value for c in at.code if c.language == "json")
    assert Architecture.from_json(json_code) == Architecture.from_dict(at.session_state["design"])


def test_export_keras_file_loads_in_safe_mode(tmp_path):
    from explorer import models

    architecture = get_preset("mnist_resnet", nb_blocks=1, nb_channels=4, shortcut="C")
    path = tmp_path / "model.keras"
    path.write_bytes(models.keras_file(architecture.to_json()))
    model = models.load_model(path)
    assert count_params(model) == count_params(build_resnet(architecture))


def test_uploading_a_description_opens_it_and_bad_files_get_a_message():
    at = app(TINY, page="export")
    good = get_preset("cifar_resnet20", shortcut="B").to_json().encode()
    at.file_uploader(key="export.upload").upload("a.json", good, "application/json").run()
    assert not at.exception and any("Loaded" in s.value for s in at.success)
    assert at.session_state["design"]["shortcut"] == "B"
    for name, data, reason in (("b.json", b"{not json", "line 1 column 2"),
                               ("c.json", json.dumps({"stages": "nope"}).encode(), "stages="),
                               ("d.json", b"[" * 100_000, "nests deeper than 32 levels"),
                               ("e.json", b"\x89PNG\x00", "not UTF-8 text")):
        at.file_uploader(key="export.upload").upload(name, data, "application/json").run()
        assert not at.exception and any(name in e and reason in e for e in errors(at)), errors(at)


# -- Train and Compare ----------------------------------------------------------------------------
def wait_for(predicate, timeout, at=None, step=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if at is not None:
            at.run()
        if predicate():
            return True
        time.sleep(step)
    return False


def started_run(at, runs_dir, timeout):
    """Clicks Start on the Train page ``at`` and returns the run once it has ended (within
    ``timeout`` seconds)."""
    at.button(key="start_training").click().run()
    assert not errors(at), errors(at)
    store = RunStore(runs_dir)

    def ended():
        runs = store.list()
        return bool(runs) and runs[0].status["state"] not in ("created", "running")

    assert wait_for(ended, timeout), runner.Runner(runs_dir).pending()
    return store.list()[0]


def test_pages_with_an_empty_run_store():
    at = app(TINY, page="train")
    assert at.button(key="start_training").disabled is False
    assert any("mnist_sample" in m.value or "MNIST" in m.value for m in at.markdown)
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception and any("No runs yet" in i.value for i in at.info)


def test_a_design_that_does_not_fit_the_data_can_be_fitted():
    at = app({**TINY, "input_shape": "32x32x3", "classes": "100"}, page="train")
    assert at.button(key="start_training").disabled is True
    at.button(key="fit_design").click().run()
    assert at.session_state["design"]["input_shape"] == [28, 28, 1]
    assert at.session_state["design"]["classes"] == 10
    assert at.button(key="start_training").disabled is False


@pytest.mark.slow
def test_a_short_training_run_completes_with_curves(runs_dir):
    at = app(TINY, page="train")
    at.number_input(key="train.subset").set_value(128)
    at.number_input(key="train.epochs").set_value(1)
    at.number_input(key="train.batch_size").set_value(32)
    at.button_group(key="train.backend").set_value(BACKEND)
    run = started_run(at, runs_dir, 240)
    assert run.status["state"] == "completed", run.status
    assert run.config["backend"] == BACKEND
    at.run()
    assert not at.exception
    assert any("completed" in m.value for m in at.markdown)
    assert any(c.value.startswith("The last run of this design trained at") for c in at.caption)
    chart = at.get("vega_lite_chart")[0].proto
    from streamlit import dataframe_util

    data = dataframe_util.convert_arrow_bytes_to_pandas_df(chart.datasets[0].data.data)
    assert {"train", "validation"} <= set(data["split"]) and len(data) >= 4
    assert any(b.proto.label.startswith("Download the trained model") for b in at.get("download_button"))
    at.toggle(key=f"try_{run.id}").set_value(True).run()  # loads model.keras with safe_mode=True
    assert not at.exception and not at.warning
    assert any(c.value.endswith("of 16 right.") for c in at.caption)
    assert len(at.image) == 16

    # Compare shows it, from the URL too; unknown or unsafe ids in the URL are ignored
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception and at.multiselect(key="compare.runs").value == [run.id]
    assert len(at.get("vega_lite_chart")) == 2
    table = at.dataframe[0].value
    assert table["parameters"][0] == count_params(build_resnet(Architecture.from_dict(run.config["architecture"])))[
        "trainable"]
    assert table["backend"][0] == runner.BACKENDS[BACKEND]
    other = new_app_test()
    other.query_params["runs"] = f"../../etc,{run.id},..%2Fx"
    other.run()
    other.switch_page("app_pages/compare.py").run()
    assert not other.exception and other.multiselect(key="compare.runs").value == [run.id]


def fake_running_run(runs_dir, run_id="fake-run"):
    run = RunStore(runs_dir).create({"architecture": get_preset("mnist_resnet", nb_blocks=1).to_dict(),
                                     "dataset": {"name": "mnist_sample", "subset": 64},
                                     "recipe": {"epochs": 2, "batch_size": 32}, "backend": BACKEND, "seed": 0},
                                    run_id=run_id)
    run.write_status(state="running", pid=os.getpid(), epochs=2)
    run.append_metrics({"event": "batch", "epoch": 0, "step": 1, "loss": 2.3, "accuracy": 0.1,
                        "images_per_second": 50.0, "time": time.time()})
    return run


def test_a_running_run_is_shown_live_and_can_be_cancelled(runs_dir):
    run = fake_running_run(runs_dir)  # "trained" by this process, so it reads as alive
    at = app(TINY, page="train")
    assert at.selectbox(key="train.view").value == run.id
    assert any("running" in m.value for m in at.markdown)
    assert at.get("vega_lite_chart"), "curves are drawn from the first batches"
    at.button(key=f"cancel_{run.id}").click().run()
    assert not at.exception
    assert run.cancel_requested


def test_unsafe_run_ids_never_leave_the_run_store(runs_dir, tmp_path):
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "config.json").write_text("{}")
    store = runner.Runner(runs_dir)
    for bad in ("../secret", "..", "/etc", "a/../../secret", "x" * 200, "", ".launch"):
        with pytest.raises(ValueError):
            store.get(bad)
        with pytest.raises(ValueError):
            store.log_tail(bad)
        with pytest.raises(ValueError):
            store.dismiss(bad)
    at = app(TINY, page="train")
    at.session_state["train.view"] = "../secret"
    at.run()
    assert not at.exception


def test_a_worker_that_dies_while_starting_is_reported(runs_dir):
    launch = runs_dir / runner.LAUNCH_DIR
    launch.mkdir(parents=True)
    (launch / "dead-run.json").write_text(json.dumps({"run_id": "dead-run", "pid": 2**22 + 12345,
                                                      "backend": BACKEND, "started": time.time()}))
    (launch / "dead-run.log").write_text("error: argument --dataset: invalid choice\n")
    (launch / "evil.json").write_text(json.dumps({"run_id": "../../etc", "pid": 1, "started": time.time()}))
    (launch / "..json").write_text("{}")  # its name is no run id: never offered, never dismissed
    pending = runner.Runner(runs_dir).pending()
    assert [(p["run_id"], p["state"]) for p in pending] == [("dead-run", "failed"), ("evil", "failed")]
    assert "launch record cannot be read: .launch/evil.json: run_id='../../etc'" in pending[1]["log"]
    at = app(TINY, page="train")
    assert any("invalid choice" in e for e in errors(at)) and any("evil.json" in e for e in errors(at))
    at.button(key="dismiss_dead-run").click().run()
    at.button(key="dismiss_evil").click().run()
    assert not (launch / "dead-run.json").exists() and not (launch / "evil.json").exists() and not errors(at)
    assert (launch / "..json").exists()


def test_streamlit_config_is_local_and_private():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "explorer" / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["maxUploadSize"] == uploads.MAX_ZIP_MB  # the server takes the Train page's zips


@pytest.mark.slow
def test_the_explorer_listens_on_this_machine_only_wherever_it_starts(tmp_path):
    """Started from a folder without a .streamlit/config.toml, it still binds 127.0.0.1."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
               "--server.headless", "true"]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "URL:" in line:
                break
        output = "".join(lines)
        assert f"127.0.0.1:{port}" in output or f"localhost:{port}" in output, output
        assert "Network URL" not in output and "0.0.0.0" not in output, output
    finally:
        process.terminate()
        process.wait(30)


def test_settings_survive_a_visit_to_another_page():
    at = app(TINY, page="train")
    at.number_input(key="train.epochs").set_value(7).run()
    at.switch_page("app_pages/design.py").run()
    at.switch_page("app_pages/train.py").run()
    assert at.number_input(key="train.epochs").value == 7


def test_the_run_picker_keeps_working_when_a_run_finishes(runs_dir):
    run = fake_running_run(runs_dir)
    at = app(TINY, page="train")
    labels = list(at.selectbox(key="train.view").options)
    run.write_status(state="completed")
    at.run()
    assert list(at.selectbox(key="train.view").options) == labels  # the browser answers with labels
    assert not at.warning and any("completed" in m.value for m in at.markdown)


def test_a_vector_design_is_drawn_and_explained():
    at = app({"input_shape": "784", "block": "dense", "stem.kind": "dense", "stem.kernel_size": "1",
              "pooling": "none", "pool_activation": "false", "stages": "2x64"})
    assert not errors(at) and metric(at, "Trainable parameters") == "28,442"
    at.switch_page("app_pages/train.py").run()
    assert not at.exception and any("vectors" in w.value for w in at.warning)
    assert at.button(key="start_training").disabled is True


def test_start_uses_the_settings_changed_in_the_same_interaction(monkeypatch):
    launched = []

    def launch(self, request, backend):
        launched.append((request, backend))
        return "recorded-run"

    monkeypatch.setattr(runner.Runner, "launch", launch)
    at = app(TINY, page="train")
    at.number_input(key="train.epochs").set_value(5)
    at.number_input(key="train.subset").set_value(64)
    at.button_group(key="train.backend").set_value("jax")
    at.radio(key="train.distribution").set_value("data_parallel")
    at.button(key="start_training").click().run()
    assert not at.exception
    (request, backend), = launched  # the library's request, handed to the worker whole
    assert (request.recipe.epochs, request.dataset.subset, backend) == (5, 64, "jax")
    assert request.distribution == "data_parallel"
    assert request.architecture == Architecture.from_dict(at.session_state["design"])


def test_the_default_run_is_the_first_minute_and_a_schedule_can_be_chosen(monkeypatch):
    """The first run uses the library's first-minute defaults (one home: keras_resnets.training.recipe);
    with "the recipe's" schedule, the recipe decides."""
    from keras_resnets.training import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe

    launched = []
    monkeypatch.setattr(runner.Runner, "launch", lambda self, request, backend: launched.append(request) or "r")
    at = app(TINY, page="train")
    at.button(key="start_training").click().run()
    at.selectbox(key="train.schedule").set_value("constant")
    at.button(key="start_training").click().run()
    assert not at.exception
    default, constant = launched
    assert (default.dataset.subset, default.dataset.validation_split) == (FIRST_MINUTE_SUBSET, VALIDATION_SPLIT)
    assert default.recipe == Recipe()
    assert constant.recipe == Recipe(schedule="constant")


def test_data_parallelism_on_pytorch_is_explained_before_it_starts():
    at = app(TINY, page="train")
    at.button_group(key="train.backend").set_value("torch")
    at.radio(key="train.distribution").set_value("data_parallel").run()
    assert not at.exception and any("torchrun" in w.value for w in at.warning)
    assert at.button(key="start_training").disabled is True


# -- the Train page's image folders and processes ------------------------------------------------
def folder_page(folder):
    """The Train page with ``folder`` typed as its data."""
    at = app(TINY, page="train")
    at.radio(key="train.source").set_value("folder").run()
    at.text_input(key="train.folder").input(str(folder)).run()
    return at


def test_an_image_folder_is_described_and_the_design_fitted_to_it(tmp_path):
    at = app(TINY, page="train")
    at.radio(key="train.source").set_value("folder").run()
    assert any(i.value.startswith("No image folder is chosen yet") for i in at.info)
    assert at.button(key="start_training").disabled is True
    folder = numbered_folder(tmp_path / "pets", per_class=4)
    at.text_input(key="train.folder").input(str(folder)).run()
    assert [s.value for s in at.success] == [
        "Found **3 classes** (cat, dog, emu) of 8×6×3 images: **11** to train on, **1** held out."]
    assert at.button(key="start_training").disabled is True  # the design takes 28×28×1 digits
    at.button(key="fit_design").click().run()
    assert (at.session_state["design"]["input_shape"], at.session_state["design"]["classes"]) == ([8, 6, 3], 3)
    assert at.button(key="start_training").disabled is False and not errors(at)
    assert any(f"on the image folder `{folder}`" in m.value for m in at.markdown)
    at.text_input(key="train.validation_folder").input(str(folder)).run()
    assert at.number_input(key="train.validation_split").disabled is True
    assert any("**12** to train on, **12** held out" in s.value for s in at.success)
    at.selectbox(key="train.transforms").set_value("imagenet").run()
    assert any("of 224×224×3 images" in s.value for s in at.success)
    assert at.button(key="start_training").disabled is True and at.button(key="fit_design")


def test_a_bad_folder_shows_the_librarys_message_and_cannot_start(tmp_path, monkeypatch):
    folder = numbered_folder(tmp_path / "pets", per_class=2)
    (folder / "dog" / "notes.png").write_text("not an image")
    at = folder_page(folder)
    assert any(e.startswith(f"dataset={str(folder)!r} is not allowed: a folder of readable JPEG and PNG images; "
                            "1 files are not") for e in errors(at)), errors(at)
    assert at.button(key="start_training").disabled is True
    assert not any("Cannot train yet" in w.value for w in at.warning)  # said once, under the folder
    at.text_input(key="train.folder").input(str(tmp_path / "nope")).run()
    assert any("a dataset name or the path of an existing folder" in e for e in errors(at))
    assert at.button(key="start_training").disabled is True
    # a folder typed in the interaction that clicks Start (the button was drawn before) is checked too
    launched = []
    monkeypatch.setattr(runner.Runner, "launch", lambda self, request, backend: launched.append(request) or "r")
    (folder / "dog" / "notes.png").unlink()
    at.text_input(key="train.folder").input(str(folder)).run()
    at.button(key="fit_design").click().run()
    at.text_input(key="train.folder").input(str(tmp_path / "nope"))
    at.button(key="start_training").click().run()
    assert not launched and any(e.startswith("Cannot start: dataset=") for e in errors(at))


def test_an_uploaded_zip_is_extracted_into_the_run_store_and_described(runs_dir, tmp_path):
    folder = numbered_folder(tmp_path / "pets", per_class=2)
    data = zipped({str(p.relative_to(tmp_path)): p.read_bytes() for p in folder.rglob("*.png")})
    at = app(TINY, page="train")
    at.radio(key="train.source").set_value("upload").run()
    at.file_uploader(key="train.zip").upload("pets.zip", data, "application/zip").run()
    extracted = Path(at.session_state["train.uploaded"])
    assert extracted.name == "pets" and extracted.parent.parent == runs_dir / uploads.UPLOADS
    assert any(s.value.startswith("Found **3 classes** (cat, dog, emu)") for s in at.success)
    at.file_uploader(key="train.zip").upload("evil.zip", zipped({"../evil.png": b"x"}), "application/zip").run()
    assert any(e.startswith("evil.zip is refused: it holds '../evil.png', a path that leads out") for e in errors(at))
    assert "train.uploaded" not in at.session_state and at.button(key="start_training").disabled is True


def test_processes_are_asked_for_and_checked_by_the_library(monkeypatch):
    launched = []
    monkeypatch.setattr(runner.Runner, "launch", lambda self, request, backend: launched.append(request) or "r")
    at = app(TINY, page="train")
    assert at.number_input(key="train.processes").value == 1
    at.number_input(key="train.processes").set_value(2)
    at.number_input(key="train.batch_size").set_value(15).run()
    assert any("--batch-size=15 is the global batch and must be a multiple of --processes=2" in w.value
               for w in at.warning)
    assert at.button(key="start_training").disabled is True
    at.number_input(key="train.batch_size").set_value(16).run()
    at.button(key="start_training").click().run()
    assert not at.exception and not errors(at)
    request, = launched
    assert (request.processes, request.recipe.batch_size) == (2, 16)  # the library's request
    assert any("in 2 worker processes that train together" in m.value for m in at.markdown)


@pytest.mark.slow
def test_two_processes_train_an_image_folder_and_the_page_follows_them(runs_dir, tmp_path):
    """A real 2-process run, started from the page, of the lecture's tiny network on 24 images of 8×6."""
    folder = numbered_folder(tmp_path / "pets", per_class=8)
    at = folder_page(folder)
    at.button(key="fit_design").click().run()
    at.number_input(key="train.epochs").set_value(1)
    at.number_input(key="train.batch_size").set_value(4)
    at.number_input(key="train.validation_split").set_value(0.25)
    at.number_input(key="train.processes").set_value(2)
    at.button_group(key="train.backend").set_value(BACKEND)
    run = started_run(at, runs_dir, 120)
    assert run.status["state"] == "completed", (run.status, (run.path / "logs" / "process-1.log").read_text())
    assert (run.config.processes, run.config.engine, run.config.dataset.name) == (2, ENGINES[BACKEND], str(folder))
    assert (run.path / "logs" / "process-1.log").exists()
    at.run()
    assert not at.exception and any("completed" in m.value and "in 2 processes" in m.value for m in at.markdown)
    assert at.get("vega_lite_chart"), "process 0 wrote the curves"
    assert any("several processes make no probes" in c.value for c in at.caption)


@pytest.mark.slow
def test_cancel_stops_every_process_of_a_run(runs_dir, tmp_path):
    """Cancel asks process 0 to stop after its batch; the launcher then stops the others and ends."""
    folder = numbered_folder(tmp_path / "pets", per_class=8)
    design = get_preset("mnist_resnet", nb_blocks=1, nb_channels=4, input_shape=(8, 6, 3), classes=3)
    request = runner.TrainRequest(dataset=str(folder), subset=None, validation_split=0.25, epochs=500, batch_size=4,
                                  processes=2, backend=BACKEND)
    store = runner.Runner(runs_dir)
    run_id = store.launch(request.training_request(design), request.backend)
    launcher = runner.LaunchRecord.read(runs_dir / runner.LAUNCH_DIR / f"{run_id}.json").pid

    def pids():
        """The processes that train the run, as each wrote at the top of its log."""
        text = "".join(log.read_text() for log in (runs_dir / run_id / "logs").glob("process-*.log"))
        return [int(pid) for pid in re.findall(r"^process \d+ of 2: pid (\d+)", text, re.MULTILINE)]

    def training():
        return len(pids()) == 2 and any(e["event"] == "epoch" for e in store.get(run_id).metrics())

    assert wait_for(training, 120, step=0.2), (store.pending(), store.log_tail(run_id))
    store.cancel(run_id)
    asked = time.monotonic()
    assert wait_for(lambda: not store.pending() and not process_alive(launcher), 60, step=0.2)
    assert store.get(run_id).status["state"] == "cancelled"
    assert not [pid for pid in pids() if process_alive(pid)]
    assert time.monotonic() - asked < 30  # the launcher's grace for the others, then SIGTERM and SIGKILL
