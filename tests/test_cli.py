"""Tests of the command line (keras_resnets.cli), in process and as worker subprocesses that
are cancelled, terminated and killed."""

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import pytest

from keras_resnets import presets
from keras_resnets.cli import main
from keras_resnets.runs.store import RunStore
from keras_resnets.training import Recipe, TrainingRequest

ARCH = presets.mnist_resnet(nb_channels=4, nb_blocks=1)
TINY = ["--dataset", "mnist_sample", "--subset", "64", "--validation-split", "0.0064",
        "--batch-size", "32"]


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "tiny.json"
    path.write_text(ARCH.to_json())
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return RunStore(tmp_path_factory.mktemp("runs"))


def _start_worker(arch_file, store, run_id):
    command = [sys.executable, "-m", "keras_resnets", "train", "--architecture", arch_file,
               *TINY, "--epochs", "1000", "--runs-dir", str(store.root), "--run-id", run_id,
               "--quiet"]
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with open(store.root / f"{run_id}.log", "wb") as log:  # a full pipe would block the worker
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _log(store, run_id):
    return (store.root / f"{run_id}.log").read_text(errors="replace")[-3000:]


def _wait_for_epoch(worker, store, run_id, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, _log(store, run_id)
        try:
            status = store.get(run_id).status
        except ValueError:
            status = {}
        if status.get("state") == "running" and status.get("epoch", 0) >= 1:
            return status
        time.sleep(0.1)
    worker.kill()
    pytest.fail(f"worker {run_id} did not finish an epoch in {timeout} s")


def _dump_stacks_then_terminate(worker):
    worker.send_signal(signal.SIGUSR1)  # the stacks, and the run goes on
    time.sleep(1)
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)


@pytest.fixture(scope="module")
def workers(arch_file, store):
    """Three workers, started together: one cancelled, one sent SIGTERM, one killed."""
    actions = {"cancelled": lambda w: store.get("cancelled").request_cancel(),
               "terminated": _dump_stacks_then_terminate,
               "killed": lambda w: w.kill()}
    started = {run_id: _start_worker(arch_file, store, run_id) for run_id in actions}
    results = {}
    for run_id, worker in started.items():
        status = _wait_for_epoch(worker, store, run_id)
        assert status["pid"] == worker.pid
        actions[run_id](worker)
        results[run_id] = worker
    for run_id, worker in started.items():
        try:
            worker.wait(timeout=120)
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail(f"worker {run_id} did not stop:\n{_log(store, run_id)}")
    return results


def test_summary_prints_the_parameter_table(capsys):
    assert main(["summary", "--preset", "cifar_resnet20"]) == 0
    out = capsys.readouterr().out
    assert "cifar20_resnet: depth 20, 9 basic blocks" in out
    assert "stage3" in out and "269,722" in out and "total" in out


def test_summary_fits_a_preset_to_a_dataset(capsys, arch_file):
    assert main(["summary", "--preset", "mnist_resnet", "--dataset", "mnist_sample",
                 "--set", "residual=false"]) == 0
    out = capsys.readouterr().out
    assert "mnist_plain" in out and "117,802" in out
    assert main(["summary", "--architecture", arch_file]) == 0
    assert "input 28x28x1" in capsys.readouterr().out


def test_train_shows_progress_and_records_the_run(capsys, arch_file, store):
    code = main(["train", "--architecture", arch_file, *TINY, "--epochs", "1", "--optimizer",
                 "sgd", "--learning-rate", "0.05", "--schedule", "cosine", "--transforms", "shift",
                 "--seed", "3", "--runs-dir", str(store.root), "--run-id", "cli"])
    assert code == 0
    out = capsys.readouterr().out
    assert "run cli:" in out and "epoch 1/1" in out and "run cli completed" in out
    assert re.search(r"images from the embedded MNIST sample .*, in float32\n", out)  # the pin
    config = store.get("cli").config
    assert config["recipe"]["optimizer"] == "sgd" and config["recipe"]["learning_rate"] == 0.05
    assert config["recipe"]["schedule"] == "cosine" and config.dataset.transforms == "shift"
    assert config["seed"] == 3 and config["architecture"] == ARCH.to_dict()
    assert TrainingRequest.from_config(config) == TrainingRequest.build(  # as train()'s keywords
        ARCH, "mnist_sample", subset=64, validation_split=0.0064, batch_size=32, epochs=1,
        optimizer="sgd", learning_rate=0.05, schedule="cosine", transforms="shift", seed=3)
    assert main(["runs", "--runs-dir", str(store.root)]) == 0
    listing = capsys.readouterr().out
    assert "cli" in listing and "completed" in listing and "1/1" in listing


