"""Tests of keras_resnets.runs.store: the run store's files, safety and crash tolerance (no training)."""

import json
import os
import subprocess
import sys

import pytest

from keras_resnets.runs.files import write_atomic, write_json
from keras_resnets.runs.records import DataConfig, RunConfig, batches, epochs
from keras_resnets.runs.store import CANCEL, Run, RunStore, new_run_id


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def test_create_writes_config_and_status(store):
    run = store.create({"architecture": {"name": "tiny"}, "seed": 3}, run_id="first")
    assert run.id == "first" and run.path == store.path("first")
    config = json.loads((run.path / "config.json").read_text())
    assert config["seed"] == 3 and "created" in config
    assert run.status["state"] == "created" and run.status["epoch"] == 0
    assert run.metrics() == []


def test_list_is_newest_first_and_get_finds_runs(store):
    ids = ["a", "b", "c"]
    for run_id in ids:
        store.create({}, run_id=run_id)
    assert [run.id for run in store.list()] == ids[::-1]
    assert store.get("b").id == "b"
    assert RunStore(store.root / "missing").list() == []


def test_generated_ids_are_valid_and_unique(store):
    run = store.create({"architecture": {"name": "../we!rd name"}})
    assert run.path.parent == store.root and "we_rd_name" in run.id
    assert new_run_id("x") != new_run_id("x")


@pytest.mark.parametrize("run_id", ["..", "../outside", "a/b", "/etc", "", ".hidden", "a..b",
                                    "x" * 65, "a b", 7])
def test_unsafe_run_ids_raise(store, run_id):
    for call in (store.path, store.get, lambda i: store.create({}, run_id=i)):
        with pytest.raises(ValueError, match="run_id"):
            call(run_id)
    assert not store.root.exists() or not any(store.root.parent.glob("outside*"))


def test_symlink_out_of_the_store_is_refused(store, tmp_path):
    outside = RunStore(tmp_path / "elsewhere").create({}, run_id="victim")
    store.root.mkdir(parents=True)
    (store.root / "link").symlink_to(outside.path)
    with pytest.raises(ValueError, match="outside"):
        store.get("link")
    assert store.list() == []


def test_existing_id_and_non_runs_raise(store):
    store.create({}, run_id="taken")
    with pytest.raises(ValueError, match="already exists"):
        store.create({}, run_id="taken")
    (store.root / "not-a-run").mkdir()
    with pytest.raises(ValueError, match="not a run"):
        store.get("not-a-run")
    with pytest.raises(ValueError, match="not a run"):
        store.get("never-made")
    with pytest.raises(ValueError, match="config"):
        store.create("not a dict")


def test_broken_directories_are_listed_as_damaged_with_the_reason(store):
    good = store.create({}, run_id="good")
    store.create({}, run_id="half-written")
    (store.path("half-written") / "config.json").write_text('{"architecture": {"na')
    store.create({}, run_id="list-config")
    (store.path("list-config") / "config.json").write_text("[1, 2]")
    store.create({}, run_id="wrong-type")
    (store.path("wrong-type") / "config.json").write_text('{"architecture": 5}')
    (store.root / "stray-file").write_text("hello")
    (store.root / "empty-dir").mkdir()
    runs = {run.id: run for run in store.list()}
    assert sorted(runs) == ["empty-dir", "good", "half-written", "list-config", "wrong-type"]
    assert runs["good"].damage is None and runs["good"].status["state"] == "created"
    reasons = {"empty-dir": "no config.json", "half-written": "not valid JSON",
               "list-config": "holds list", "wrong-type": "architecture=5"}
    for run_id, reason in reasons.items():
        status = runs[run_id].status
        assert status["state"] == "damaged" and reason in status["message"], status
        assert runs[run_id].metrics() == [] and runs[run_id].config == {}
    with pytest.raises(ValueError, match="half-written"):
        store.get("half-written")
    (good.path / "status.json").write_text('{"state": "runn')
    assert good.status["state"] == "damaged" and "status.json" in good.status["message"]
    (good.path / "status.json").write_text('{"state": "running", "epoch": "three"}')
    assert good.status["state"] == "damaged" and "epoch='three'" in good.status["message"]
    good.write_status(state="completed", epoch=1)
    assert good.status["state"] == "completed"


