"""The claims scoreboard: each experiment's criterion, judged on summaries that agree with the
paper and on summaries that do not, and the scoreboard read from an experiment store."""

import altair as alt
import pandas as pd
import pytest

from keras_resnets.experiments import EXPERIMENTS, Result
from keras_resnets.experiments.scoreboard import VERDICTS, judge, scoreboard
from keras_resnets.experiments.store import ExperimentStore

# experiment -> (a summary that agrees with the paper, one that does not)
SUMMARIES = {
    "plain_vs_residual": ({"plain_error_increase": 0.25, "residual_error_increase": -0.02},
                          {"plain_error_increase": 0.01, "residual_error_increase": 0.03}),
    "shattered_gradients": ({"lag1_1_layer": 0.99, "lag1_resnet": 0.6, "lag1_24_layer": 0.05},
                            {"lag1_1_layer": 0.99, "lag1_resnet": 0.04, "lag1_24_layer": 0.05}),
    "looks_linear": ({"accuracy_drop_relu": 0.3, "accuracy_drop_crelu_ll": 0.01},
                     {"accuracy_drop_relu": 0.01, "accuracy_drop_crelu_ll": 0.2}),
    "ensembles": ({"drop_one_block_resnet": 0.01, "drop_one_block_plain": 0.6, "gradient_path_length": 2,
                   "median_path_length": 5.0},
                  {"drop_one_block_resnet": 0.01, "drop_one_block_plain": 0.6, "gradient_path_length": 7,
                   "median_path_length": 5.0}),
    "stochastic_depth": ({"time_ratio": 0.8, "test_error_constant": 0.1, "test_error_stochastic": 0.09},
                         {"time_ratio": 1.23, "test_error_constant": 0.178, "test_error_stochastic": 0.129}),
    "highway": ({"plain_loss_increase": 1.5, "highway_loss_increase": 0.02},
                {"plain_loss_increase": 0.01, "highway_loss_increase": 0.02}),
    "gradient_norms": ({"log10_ratio_resnet_bn": 0.3, "log10_ratio_plain_bn": 2.5},
                       {"log10_ratio_resnet_bn": -3.0, "log10_ratio_plain_bn": 2.5}),
}


def test_every_experiment_has_a_criterion_with_the_paper_and_a_test():
    assert sorted(SUMMARIES) == sorted(EXPERIMENTS)
    for experiment in EXPERIMENTS.values():
        assert len(experiment.criterion.paper) > 40 and len(experiment.criterion.test) > 20


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_criterion_tells_agreement_from_disagreement(name):
    agrees, disagrees = SUMMARIES[name]
    measured, verdict = judge(EXPERIMENTS[name], agrees)
    assert verdict == "agrees" and measured
    assert judge(EXPERIMENTS[name], disagrees)[1] == "does not agree"
    assert judge(EXPERIMENTS[name], {"points": 3})[1] == "cannot be judged"


def _store_run(store, name, summary, size="quick", state="completed"):
    run = store.create(name)
    data = pd.DataFrame({"x": [1]})
    run.save(Result(data, alt.Chart(data).mark_point(), summary))
    run.write_status(state=state, name=name, size=size, seed=3, backend="jax", pid=None)
    return run


def test_the_scoreboard_reads_the_newest_completed_run_at_the_size(tmp_path):
    store = ExperimentStore(tmp_path)
    agrees, disagrees = SUMMARIES["highway"]
    _store_run(store, "highway", agrees)
    newest = _store_run(store, "highway", disagrees)
    _store_run(store, "highway", agrees, size="full")
    _store_run(store, "looks_linear", SUMMARIES["looks_linear"][0], state="failed")
    board = scoreboard(store, "quick").set_index("claim")
    assert list(board.index) == [e.title for e in EXPERIMENTS.values()]
    highway = board.loc[EXPERIMENTS["highway"].title]
    assert (highway.verdict, highway.result, highway.backend, highway.seed) == ("does not agree", newest.id, "jax", 3)
    assert "plain +0.010, highway +0.020" in highway.measured
    assert set(board.verdict) <= set(VERDICTS)
    assert board.loc[EXPERIMENTS["looks_linear"].title].verdict == "not yet run"
    assert scoreboard(store, "full").set_index("claim").loc[EXPERIMENTS["highway"].title].verdict == "agrees"
