"""The first minute: the default run (the Train page's and the command line's) learns the
lecture's network far above chance (10%) on 1,000 held-out digits, with one home for its
settings. Seed 0 measures 91.4% on PyTorch, 91.5% on TensorFlow and 93.2% on JAX; 88% leaves
room for the last digits of floating point, not for a recipe that learns less."""

import subprocess
import sys

import keras
import pytest

from keras_resnets import cli, training
from keras_resnets.runs.store import RunStore
from keras_resnets.runtime.precision import default_dtype_policy
from keras_resnets.training import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe
from keras_resnets.training.recorder import record_interval


def test_the_command_line_defaults_are_the_first_minute(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "EXIT_CODES", {None: 0})
    monkeypatch.setattr(training, "train", _recorder(calls))
    assert cli.main(["train", "--preset", "mnist_resnet", "--dataset", "mnist_sample"]) == 0
    assert cli.main(["train", "--preset", "mnist_resnet", "--dataset", "mnist_sample",
                     "--subset", "0"]) == 0
    (first, _), (everything, _) = calls  # the command line trains a TrainingRequest
    request, everything = first[0], everything[0]
    assert request.recipe == Recipe()
    assert (request.dataset.subset, request.dataset.validation_split) == (FIRST_MINUTE_SUBSET, VALIDATION_SPLIT)
    assert everything.dataset.subset is None
    assert training.default_subset("cifar10") is None


def _recorder(calls):
    class Status:
        status = {"state": None}

    def train(*args, **kwargs):
        calls.append((args, kwargs))
        return Status()
    return train


@pytest.mark.slow
def test_the_default_run_learns_on_1000_held_out_digits(tmp_path, user_environment):
    """Run as a user runs it: the command line, in a process of its own with the settings that
    ``import keras_resnets`` gives (not the test process's)."""
    command = [sys.executable, "-m", "keras_resnets", "train", "--preset", "mnist_resnet",
               "--dataset", "mnist_sample", "--runs-dir", str(tmp_path), "--run-id", "first",
               "--quiet"]
    done = subprocess.run(command, env=user_environment, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    run = RunStore(tmp_path).get("first")
    events = run.metrics()
    epochs = [e for e in events if e["event"] == "epoch"]
    batches = [e for e in events if e["event"] == "batch"]
    assert run.status["state"] == "completed" and len(epochs) == Recipe().epochs
    assert run.status["data_source"].startswith("embedded MNIST sample")
    # The user's precision: bfloat16 on CPUs with AMX or AVX-512 BF16 (TensorFlow, PyTorch), else float32.
    assert run.status["dtype_policy"] == default_dtype_policy(
        keras.backend.backend(), user_environment, gpu=False)
    assert run.config["dataset"]["subset"] == FIRST_MINUTE_SUBSET
    assert round(10_000 * run.config["dataset"]["validation_split"]) == 1000
    assert epochs[-1]["val_accuracy"] >= 0.88, epochs
    # Batches are recorded every 5% of an epoch, so the curves move from the first seconds.
    assert batches[0]["step"] == record_interval(epochs[0]["step"]) and len(batches) >= 20
