"""The explorer's second-round controls (issue 19): PyTorch export, the claims scoreboard,
seed groups and chart/table exports on Compare. AppTest, on the test's KERAS_BACKEND."""

import pytest

pytest.importorskip("streamlit")
alt = pytest.importorskip("altair")

import pandas as pd  # noqa: E402
from streamlit import dataframe_util  # noqa: E402
from test_explorer import TINY, app  # noqa: E402

from explorer.experiment_runner import EXPERIMENTS_DIR, ExperimentRunner  # noqa: E402
from keras_resnets.experiments import EXPERIMENTS, Result  # noqa: E402
from keras_resnets.experiments.store import ExperimentStore  # noqa: E402
from keras_resnets.training import TrainingRequest  # noqa: E402

pytestmark = pytest.mark.usefixtures("runs_dir")


# -- Export ------------------------------------------------------------------------------------
def test_export_offers_the_pytorch_module():
    at = app(TINY, page="export")
    labels = {b.proto.label for b in at.get("download_button")}
    assert "PyTorch module (.py)" in labels


def test_export_explains_why_a_highway_design_has_no_pytorch_module():
    at = app({"preset": "highway_net"}, page="export")
    assert "PyTorch module (.py)" not in {b.proto.label for b in at.get("download_button")}
    assert any("not supported by the PyTorch export" in i.value for i in at.info)


# -- Experiments: the claims scoreboard ----------------------------------------------------------
def _stored_result(runs_dir, name, summary):
    run = ExperimentStore(runs_dir / EXPERIMENTS_DIR).create(name)
    data = pd.DataFrame({"x": [1]})
    run.save(Result(data, alt.Chart(data).mark_point(), summary))
    run.write_status(state="completed", name=name, size="quick", seed=0, backend="jax", pid=None)
    return run


def test_experiments_page_opens_on_the_scoreboard_of_the_seven_claims(runs_dir):
    _stored_result(runs_dir, "highway", {"plain_loss_increase": 1.2, "highway_loss_increase": 0.01})
    at = app(page="experiments")
    board = at.table[0].value
    assert list(board.index) == [e.title for e in EXPERIMENTS.values()]
    assert list(board.columns) == ["verdict", "measured (quick)", "criterion", "the paper"]
    assert board.loc[EXPERIMENTS["highway"].title, "verdict"] == "✓ agrees"
    assert (board.drop(EXPERIMENTS["highway"].title).verdict == "· not yet run").all()
    assert any("1 of 1 claims measured at the quick size agree" in c.value for c in at.caption)


def test_run_all_launches_every_experiment_at_the_quick_size(monkeypatch):
    calls = []
    monkeypatch.setattr(ExperimentRunner, "launch",
                        lambda self, *args, starting: calls.append((*args, starting)) or f"id{len(calls)}")
    at = app(page="experiments")
    at.button(key="experiments.run_all").click().run()
    assert not at.exception
    assert [c[:2] for c in calls] == [(name, "quick") for name in EXPERIMENTS]
    assert [c[-1] for c in calls] == list(range(len(EXPERIMENTS), 0, -1))  # they share the cores


# -- Compare: seed groups and exports --------------------------------------------------------------
def _completed_run(runs_dir, run_id, seed, accuracies, **changes):
    from keras_resnets import get_preset
    from keras_resnets.runs.store import RunStore

    config = {"architecture": get_preset("mnist_resnet", nb_blocks=1, nb_channels=4).to_dict(),
              "dataset": {"name": "mnist_sample", "subset": 64, "validation_split": 0.25},
              "recipe": {"optimizer": "adam", "learning_rate": 0.001, "momentum": 0.9, "weight_decay": 0.0,
                         "epochs": 2, "batch_size": 32, "warmup_epochs": 0, "schedule": "constant"},
              "backend": "jax", "distribution": "none", "seed": seed, **changes}
    run = RunStore(runs_dir).create(config, run_id=run_id)
    for epoch, accuracy in enumerate(accuracies):
        run.append_metrics({"event": "epoch", "epoch": epoch, "step": 2 * (epoch + 1), "loss": 1.0 - accuracy,
                            "accuracy": accuracy, "val_loss": 1.0 - accuracy, "val_accuracy": accuracy,
                            "seconds": 1.0})
    run.write_status(state="completed", epoch=len(accuracies), epochs=len(accuracies), pid=None)
    return run