def test_a_request_file_trains_exactly_its_request(tmp_path, store):
    request = TrainingRequest.build(ARCH, subset=64, validation_split=0.0064, seed=5,
                                    recipe=Recipe.paper(epochs=1, batch_size=32))
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request.to_dict()))
    assert main(["train", "--request", str(path), "--runs-dir", str(store.root),
                 "--run-id", "from-file", "--quiet"]) == 0
    assert TrainingRequest.from_config(store.get("from-file").config) == request


@pytest.mark.parametrize("options, named", [
    (["--epochs", "2"], "--epochs"), (["--seed", "0"], "--seed"),  # even a default's value
    (["--dataset", "mnist_sample", "--set", "nb_blocks=2"], "--set, --dataset"),
    (["--augment", "--recipe", "paper", "--processes", "1"], "--augment, --recipe, --processes"),
])
def test_options_that_say_the_request_cannot_go_with_request(capsys, tmp_path, options, named):
    path = tmp_path / "request.json"
    path.write_text(json.dumps(TrainingRequest(ARCH).to_dict()))
    assert main(["train", "--request", str(path), *options, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == f"error: {named} cannot go with --request: the request file says it all.\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("change, message", [
    ({"recipe": {"epochs": 0}}, "recipe: epochs=0 is not allowed"),
    ({"dataset": {"name": "mnist_sample", "subset": -1}}, "dataset: subset=-1 is not allowed"),
    ({"backend": "jax"}, "request has unknown field(s) ['backend']"),
    ({"architecture": ARCH.replace(classes=3).to_dict()}, "architecture.classes=3 is not allowed"),
])
def test_a_wrong_request_file_is_one_line_naming_the_field(capsys, tmp_path, change, message):
    path = tmp_path / "request.json"
    path.write_text(json.dumps({**TrainingRequest(ARCH).to_dict(), **change}))
    assert main(["train", "--request", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_the_recipe_options_are_the_recipes_fields(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for field in dataclasses.fields(Recipe):
        assert f"--{field.name.replace('_', '-')}" in text
    assert "{adam,sgd}" in text and "{constant,step,cosine,goyal}" in text


def test_goyal_recipe_scales_its_rate_to_the_batch_size(arch_file, store):
    assert main(["train", "--architecture", arch_file, *TINY, "--recipe", "goyal", "--epochs", "2",
                 "--warmup-epochs", "1", "--batch-size", "16", "--quiet",
                 "--runs-dir", str(store.root), "--run-id", "goyal"]) == 0
    recipe = store.get("goyal").config["recipe"]
    assert (recipe["schedule"], recipe["optimizer"], recipe["weight_decay"]) == ("goyal", "sgd", 1e-4)
    assert recipe["learning_rate"] == pytest.approx(0.1 * 16 / 256) and recipe["batch_size"] == 16


def test_resume_and_cancel_commands(capsys, store, arch_file):
    if not (store.root / "cli").exists():
        main(["train", "--architecture", arch_file, *TINY, "--epochs", "1",
              "--runs-dir", str(store.root), "--run-id", "cli", "--quiet"])
    shutil.copytree(store.root / "cli", store.root / "stopped")
    (store.root / "stopped" / "model.keras").unlink()
    store.get("stopped").write_status(state="interrupted")
    (store.root / "stopped" / "CANCEL").write_text("")  # asked while it was training
    assert main(["resume", "stopped", "--runs-dir", str(store.root), "--quiet"]) == 0
    run = store.get("stopped")
    assert run.status["state"] == "completed" and run.model_path.exists()
    assert not run.cancel_requested
    capsys.readouterr()
    assert main(["cancel", "stopped", "--runs-dir", str(store.root)]) == 2  # nothing to stop
    assert capsys.readouterr().err == ("error: run stopped is completed: there is nothing to stop "
                                       "(only a created or running run can be cancelled).\n")
    assert not run.cancel_requested


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "mnist_resnet", "--learning-rate", "-1"], "learning_rate=-1.0"),
    (["train", "--preset", "mnist_resnet", "--epochs", "0"], "epochs=0"),
    (["train", "--preset", "no_such_net"], "preset='no_such_net'"),
    (["train", "--architecture", "missing.json"], "--architecture='missing.json'"),
    (["train", "--preset", "resnet18", "--set", "input_shape=[32,32,3]"], "input_shape"),
    (["train", "--preset", "mnist_resnet", "--set", "nb_stages=2"], "nb_stages"),
    (["train", "--preset", "mnist_resnet", "--run-id", "../up"], "run_id='../up'"),
    (["resume", "nothing"], "not a run"),
    (["resume", "../../etc"], "run_id"),
    (["cancel", "nothing"], "not a run"),
])
def test_bad_input_exits_with_2_and_a_message(capsys, tmp_path, argv, message):
    assert main([*argv, "--runs-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_unknown_dataset_and_bad_numbers_are_usage_errors(capsys):
    for argv in (["train", "--preset", "mnist_resnet", "--dataset", "imagenet"],
                 ["train", "--preset", "mnist_resnet", "--learning-rate", "fast"],
                 ["train"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "--learning-rate" in capsys.readouterr().err


def test_runs_of_an_empty_store(capsys, tmp_path):
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out


def test_runs_gives_the_reason_of_each_damaged_run(capsys, tmp_path):
    store = RunStore(tmp_path)
    for run_id, name, text in (("bad-config", "config.json", "[" * 10**5), ("no-status", "status.json", None),
                               ("bad-status", "status.json", '{"state": "running", "pid": 2147483648}'),
                               ("good", "metrics.jsonl", "\x00\xff")):
        path = store.create({}, run_id=run_id).path / name
        path.write_text(text) if text is not None else path.unlink()
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    reasons = {line.split()[0]: next_line.strip() for line, next_line in zip(lines, lines[1:])
               if " damaged " in line}
    assert sorted(reasons) == ["bad-config", "bad-status", "no-status"]
    assert "nests deeper than 32 levels" in reasons["bad-config"]
    assert "status.json cannot be read" in reasons["no-status"]
    assert reasons["bad-status"].startswith("status.json: pid=2147483648 is not allowed")
    assert [line.split()[:3] for line in lines if line.startswith("good")] == [["good", "created", "0/?"]]


def test_worker_honours_the_cancel_file(workers, store):
    assert workers["cancelled"].returncode == 0
    status = store.get("cancelled").status
    assert status["state"] == "cancelled" and status["epoch"] >= 1


def test_sigterm_interrupts_and_keeps_the_checkpoint(workers, store):
    assert workers["terminated"].returncode == 130
    run = store.get("terminated")
    assert run.status["state"] == "interrupted" and "interrupted after" in run.status["message"]
    assert run.status["epoch"] >= 1 and run.checkpoint_path.exists()


def test_sigusr1_writes_every_threads_stack_to_the_log(workers, store):
    log = (store.root / "terminated.log").read_text(errors="replace")
    assert "Current thread" in log and 'File "' in log and "keras_resnets" in log


def test_killed_worker_is_reported_interrupted(workers, store):
    assert workers["killed"].returncode == -signal.SIGKILL
    run = store.get("killed")
    assert json.loads((run.path / "status.json").read_text())["state"] == "running"
    assert run.status["state"] == "interrupted" and "stopped without finishing" in run.status["message"]
    assert {r.id: r.status["state"] for r in store.list()}["killed"] == "interrupted"


# -- start-up: help without a backend, no backend log -----------------------------------------

BACKEND_MODULES = ("keras", "tensorflow", "jax", "torch")

# Parses like `python -m keras_resnets ARGS`, then lists the backend modules it imported.
PARSE_ONLY = f"""
import runpy, sys
sys.argv[:1] = ["-m"]  # what `python -m keras_resnets` shows the package while it imports it
for sys.argv[1:] in {{argvs}}:
    try:
        runpy.run_module("keras_resnets", run_name="__main__")
    except SystemExit:
        pass
print("IMPORTED", sorted(m for m in {BACKEND_MODULES} if m in sys.modules))
"""


def _cli_process(args, **environ):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(KERAS_BACKEND=keras.backend.backend(), **environ)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_help_and_argument_errors_start_no_backend():
    argvs = [["--help"], ["train", "--help"],
             ["train", "--preset", "mnist_resnet", "--epochs", "x"], ["summary", "--optimizer", "sgd"]]
    proc = _cli_process(["-c", PARSE_ONLY.format(argvs=argvs)])
    assert proc.stdout.strip().splitlines()[-1] == "IMPORTED []", proc.stderr[-2000:]
    assert "train an architecture as a new run, resume a run, list the runs, cancel one, or " \
           "summarise an architecture." in " ".join(proc.stdout.split())  # the description whole
    assert "invalid int value: 'x'" in proc.stderr


@pytest.mark.slow
def test_train_with_quiet_prints_nothing(tmp_path, arch_file):
    proc = _cli_process(["-m", "keras_resnets", "train", "--architecture", arch_file, *TINY,
                         "--epochs", "1", "--runs-dir", str(tmp_path), "--quiet"])
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr == ""  # TensorFlow's data pipeline logs as it loads, on every backend


@pytest.mark.slow
def test_commands_print_no_backend_start_up_log():
    proc = _cli_process(["-m", "keras_resnets", "summary", "--preset", "mnist_resnet",
                         "--set", "nb_blocks=1"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "total" in proc.stdout
    assert proc.stderr == ""  # TensorFlow logs CUDA probing and CPU features unless hidden
