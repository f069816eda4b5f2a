"""The probes of issue 18, kept as tests: a hostile user's links, sizes, arguments and run
stores, each answered by a clear message (never a traceback, a hang, a silent change or lost
data), plus a property test of the one validation.
"""

import json
import math
import multiprocessing
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer import designs
from keras_resnets import (
    PRESETS,
    Architecture,
    build_resnet,
    count_params,
    estimate,
    get_preset,
    set_limits,
)
from keras_resnets.cli import main
from keras_resnets.design import limits as limits_module
from keras_resnets.design.validation import MAX_SEED, check_int
from keras_resnets.runs.processes import identity, process_start
from keras_resnets.runs.store import LOCK, RunStore
from keras_resnets.training import loop as training

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(nb_channels=4, nb_blocks=1)


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- one validation, the same message everywhere ------------------------------------------------
def test_one_message_names_field_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"^blocks=0 is not allowed: an integer in \[1, 10\]\.$"):
        check_int("blocks", 0, maximum=10)
    with pytest.raises(ValueError, match=r"^stages\[0\]\.channels=-3 is not allowed"):
        Architecture(stages=({"blocks": 1, "channels": -3},))
    with pytest.raises(ValueError, match=r"^validation_split=nan is not allowed"):
        training.check_data("mnist_sample", subset=None, validation_split=math.nan, data_dir=None,
                            batch_size=32, seed=0)
    with pytest.raises(ValueError, match=r"^nb_channels=0 is not allowed: an integer >= 1"):
        from keras_resnets.layers import ResBlock
        ResBlock(0)


def test_an_architecture_file_without_channels_names_the_field():
    with pytest.raises(ValueError, match=r"stages\[0\] lacks the field\(s\) \['channels'\]"):
        Architecture.from_dict({"stages": [{"blocks": 2}]})


# -- architecture files that are not JSON, or JSON without bounds -------------------------------
ARCHITECTURE_FILES = [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than 32 levels (line 1 column 33)"),
    ('{"name": "x", "classes": oops}', "is not valid JSON: Expecting value (line 1 column 26)"),
    (b"\x89PNG\x00\xff", "is not UTF-8 text: byte 0"),
    ('{"dropout": NaN}', "NaN is not a finite number"),
    ('{"classes": ' + "9" * 5000 + "}", "(5,000 digits) is too long a number"),
    ("", "Expecting value (line 1 column 1)"),
]


@pytest.mark.parametrize("text, reason", ARCHITECTURE_FILES)
def test_architecture_text_that_cannot_be_read_names_its_source_and_where(text, reason):
    with pytest.raises(ValueError, match=re.escape(reason)) as caught:
        Architecture.from_json(text, "arch.json")
    assert str(caught.value).startswith("arch.json ")


def test_from_json_of_none_names_the_argument():
    with pytest.raises(ValueError, match=r"^architecture=None is not allowed: JSON text"):
        Architecture.from_json(None)


@pytest.mark.parametrize("command", ["train", "summary"])
def test_an_architecture_file_that_cannot_be_read_gets_one_line_naming_it(command, tmp_path, capsys):
    store = ["--runs-dir", str(tmp_path / "runs")] if command == "train" else []
    for i, (text, reason) in enumerate(ARCHITECTURE_FILES):
        path = tmp_path / f"arch{i}.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert main([command, "--architecture", str(path), *store]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: --architecture={str(path)!r} ") and reason in err, err
        assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


# -- limits, before any layer is built ----------------------------------------------------------
@pytest.mark.parametrize("kwargs, field, limit", [
    ({"nb_blocks": 1_000_000}, "stages", "max_blocks"),
    ({"nb_channels": 1_000_000}, "architecture", "max_parameters"),
    ({"classes": 10**9}, "architecture", "max_parameters"),
    ({"stem": {"kernel_size": 10**6 + 1}}, "stem.kernel_size", "max_kernel_size"),
    ({"stages": [{"blocks": 1, "channels": 4}] * 1000}, "stages", "max_stages"),
    ({"stages": [{"blocks": 400, "channels": 180}]}, "architecture", "max_parameters"),
    ({"input_shape": (20_000, 20_000, 1)}, "architecture", "max_memory"),
])
def test_oversized_designs_are_refused_with_the_limit_named(kwargs, field, limit):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^{field}=.* is not allowed: the limit is {limit}=") as caught:
        get_preset("mnist_resnet", **kwargs)
    assert "set_limits" in str(caught.value) and f"KERAS_RESNETS_{limit.upper()}" in str(caught.value)
    assert time.perf_counter() - started < 30, "refused from the description, not by building"


