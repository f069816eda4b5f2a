"""Tests of keras_resnets.training on the current backend: run files, determinism, exact
resume, cancel, Ctrl-C, NaN stop and bad input. Tiny runs: 4 steps of 32 digits per epoch."""

import json
import math
import os
import shutil
import signal

import keras
import numpy as np
import pytest

from keras_resnets import build_resnet, presets
from keras_resnets.runs.store import RunStore
from keras_resnets.training import (
    Callback,
    Recipe,
    CosineSchedule,
    StepSchedule,
    TrainingRequest,
    compile_model,
    make_schedule,
    resume,
    train,
)

# Stochastic depth on, so that exact resume covers the random draws too.
ARCH = presets.mnist_resnet(nb_channels=4, nb_blocks=2, final_survival_probability=0.5)
# 4 training steps and 2 validation batches of 32 per epoch (no odd-sized batch to compile).
RUN = {"dataset": "mnist_sample", "subset": 128, "validation_split": 0.0064, "epochs": 2,
       "batch_size": 32, "schedule": "step"}
TIMING = {"time", "seconds", "images_per_second"}


def _values(run):
    """The metrics without the timings, which differ from run to run."""
    return [{k: v for k, v in event.items() if k not in TIMING} for event in run.metrics()]


def _assert_same_metrics(run, expected, rel):
    got, want = _values(run), _values(expected)
    assert [e["event"] for e in got] == [e["event"] for e in want]
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=rel, abs=1e-7), (key, a, b)
            else:
                assert a[key] == b[key], (key, a, b)


class CancelAfterFirstEpoch(Callback):
    def on_begin(self, run, info):
        self.run = run

    def on_epoch(self, event):
        if event["epoch"] == 0:
            self.run.request_cancel()


class CtrlC(Callback):
    def on_begin(self, run, info):
        raise KeyboardInterrupt


class SigtermsAtFirstStep(Callback):
    """Sends this process ``count`` SIGTERMs at the end of the first step; notes every step."""

    def __init__(self, count):
        self.count, self.steps = count, []

    def on_batch(self, event):
        self.steps.append(event["step"])
        if len(self.steps) == 1:
            for _ in range(self.count):
                os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def baseline(store):
    return train(ARCH, runs_dir=store.root, run_id="baseline", **RUN)


@pytest.fixture(scope="module")
def cancelled(store):
    """A run cancelled after its first epoch, and a copy of it."""
    run = train(ARCH, runs_dir=store.root, run_id="cancelled",
                callbacks=[CancelAfterFirstEpoch()], **RUN)
    shutil.copytree(run.path, store.root / "copy")
    return run


