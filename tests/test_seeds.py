"""Seed groups (explorer/seeds.py): which runs group, their mean and standard deviation, the
band frame of the Compare chart, and the request that trains a run again with a new seed."""

import math
from types import SimpleNamespace

import pandas as pd
import pytest

pytest.importorskip("altair")

from explorer import charts, seeds  # noqa: E402
from keras_resnets import presets  # noqa: E402
from keras_resnets.data.spec import DataSpec  # noqa: E402
from keras_resnets.runs.records import RunConfig  # noqa: E402
from keras_resnets.training import Recipe, TrainingRequest  # noqa: E402

CONFIG = {"architecture": presets.mnist_resnet(4, 3, 1).to_dict(),
          "dataset": DataSpec("mnist_sample", subset=256, validation_split=0.2).to_dict(),
          "recipe": Recipe.paper().replace(epochs=2).to_dict(),
          "backend": "jax", "distribution": "none", "seed": 0, "created": "t", "versions": {"keras": "3"}}


def fake_run(run_id, seed, accuracies, **changes):
    """A run of ``CONFIG`` (8 steps an epoch) with these validation accuracies, and a batch event
    every 4 steps."""
    events = []
    for e, a in enumerate(accuracies):
        events += [{"event": "batch", "epoch": e, "step": 8 * e + s, "loss": 2.0 / (e + 1 + seed),
                    "accuracy": a - 0.1} for s in (4, 8)]
        events.append({"event": "epoch", "epoch": e, "step": 8 * (e + 1), "loss": 1.0 / (e + 1 + seed),
                       "accuracy": a - 0.05, "val_accuracy": a, "val_loss": 1.0})
    config = RunConfig.from_dict({**CONFIG, "seed": seed, "created": run_id, **changes})
    return SimpleNamespace(id=run_id, config=config, metrics=lambda: events)


def test_runs_that_differ_only_by_seed_are_one_group():
    runs = [fake_run("a", 0, [0.5]), fake_run("b", 1, [0.6]), fake_run("c", 0, [0.5], backend="torch"),
            fake_run("d", 2, [0.7], versions={"keras": "4"})]
    assert [[r.id for r in g] for g in seeds.group(runs)] == [["a", "b", "d"], ["c"]]
    other_recipe = {**CONFIG["recipe"], "learning_rate": 0.5}
    assert len(seeds.group([runs[0], fake_run("e", 1, [0.6], recipe=other_recipe)])) == 2


def test_mean_and_sample_standard_deviation():
    assert seeds.mean_and_std([0.8, 0.9, None, 1.0]) == (0.9, 0.1)
    assert seeds.mean_and_std([0.5]) == (0.5, None)
    assert seeds.mean_and_std([None]) == (None, None)


def test_group_row_gives_mean_and_std_of_the_summarised_columns():
    rows = [{"run": "r", "id": f"id{i}", "state": "completed", "epochs": "2/2", "best val. accuracy": acc,
             "final train loss": loss, "time per epoch (s)": 2.0, "backend": "JAX", "parameters": 100}
            for i, (acc, loss) in enumerate([(0.90, 0.3), (0.94, 0.1)])]
    row = seeds.group_row(rows)
    assert row["seeds"] == 2 and row["parameters"] == 100 and row["ids"] == "id0 id1"
    assert row["best val. accuracy"] == pytest.approx(0.92)
    assert row["best val. accuracy ± std"] == pytest.approx(math.sqrt(2 * 0.02**2))
    assert row["final train loss ± std"] == pytest.approx(math.sqrt(2 * 0.1**2))
    assert row["time per epoch (s) ± std"] == 0.0


def test_bands_are_mean_plus_and_minus_std_per_epoch():
    runs = [fake_run("a", 0, [0.5, 0.7]), fake_run("b", 1, [0.7, 0.9])]
    frame = pd.concat([charts.curve_frame(r.metrics(), r.id, "group", r.config) for r in runs])
    bands = seeds.bands(frame)
    val = bands[(bands.metric == "accuracy") & (bands.split == "validation")].set_index("epoch")
    assert list(val.index) == [1.0, 2.0] and list(val["count"]) == [2, 2]
    assert val.loc[2.0, "mean"] == pytest.approx(0.8)
    assert val.loc[2.0, "high"] - val.loc[2.0, "low"] == pytest.approx(2 * math.sqrt(0.02))
    assert set(bands["granularity"]) == {"epoch"}


def test_batch_bands_follow_the_logged_steps_of_the_seeds():
    runs = [fake_run("a", 0, [0.5, 0.7]), fake_run("b", 1, [0.7, 0.9])]
    frame = pd.concat([charts.curve_frame(r.metrics(), r.id, "group", r.config) for r in runs])
    bands = seeds.bands(frame, batches=True)
    batch = bands[(bands.granularity == "batch") & (bands.metric == "accuracy")].set_index("epoch")
    assert list(batch.index) == [0.5, 1.0, 1.5, 2.0] and set(batch["count"]) == {2}
    assert batch.loc[1.5, "mean"] == pytest.approx(0.7) and batch.loc[1.5, "std"] == pytest.approx(math.sqrt(0.02))
    loss = bands[(bands.granularity == "batch") & (bands.metric == "loss")].set_index("epoch")
    assert loss.loc[0.5, "mean"] == pytest.approx((2.0 + 1.0) / 2)
    chart = charts.seed_bands(bands, "accuracy").to_dict()
    layers = chart["layer"]
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers] == [
        "area", "line", "area", "line"]
    filters = [layer["transform"][0]["filter"] for layer in layers]
    # thin: the logged steps; bold: the epochs and the held-out probes between them
    assert ["=== 'batch'" in str(f) for f in filters] == [True, True, False, False]
    assert ["!== 'batch'" in str(f) for f in filters] == [False, False, True, True]


def test_a_replica_trains_the_same_request_with_a_new_seed():
    request = seeds.replica_request(RunConfig.from_dict(CONFIG), seed=7)
    assert request.to_dict() == {**TrainingRequest.from_config(CONFIG).to_dict(), "seed": 7}
    assert request.recipe.to_dict() == CONFIG["recipe"] and request.dataset.subset == 256
    replica = {**CONFIG, **request.to_dict(), "created": "t2"}  # what its worker writes
    assert seeds.group_key(replica) == seeds.group_key(CONFIG)
    folder = {**CONFIG, "dataset": {"name": "/data/pets", "validation_split": 0.0, "validation_dataset": "/data/val",
                                    "augment": True}, "processes": 2, "engine": "jax.distributed"}
    replica = seeds.replica_request(RunConfig.from_dict(folder), seed=7)
    assert (replica.dataset.name, replica.dataset.validation_dataset, replica.dataset.transforms, replica.processes,
            replica.seed) == ("/data/pets", "/data/val", "cifar", 2, 7)  # a config names cifar "augment"
    assert seeds.next_seeds([fake_run("a", 0, []), fake_run("b", 4, [])], 2) == [5, 6]


def test_charts_export_as_png_and_svg():
    pytest.importorskip("vl_convert")  # the explorer extra installs it
    frame = charts.curve_frame(fake_run("a", 0, [0.5, 0.7]).metrics(), "a")
    chart = charts.learning_curves(frame, "accuracy")
    assert charts.image(chart, "png").startswith(b"\x89PNG")
    svg = charts.image(chart, "svg")
    assert svg.startswith(b"<svg") and b"Accuracy" in svg
    with pytest.raises(ValueError, match="fmt='gif' is not allowed"):
        charts.image(chart, "gif")