def test_limits_are_raised_on_purpose():
    design = {"stages": [{"blocks": 1001, "channels": 1}], "stem": {"filters": 1}}
    with pytest.raises(ValueError, match="max_blocks"):
        get_preset("mnist_resnet", **design)
    previous = set_limits(max_blocks=1001)
    try:
        assert get_preset("mnist_resnet", **design).num_blocks == 1001
    finally:
        set_limits(**previous.to_dict())
    with pytest.raises(ValueError, match="set_limits"):
        set_limits(max_depth=3)


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("KERAS_RESNETS_MAX_BLOCKS", "5")
    assert limits_module._from_environment().max_blocks == 5
    monkeypatch.setenv("KERAS_RESNETS_MAX_BLOCKS", "many")
    with pytest.raises(ValueError, match="KERAS_RESNETS_MAX_BLOCKS='many' is not allowed"):
        limits_module._from_environment()


@pytest.mark.parametrize("fields, field, allowed", [
    ({"epochs": 10**30}, "epochs", "an integer in [1, 2,147,483,647]"),
    ({"batch_size": 10**30}, "batch_size", "an integer in [1, 2,147,483,647]"),
    ({"batch_size": 2**31}, "batch_size", "an integer in [1, 2,147,483,647]"),
    ({"batch_size": 300_000, "subset": 64}, "batch_size", "at most 64, the training images"),
    ({"subset": 9001}, "subset", "at most 9,000, the training examples left"),
    ({"epochs": 10**8, "batch_size": 1, "subset": 4096}, "epochs", "at most 524,287: 2,147,483,647 steps"),
    ({"warmup_epochs": 10**30}, "warmup_epochs", "an integer in [0, 2,147,483,647]"),
    ({"validation_split": 1.0}, "validation_split", "a finite number in [0, 1)"),
    ({"learning_rate": float("inf")}, "learning_rate", "a finite number in (0, inf)"),
])
def test_numbers_that_cannot_run_are_refused_before_a_run_is_made(fields, field, allowed, tmp_path):
    runs_dir = tmp_path / "runs"
    with pytest.raises(ValueError, match=rf"^{field}=.* is not allowed: {re.escape(allowed)}"):
        training.train("mnist_resnet", runs_dir=runs_dir, **fields)
    assert not runs_dir.exists()