def test_run_files(baseline):
    config = json.loads((baseline.path / "config.json").read_text())
    assert set(config) == {"architecture", "dataset", "recipe", "backend", "versions", "seed",
                           "distribution", "created"}
    assert config["distribution"] == "none"
    assert config["architecture"] == ARCH.to_dict()
    assert config["dataset"] == {"name": "mnist_sample", "subset": 128,
                                 "validation_split": 0.0064, "data_dir": None, "augment": False}
    assert config["recipe"] == Recipe(epochs=2, batch_size=32, schedule="step").to_dict()
    assert config["backend"] == keras.backend.backend() and config["seed"] == 0
    assert config["versions"]["keras"] == keras.__version__
    status = baseline.status
    assert (status["state"], status["epoch"], status["epochs"]) == ("completed", 2, 2)
    assert isinstance(status["pid"], int) and "MNIST" in status["data_source"]
    assert status["dtype_policy"] == "float32"  # this suite's pin (conftest)
    events = baseline.metrics()
    batches = [e for e in events if e["event"] == "batch"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["step"] for e in batches] == list(range(1, 9))
    assert [e["epoch"] for e in batches] == [0] * 4 + [1] * 4
    assert set(batches[0]) == {"event", "epoch", "step", "loss", "accuracy",
                               "images_per_second", "time"}
    assert all(e["images_per_second"] > 0 and 0 <= e["accuracy"] <= 1 for e in batches)
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert set(epochs[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                              "seconds"}
    # the step schedule divides the rate by 10 at 50% of the steps
    rate = Recipe().learning_rate
    assert [e["learning_rate"] for e in epochs] == pytest.approx([rate, rate / 10])
    assert epochs[1]["loss"] == batches[-1]["loss"]
    # held-out probes between epoch ends, on the same 64 held-out digits each time
    probes = [e for e in events if e["event"] == "probe"]
    assert [e["step"] for e in probes] == [1, 2, 3, 5, 6, 7]
    assert all(e["images"] == 64 and 0 <= e["val_accuracy"] <= 1 and e["val_loss"] > 0
               for e in probes)
    assert status["num_validation"] == 64 and status["num_train"] == 128
    assert status["phase"] is None
    names = sorted(p.name for p in baseline.path.iterdir())
    assert names == [".lock-guard", "checkpoint.previous.weights.h5", "checkpoint.weights.h5",
                     "config.json", "metrics.jsonl", "model.keras", "status.json"]
    model = baseline.load_model()
    images = np.zeros((2, *ARCH.input_shape), "float32")
    assert keras.ops.convert_to_numpy(model(images)).shape == (2, 10)


def test_a_request_trains_as_the_keyword_arguments_do_and_reads_back_equal(store, baseline):
    """`train`'s keywords build a `TrainingRequest`; config.json holds it and reads back equal."""
    request = TrainingRequest.build(ARCH, **RUN)
    assert TrainingRequest.from_config(baseline.config) == request
    typed = train(request, runs_dir=store.root, run_id="typed")
    assert TrainingRequest.from_config(store.get("typed").config) == request
    assert {k: v for k, v in typed.config.items() if k != "created"} == {
        k: v for k, v in baseline.config.items() if k != "created"}
    assert _values(typed) == _values(baseline)
    with pytest.raises(ValueError, match="epochs, subset cannot go with a TrainingRequest"):
        train(request, runs_dir=store.root, epochs=3, subset=64)


def test_same_seed_same_metrics(baseline, cancelled):
    """The cancelled run's first epoch is a fresh run of the same seed."""
    first = [e for e in _values(cancelled) if e["epoch"] == 0]
    assert first == [e for e in _values(baseline) if e["epoch"] == 0]


def test_cancel_stops_at_once_and_keeps_the_epoch(cancelled):
    status = cancelled.status
    assert (status["state"], status["epoch"]) == ("cancelled", 1)
    assert "checkpoint of epoch 1" in status["message"]
    assert [e["event"] for e in cancelled.metrics()][-1] == "epoch"
    assert cancelled.checkpoint_path.exists() and not cancelled.model_path.exists()


def test_resume_reaches_the_uninterrupted_result(cancelled, baseline):
    resumed = resume(cancelled.id, runs_dir=cancelled.path.parent)
    assert resumed.status["state"] == "completed" and not resumed.cancel_requested
    _assert_same_metrics(resumed, baseline, rel=1e-5)
    with pytest.raises(ValueError, match="completed"):
        resume(resumed.path)


def test_nan_stops_and_keeps_the_last_good_checkpoint(store, cancelled):
    run = store.get("copy")
    config = json.loads((run.path / "config.json").read_text())
    config["recipe"]["learning_rate"] = 1e30  # the second epoch diverges
    (run.path / "config.json").write_text(json.dumps(config))
    checkpoint = run.checkpoint_path.read_bytes()
    run = resume(run.path)
    status = run.status
    assert (status["state"], status["epoch"]) == ("failed", 1)
    assert "diverged" in status["message"] and "checkpoint of epoch 1 is kept" in status["message"]
    assert run.checkpoint_path.read_bytes() == checkpoint and not run.model_path.exists()
    assert all(math.isfinite(value) for e in run.metrics() for value in e.values()
               if isinstance(value, float))


def test_ctrl_c_marks_the_run_interrupted(store):
    with pytest.raises(KeyboardInterrupt):
        train(ARCH, runs_dir=store.root, run_id="ctrl-c", callbacks=[CtrlC()], **RUN)
    status = store.get("ctrl-c").status
    assert status["state"] == "interrupted" and "resume" in status["message"]


@pytest.mark.parametrize("count, raised", [(1, "signal 15$"), (2, "second time")])
def test_sigterm_stops_before_the_next_step_and_a_second_one_at_once(store, count, raised):
    handler = signal.getsignal(signal.SIGTERM)
    sigterms = SigtermsAtFirstStep(count)
    with pytest.raises(KeyboardInterrupt, match=raised):
        train(ARCH, runs_dir=store.root, run_id=f"sigterm-{count}", callbacks=[sigterms], **RUN)
    assert sigterms.steps == [1]
    assert store.get(f"sigterm-{count}").status["state"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) is handler


def test_resume_refuses_running_runs_and_other_backends(store, baseline):
    running = store.create(baseline.config, run_id="running")
    running.write_status(state="running", pid=__import__("os").getpid())
    with pytest.raises(ValueError, match="running"):
        resume("running", runs_dir=store.root)
    other = store.create({**baseline.config, "backend": "other"}, run_id="other-backend")
    other.write_status(state="interrupted")
    with pytest.raises(ValueError, match="KERAS_BACKEND=other"):
        resume(other.id, runs_dir=store.root)


@pytest.mark.parametrize("kwargs, name", [
    ({"dataset": "imagenet_tiny"}, "dataset"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"learning_rate": float("inf")}, "learning_rate"),
    ({"learning_rate": "0.1"}, "learning_rate"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"momentum": 1.0}, "momentum"),
    ({"weight_decay": -1e-4}, "weight_decay"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"warmup_epochs": 2}, "warmup_epochs"),
    ({"schedule": "cyclic"}, "schedule"),
    ({"recipe": {"epochs": 1, "lr": 0.1}}, "recipe"),
    ({"recipe": "fast"}, "recipe"),
    ({"architecture": presets.cifar_resnet(20)}, "input_shape"),
    ({"architecture": ARCH.replace(classes=100)}, "classes"),
    ({"architecture": ARCH.replace(include_top=False, pooling=None)}, "include_top"),
    ({"architecture": {"name": "x", "nb_blocks": 3}}, "architecture"),
    ({"seed": -1}, "seed"),
    ({"callbacks": [print]}, "callbacks"),
    ({"verbose": 3}, "verbose"),
    ({"run_id": "../escape"}, "run_id"),
])
def test_bad_input_raises_value_error_naming_it(tmp_path, kwargs, name):
    kwargs = {"architecture": ARCH, **RUN, **kwargs}
    with pytest.raises(ValueError, match=name):
        train(kwargs.pop("architecture"), runs_dir=tmp_path / "runs", **kwargs)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_of_something_that_is_not_a_run(tmp_path):
    with pytest.raises(ValueError, match="not a run"):
        resume(tmp_path)
    with pytest.raises(ValueError, match="not a run"):
        resume("nothing-here", runs_dir=tmp_path)