@pytest.fixture
def seed_runs(runs_dir):
    runs = [_completed_run(runs_dir, f"2025010{i}-seed{i}", i, [0.5, a]) for i, a in enumerate((0.7, 0.8, 0.9))]
    runs.append(_completed_run(runs_dir, "20250104-torch", 0, [0.4, 0.6], backend="torch"))
    return runs


def test_compare_groups_seeds_with_mean_and_std(seed_runs):
    at = app(page="compare")
    at.multiselect(key="compare.runs").set_value([r.id for r in seed_runs]).run()
    table = at.dataframe[0].value
    assert list(table["seeds"]) == [3, 1]
    assert table["best val. accuracy"][0] == pytest.approx(0.8)
    assert table["best val. accuracy ± std"][0] == pytest.approx(0.1)
    chart = at.get("vega_lite_chart")
    assert len(chart) == 2 and all('"area"' in c.proto.spec for c in chart)
    data = dataframe_util.convert_arrow_bytes_to_pandas_df(chart[0].proto.datasets[0].data.data)
    assert data["label"].str.endswith(" · 3 seeds").sum() == 4  # train and validation, 2 epochs
    assert set(data["count"]) == {1, 3}
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Table (CSV)" in labels
    from explorer import charts

    if charts.can_export_images():
        assert {"Accuracy chart (PNG)", "Loss chart (PNG)"} <= labels
        at.button_group(key="compare.image_format").set_value("svg").run()
        assert "Accuracy chart (SVG)" in {b.proto.label for b in at.get("download_button")}
    else:
        assert any("vl-convert-python" in c.value for c in at.caption)
    at.toggle(key="compare.group_seeds").set_value(False).run()
    assert not at.exception and len(at.dataframe[0].value) == 4
    assert all('"area"' not in c.proto.spec for c in at.get("vega_lite_chart"))


def test_single_epoch_runs_open_with_their_batch_curves(runs_dir):
    for seed in (0, 1):
        _completed_run(runs_dir, f"2025010{seed}-one-epoch", seed, [0.6 + seed / 10])
    at = app(page="compare")
    assert at.toggle(key="compare.batches").value is True  # the first minute's runs: one epoch
    _completed_run(runs_dir, "20250103-two-epochs", 2, [0.5, 0.7])
    at = app(page="compare")
    assert at.toggle(key="compare.batches").value is False and not at.exception


def test_run_seeds_launches_new_seeds_of_the_chosen_run(seed_runs, monkeypatch):
    from explorer import runner

    launched = []
    monkeypatch.setattr(runner.Runner, "launch",
                        lambda self, request, backend, starting: launched.append((request, backend, starting))
                        or f"new{len(launched)}")
    at = app(page="compare")
    at.multiselect(key="compare.runs").set_value([seed_runs[0].id]).run()
    assert at.selectbox(key="compare.seed_source").value == seed_runs[0].id
    at.number_input(key="compare.seed_count").set_value(2).run()
    assert at.button(key="compare.seed_button").label == "Run 2 seeds"  # says what a click starts
    at.button(key="compare.seed_button").click().run()
    assert not at.exception and not at.error
    assert [(request.seed, starting) for request, _, starting in launched] == [(3, 2), (4, 1)]  # share the cores
    source = TrainingRequest.from_config(seed_runs[0].config)  # the run's own request, a new seed
    assert [request.replace(seed=source.seed) for request, _, _ in launched] == [source] * 2
    assert {backend for _, backend, _ in launched} == {"jax"}
