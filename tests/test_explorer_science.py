"""The explorer's second-round controls (issue 19): PyTorch export, the claims scoreboard,
seed groups and chart/table exports on Compare. AppTest, on the test's KERAS_BACKEND."""

import pytest

pytest.importorskip("streamlit")
alt = pytest.importorskip("altair")

import pandas as pd  # noqa: E402
from test_explorer import TINY, app, runs_dir  # noqa: E402,F401  (runs_dir: an empty store per test)

from explorer.experiment_runner import EXPERIMENTS_DIR, ExperimentRunner  # noqa: E402
from keras_resnets.experiments import EXPERIMENTS, Result  # noqa: E402
from keras_resnets.experiments.store import ExperimentStore  # noqa: E402


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
    board = at.dataframe[0].value.set_index("claim")
    assert list(board.index) == [e.title for e in EXPERIMENTS.values()]
    assert board.loc[EXPERIMENTS["highway"].title, "verdict"] == "✅ agrees"
    assert (board.drop(EXPERIMENTS["highway"].title).verdict == "⏳ not yet run").all()
    assert any("1 of 1 claims measured at the quick size agree" in c.value for c in at.caption)


def test_run_all_launches_every_experiment_at_the_quick_size(monkeypatch):
    calls = []
    monkeypatch.setattr(ExperimentRunner, "launch", lambda self, *args: calls.append(args) or f"id{len(calls)}")
    at = app(page="experiments")
    at.button(key="experiments.run_all").click().run()
    assert not at.exception
    assert [c[:2] for c in calls] == [(name, "quick") for name in EXPERIMENTS]