def test_a_training_step_over_the_memory_limit_is_refused_before_a_run_is_made(tmp_path):
    arch = get_preset("mnist_resnet")
    need = limits_module.training_memory(arch, 64)
    assert need < limits_module.training_memory(arch, 128) < 2 * need
    previous = set_limits(max_training_memory=need)
    try:
        with pytest.raises(ValueError, match=r"^batch_size=128 is not allowed: .* max_training_memory"):
            training.train(arch, runs_dir=tmp_path / "runs", batch_size=128)
        assert not (tmp_path / "runs").exists()
    finally:
        set_limits(**previous.to_dict())
    assert limits_module.limits().max_training_memory == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_the_command_line_refuses_a_batch_larger_than_the_data_in_one_line(tmp_path, capsys):
    code = main(["train", "--preset", "mnist_resnet", "--subset", "64", "--batch-size", "300000",
                 "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert code != 0
    assert "batch_size=300000 is not allowed: at most 64, the training images" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("preset", ["mnist_resnet", "cifar_resnet20", "resnet18", "highway_net",
                                    "crelu_net"])
def test_the_estimate_is_the_built_count(preset):
    architecture = get_preset(preset)
    assert estimate(architecture)["parameters"] == count_params(build_resnet(architecture))["total"]


def test_every_preset_is_within_the_limits():
    for name in PRESETS:
        sizes = estimate(get_preset(name))
        assert sizes["parameters"] < limits_module.limits().max_parameters
        assert sizes["memory"] < limits_module.limits().max_memory


# -- links open exactly the design they name, or say why not -----------------------------------
@pytest.mark.parametrize("params, field", [
    ({"stages": "1000000x1000000"}, "stages"),
    ({"classes": "-5"}, "classes"),
    ({"stem.filters": "-3"}, "stem.filters"),
    ({"stages": "2x16k18"}, "kernel_size"),
    ({"seed": str(10**30)}, "seed"),
    ({"bn_momentum": "nan"}, "bn_momentum"),
])
def test_a_link_that_cannot_be_opened_says_why_and_changes_nothing(params, field):
    preset, design, problems = designs.decode_query({"preset": "mnist_resnet", **params})
    assert design == designs.preset_design("mnist_resnet")
    assert any(field in p for p in problems) and "not opened" in problems[-1]


def test_a_link_opens_exactly_the_design_it_names():
    preset, design, problems = designs.decode_query({"preset": "mnist_resnet", "stages": "2x16k17"})
    assert problems == [] and design["stages"] == [
        {"blocks": 2, "channels": 16, "strides": 1, "kernel_size": 17}]


@pytest.mark.parametrize("name, nearest", [("shortcutt", "shortcut"), ("stage", "stages"),
                                           ("stem.filter", "stem.filters"), ("run", "runs")])
def test_an_unknown_link_parameter_is_named_with_the_nearest_known_one(name, nearest):
    preset, design, problems = designs.decode_query({"preset": "cifar_resnet20", name: "1x4"})
    assert design == designs.preset_design("cifar_resnet20")
    assert problems[0] == f"{name!r} is not a link parameter: did you mean {nearest}?"
    assert "not opened" in problems[-1]


def test_a_repeated_link_parameter_is_refused_by_name():
    preset, design, problems = designs.decode_query({"preset": ["mnist_resnet"], "shortcut": ["A", "B"],
                                                     "runs": ["a", "b"]})
    assert design == designs.preset_design("mnist_resnet") and len(problems) == 2
    assert problems[0] == "shortcut is given 2 times ('A', 'B'); a link gives each field once"


def test_every_refused_field_of_a_link_is_named_at_once():
    preset, design, problems = designs.decode_query({
        "preset": "mnist_resnet", "classes": "0", "stem.filters": "0", "dropout": "2", "stages": "1x4k4"})
    assert design == designs.preset_design("mnist_resnet")
    named = sorted(p.split("=")[0] for p in problems[:-1])
    assert named == ["classes", "dropout", "stages[0].kernel_size", "stem.filters"], problems


# -- the property test: random links and architecture dicts ------------------------------------
TEXTS = ["0", "1", "3", "17", "-5", "2.5", "1e9", "nan", "inf", "true", "false", "maybe", "none", "",
         "A", "B", "C", "relu", "crelu", "basic", "highway", "dense", "avg", "flatten", "softmax",
         "channels_first", "conv", "3x16,3x32/2,3x64/2", "2x16k17", "1000000x1000000", "1x4/2k3",
         "28x28x1", "32x32x3", "784", "0x0x0", str(10**30), "x" * 3000, "../../etc", "1x4" * 100]
VALUES = [0, 1, 2, 3, 7, 16, -1, 10**30, 0.5, 1.0, 1e-5, math.nan, math.inf, True, False, None, "",
          "basic", "x", "A", "relu", [], [1], [28, 28, 1], [32, 32, 3], {}, {"blocks": 1},
          [{"blocks": 1, "channels": 4}], [{"blocks": 1, "channels": 4, "strides": 2}]]


def test_random_links_never_raise_and_never_change_silently():
    rng = random.Random(18)
    names = sorted(designs.DESIGN_PARAMS - {"preset"})
    for _ in range(400):
        params = {"preset": rng.choice(sorted(designs.PRESET_CHOICES) + ["nope"])}
        params.update({rng.choice(names): rng.choice(TEXTS) for _ in range(rng.randint(1, 4))})
        preset, design, problems = designs.decode_query(params)
        if problems:
            assert design == designs.preset_design(preset), params
            continue
        Architecture.from_dict(design)
        for name, text in params.items():
            if name == "preset":
                continue
            key, value = designs._parse_field(name, text)
            opened = design["stem"][key[5:]] if key.startswith("stem.") else design[key]
            assert json.dumps(opened) == json.dumps(value), (params, key)


def test_random_architecture_dicts_are_accepted_as_they_are_or_refused_by_name():
    rng = random.Random(15)
    fields = sorted(Architecture().to_dict())
    for _ in range(400):
        data = get_preset(rng.choice(sorted(PRESETS))).to_dict()
        changed = set()
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(fields + ["stem", "stages"])
            if name == "stem":
                sub = rng.choice(sorted(data["stem"]))
                data["stem"][sub] = rng.choice(VALUES)
                changed |= {"stem", f"stem.{sub}"}
            else:
                data[name] = rng.choice(VALUES)
                changed.add(name)
        try:
            architecture = Architecture.from_dict(json.loads(json.dumps(data)))
        except ValueError as error:
            assert re.match(r"^[a-z_]+[\w.\[\]]*(=| lacks the field| has unknown field)", str(error)), error
            continue
        _assert_kept(architecture.to_dict(), data)


def _assert_kept(opened, given):
    """Every value ``given`` is in ``opened`` as it was (defaults may fill in the rest)."""
    if isinstance(given, dict):
        for key, value in given.items():
            _assert_kept(opened[key], value)
    elif isinstance(given, (list, tuple)):
        assert len(opened) == len(given)
        for a, b in zip(opened, given):
            _assert_kept(a, b)
    else:
        assert json.dumps(opened) == json.dumps(given), (opened, given)


# -- the run store -------------------------------------------------------------------------------
def _take_lock(run_path, barrier, results):
    from keras_resnets.runs.store import Run

    barrier.wait()
    try:
        with Run(run_path).lock():
            results.put("took it")
            time.sleep(1.0)
    except ValueError:
        results.put("refused")


def test_a_stale_lock_goes_to_exactly_one_of_several_racing_processes(tmp_path):
    run = RunStore(tmp_path).create({}, run_id="raced")
    (run.path / LOCK).write_text(json.dumps({**identity(), "pid": dead_pid()}))
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_take_lock, args=(run.path, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["refused"] * 3 + ["took it"]
    assert not (run.path / LOCK).exists(), "the winner released it"


def test_a_reused_pid_does_not_keep_a_run_running(tmp_path):
    run = RunStore(tmp_path).create({}, run_id="reused")
    assert run.status["state"] == "created"  # this process created it and lives
    run.write_status(state="running", process_start=process_start(os.getpid()) + 1)
    assert run.status["state"] == "interrupted"
    (run.path / LOCK).write_text(json.dumps({**identity(), "process_start": 1}))
    with run.lock():  # the lock of a pid's earlier owner is taken over
        assert json.loads((run.path / LOCK).read_text())["process_start"] == process_start(os.getpid())


def test_temp_files_of_dead_writers_are_removed_on_open(tmp_path):
    run = RunStore(tmp_path).create({}, run_id="temps")
    dead = run.path / f".{dead_pid()}-0badc0de.status.json"
    alive = run.path / f".{os.getpid()}-0badc0de.status.json"
    for path in (dead, alive):
        path.write_text("{")
    RunStore(tmp_path).list()
    assert not dead.exists() and alive.exists()


@pytest.mark.parametrize("kwargs, field", [
    ({"subset": 0}, "subset"),
    ({"validation_split": 1.5}, "validation_split"),
    ({"validation_split": math.nan}, "validation_split"),
    ({"seed": 10**30}, "seed"),
    ({"dataset": "cifar10"}, "cifar10"),
])
def test_bad_arguments_leave_no_run_behind(tmp_path, monkeypatch, kwargs, field):
    monkeypatch.setattr(training, "is_available", lambda name, data_dir=None: False)  # offline
    dataset = kwargs.pop("dataset", "mnist_sample")
    architecture = "cifar_resnet20" if dataset == "cifar10" else get_preset("mnist_resnet", **TINY)
    with pytest.raises(ValueError, match=field):
        training.train(architecture, dataset, runs_dir=tmp_path, epochs=1, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_messages_name_the_field(tmp_path, capsys):
    base = ["train", "--preset", "mnist_resnet", "--runs-dir", str(tmp_path / "runs")]
    for extra, expected in ((["--seed", str(10**30)], f"seed={10**30} is not allowed: an integer in [0, {MAX_SEED:,}]"),
                            (["--set", "name=a/b"], "name='a/b' is not allowed"),
                            (["--set", "classes=" + "[" * 100_000], "classes='[[[["),
                            (["--subset", "-5"], "subset=-5 is not allowed")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for runs_dir, reason in ((blocker / "runs", "(Not a directory)"), (blocker, "(it is a file)")):
        assert main(["train", "--preset", "mnist_resnet", "--set", "nb_blocks=1", "--subset", "32",
                     "--epochs", "1", "--runs-dir", str(runs_dir)]) == 2
        err = capsys.readouterr().err
        assert err == f"error: runs_dir={str(runs_dir)!r} is not allowed: it must be a writable directory {reason}\n"
    assert main(["runs", "--runs-dir", str(blocker)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --runs-dir={str(blocker)!r} is not allowed: a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_store_gets_one_line(tmp_path, capsys):
    store = tmp_path / "runs"
    store.mkdir()
    store.chmod(0o500)
    try:
        assert main(["train", "--preset", "mnist_resnet", "--set", "nb_blocks=1", "--subset", "32",
                     "--epochs", "1", "--runs-dir", str(store)]) == 2
    finally:
        store.chmod(0o700)
    err = capsys.readouterr().err
    assert err.startswith("error: runs_dir=") and err.count("\n") == 1


def test_a_bogus_backend_gets_one_line():
    env = {**os.environ, "KERAS_BACKEND": "bogus", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "keras_resnets", "runs"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: KERAS_BACKEND='bogus' is not allowed: one of (")


class _Interrupt(training.Callback):
    def on_begin(self, run, info):
        raise KeyboardInterrupt


def test_ctrl_c_before_the_first_epoch_says_there_is_no_checkpoint(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        training.train(get_preset("mnist_resnet", **TINY), subset=32, epochs=1, runs_dir=tmp_path,
                       run_id="early", callbacks=[_Interrupt()])
    status = RunStore(tmp_path).get("early").status
    assert status["state"] == "interrupted" and "no epoch had completed" in status["message"]
    assert "is kept" not in status["message"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of two epochs, completed."""
    root = tmp_path_factory.mktemp("runs")
    run = training.train(get_preset("mnist_resnet", **TINY), subset=64, epochs=2, batch_size=32,
                         runs_dir=root, run_id="two-epochs")
    assert run.status["state"] == "completed"
    return run


def _reopen(run, **status):
    run.model_path.unlink(missing_ok=True)
    run.write_status(**{"state": "interrupted", **status})


@pytest.mark.slow
def test_a_stale_pid_is_resumed_with_force_once_it_is_not_the_runs(trained):
    stranger = subprocess.Popen(["sleep", "60"])
    impostor = subprocess.Popen(["sh", "-c", f"sleep 60; echo {trained.id}"])
    try:
        _reopen(trained, state="running", pid=stranger.pid, process_start=None, epoch=1)
        with pytest.raises(ValueError, match="--force"):
            training.resume(trained)
        _reopen(trained, state="running", pid=impostor.pid, process_start=None, epoch=1)
        with pytest.raises(ValueError, match="names the run"):
            training.resume(trained, force=True)
        _reopen(trained, state="running", pid=stranger.pid, process_start=None, epoch=1)
        assert training.resume(trained, force=True).status["state"] == "completed"
    finally:
        stranger.kill(), impostor.kill(), stranger.wait(), impostor.wait()
    assert [e["epoch"] for e in trained.metrics() if e["event"] == "epoch"] == [0, 1]


@pytest.mark.slow
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(trained):
    before = [e["loss"] for e in trained.metrics() if e["event"] == "epoch"]
    _reopen(trained, epoch=2)
    trained.checkpoint_path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="previous"):
        assert training.resume(trained).status["state"] == "completed"
    epochs = [e for e in trained.metrics() if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [0, 1] and epochs[0]["loss"] == before[0]
    _reopen(trained, epoch=2)
    for path in (trained.checkpoint_path, trained.previous_checkpoint_path):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="no readable checkpoint.*delete"):
        training.resume(trained)
    status = trained.status  # nothing was trained: the run is as it was
    assert status["state"] == "interrupted" and "no readable checkpoint" in status["message"]