def test_paper_recipe_and_schedule():
    paper = Recipe.paper()
    assert (paper.optimizer, paper.learning_rate, paper.momentum, paper.weight_decay,
            paper.batch_size, paper.schedule) == ("sgd", 0.1, 0.9, 1e-4, 128, "step")
    assert Recipe.from_dict(paper.to_dict()) == paper
    schedule = make_schedule(Recipe.paper(epochs=4, warmup_epochs=1), steps_per_epoch=10)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 9, 10, 20, 30, 39)]
    assert rates == pytest.approx([0.01, 0.01, 0.1, 0.01, 0.001, 0.001])
    constant = make_schedule(Recipe(schedule="constant", learning_rate=0.02), steps_per_epoch=10)
    assert float(keras.ops.convert_to_numpy(constant(1000))) == pytest.approx(0.02)
    assert StepSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_cosine_schedule_decays_to_zero_after_the_warmup():
    recipe = Recipe(schedule="cosine", learning_rate=0.1, epochs=4, warmup_epochs=1)
    assert Recipe.from_dict(recipe.to_dict()) == recipe and recipe.decay_steps(10) == []
    schedule = make_schedule(recipe, steps_per_epoch=10)
    assert isinstance(schedule, CosineSchedule)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in (0, 9, 10, 20, 40)]
    half_cosine = [0.1 * (1 + math.cos(math.pi * s / 40)) / 2 for s in (10, 20, 40)]
    assert rates == pytest.approx([0.01, 0.01, *half_cosine], abs=1e-7)
    assert CosineSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_goyal_recipe_warms_up_gradually_and_steps_at_epochs_30_60_80():
    recipe = Recipe.goyal(batch_size=1024)
    assert (recipe.learning_rate, recipe.epochs, recipe.warmup_epochs) == (0.4, 90, 5)
    assert Recipe.from_dict(recipe.to_dict()) == recipe
    schedule = make_schedule(recipe, steps_per_epoch=10)
    steps = (0, 25, 50, 299, 300, 600, 800, 899)
    rates = [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]
    assert rates == pytest.approx([0.1, 0.25, 0.4, 0.4, 0.04, 0.004, 0.0004, 0.0004])
    assert StepSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_weight_decay_is_l2_on_kernels_only():
    model = build_resnet(ARCH)
    compile_model(model, Recipe.paper(), steps_per_epoch=10)
    kernels = [v for v in model.trainable_weights if v.name == "kernel"]
    assert len(model.losses) == len(kernels) > 0
    expected = sum(0.5e-4 * float(np.sum(keras.ops.convert_to_numpy(v) ** 2)) for v in kernels)
    total = sum(float(keras.ops.convert_to_numpy(loss)) for loss in model.losses)
    assert total == pytest.approx(expected, rel=1e-5)
    assert model.optimizer.built and isinstance(model.optimizer, keras.optimizers.SGD)