def test_torn_metrics_lines_are_skipped(store):
    run = store.create({}, run_id="torn")
    run.append_metrics({"event": "batch", "epoch": 0, "step": 1, "loss": 2.0},
                       {"event": "epoch", "epoch": 0, "loss": 1.5})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"event": "batch", "epoch": 1, "st')
    assert [e["loss"] for e in run.metrics()] == [2.0, 1.5]
    run.keep_metrics(1)
    assert (run.path / "metrics.jsonl").read_text().endswith("}\n")
    run.keep_metrics(0)
    assert run.metrics() == []


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "status.json"
    write_json(path, {"state": "running"})

    def crash(tmp):
        tmp.write_text('{"state": "compl')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, crash)
    assert json.loads(path.read_text()) == {"state": "running"}
    assert os.listdir(tmp_path) == ["status.json"]


def test_status_updates_and_rejects_unknown_states(store):
    run = store.create({}, run_id="s")
    run.write_status(state="running", pid=os.getpid(), epoch=1, epochs=3)
    assert run.status["state"] == "running" and run.status["epochs"] == 3
    with pytest.raises(ValueError, match="state"):
        run.write_status(state="sleeping")


def test_running_status_with_a_dead_pid_reads_as_interrupted(store):
    run = store.create({}, run_id="dead")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    run.write_status(state="running", pid=child.pid)
    assert run.status["state"] == "interrupted"
    assert "resume" in run.status["message"]
    run.write_status(state="created")
    assert run.status["state"] == "interrupted"
    run.write_status(state="cancelled")
    assert run.status["state"] == "cancelled"


def test_running_status_of_a_zombie_reads_as_interrupted(store):
    run = store.create({}, run_id="zombie")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        for _ in range(200):  # until it has exited, unreaped
            if not os.path.exists(f"/proc/{child.pid}/stat"):
                break
            if open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] == "Z":
                break
            subprocess.run(["sleep", "0.05"])
        run.write_status(state="running", pid=child.pid)
        assert run.status["state"] == "interrupted"
    finally:
        child.wait()


def test_cancel_file(store):
    run = store.create({}, run_id="c")
    assert not run.cancel_requested
    run.request_cancel()
    assert run.cancel_requested and (run.path / CANCEL).exists()
    run.clear_cancel()
    assert not run.cancel_requested


@pytest.mark.parametrize("state", ["completed", "interrupted", "cancelled", "failed"])
def test_a_run_that_is_not_at_work_is_not_asked_to_stop(store, state):
    run = store.create({}, run_id="done")
    run.write_status(state=state)
    with pytest.raises(ValueError, match=f"run done is {state}: there is nothing to stop"):
        run.request_cancel()
    assert not (run.path / CANCEL).exists()


def test_a_run_without_a_status_is_damaged_with_the_reason(store):
    run = store.create({}, run_id="no-status")
    (run.path / "status.json").unlink()
    (listed,) = store.list()
    assert listed.status["state"] == "damaged" and "status.json cannot be read" in listed.status["message"]


@pytest.mark.parametrize("name, record, field", [
    ("status.json", {"state": "running", "pid": 2**31}, "pid=2147483648"),
    ("status.json", {"state": "running", "pid": 10**30}, "pid=1000000000000000000000000000000"),
    ("status.json", {"state": "running", "pid": -1}, "pid=-1"),
    ("status.json", {"state": "running", "process_start": "x"}, "process_start='x'"),
    ("status.json", {"state": "completed", "epoch": 2**60}, "epoch=1152921504606846976"),
    ("status.json", {"state": "completed", "epochs": "x"}, "epochs='x'"),
    ("status.json", {"state": "completed", "host": 5}, "host=5"),
    ("status.json", {"epoch": 1}, "state=None"),
])
def test_a_status_out_of_range_is_damaged_and_named(store, name, record, field):
    run = store.create({}, run_id="odd")
    (run.path / name).write_text(json.dumps(record))
    status = store.list()[0].status
    assert status["state"] == "damaged" and status["message"].startswith(f"status.json: {field} is not allowed")


@pytest.mark.parametrize("record", [{"pid": 2**31}, {"pid": 10**30}, {"pid": "x"}, [1], "[" * 10**5])
def test_a_lock_that_cannot_be_read_is_taken_over(store, record):
    run = store.create({}, run_id="locked")
    (run.path / "LOCK").write_text(record if isinstance(record, str) else json.dumps(record))
    assert run.lock_holder().pid is None and not run.lock_holder().alive()
    with run.lock():
        assert run.lock_holder().pid == os.getpid()
    assert run.lock_holder() is None


def test_metric_events_out_of_range_are_skipped(store):
    run = store.create({}, run_id="numbers")
    good = {"event": "epoch", "epoch": 0, "step": 2, "loss": float("nan"), "val_accuracy": 0.5}
    run.append_metrics(good, {"event": "epoch", "epoch": 10**30}, {"event": "batch", "step": -1},
                       {"event": "epoch", "epoch": 1, "val_accuracy": 10**400}, {"event": "batch", "time": float("inf")})
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write("[" * 10**5 + "\n" + "x" * 10**6 + "\n")
    assert json.dumps(run.metrics()) == json.dumps([good])  # a diverged loss is kept


def test_a_checkpoint_interrupted_between_its_renames_leaves_no_file_behind(store, monkeypatch):
    run = store.create({}, run_id="ckpt")
    run.checkpoint_path.write_bytes(b"epoch 1")

    def second_ctrl_c(source, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", second_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run.save_checkpoint(lambda path: path.write_bytes(b"epoch 2"))
    monkeypatch.undo()
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoint.weights.h5", "config.json",
                                                          "status.json"]
    assert run.checkpoint_path.read_bytes() == b"epoch 1"


def test_run_of_a_plain_directory_raises(tmp_path):
    with pytest.raises(ValueError, match="not a run"):
        Run(tmp_path)


def test_run_config_is_typed_and_reads_as_its_json(store):
    written = {"architecture": {"name": "tiny", "residual": False}, "seed": 3, "backend": "jax",
               "dataset": {"name": "mnist_sample", "subset": 96, "validation_split": 0.1},
               "recipe": {"batch_size": 32}, "versions": {"keras": "3"}, "future_field": [1]}
    run = store.create(written, run_id="typed")
    config = store.get("typed").config
    assert (config.name, config.seed, config.backend, config.distribution) == ("tiny", 3, "jax", "none")
    assert config.dataset == DataConfig("mnist_sample", 96, 0.1) and config.recipe == {"batch_size": 32}
    assert config.created and config == {**written, "created": config.created}
    assert config["future_field"] == [1] and json.loads(json.dumps(config.raw)) == dict(config)
    copy = store.create(run.config, run_id="copy")  # a record is a config to create from
    assert copy.config.architecture == written["architecture"] and copy.config.created >= config.created


@pytest.mark.parametrize("field, value", [("seed", "three"), ("seed", True), ("backend", 5), ("dataset", [1]),
                                          ("distribution", {}), ("versions", "3")])
def test_a_wrongly_typed_config_field_is_named(store, field, value):
    store.create({}, run_id="odd")
    (store.path("odd") / "config.json").write_text(json.dumps({field: value}))
    (run,) = store.list()
    assert run.status["state"] == "damaged" and f"config.json has {field}=" in run.status["message"]
    with pytest.raises(ValueError, match=f"{field}="):
        RunConfig.from_dict({field: value})


def test_epochs_and_batches_pick_their_events(store):
    run = store.create({}, run_id="events")
    run.append_metrics({"event": "batch", "epoch": 0, "step": 1, "loss": 2.0},
                       {"event": "epoch", "epoch": 0, "step": 2, "loss": 1.5, "val_accuracy": 0.5},
                       {"event": "note", "epoch": 0}, {"event": "batch", "epoch": 1, "step": 3, "loss": 1.0})
    assert [e["step"] for e in run.batches()] == [1, 3] and [e["loss"] for e in run.epochs()] == [1.5]
    assert epochs(run.metrics()) == run.epochs() and batches(run.metrics()) == run.batches()
