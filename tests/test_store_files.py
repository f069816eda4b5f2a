"""No file can take the store or a page down: a seeded generator writes adversarial content
(deep nesting, huge numbers, wrong types, binary, empty, truncated, NaN and Infinity tokens)
into every file of a run (``config.json``, ``status.json``, ``metrics.jsonl``, ``LOCK``, the
checkpoint, ``model.keras``), into launch records and into an experiment's status, and checks
that the listing (`RunStore.list`, ``python -m keras_resnets runs``), ``resume``, the launcher
and every explorer page still show every other run as it is, and each damaged one with its
reason.

One store holds every case, so the pages are opened once; the whole file takes seconds.
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_resnets import get_preset
from keras_resnets.design.validation import MAX_JSON_BYTES
from keras_resnets.runs.files import read_json
from keras_resnets.runs.status import DAMAGED, STATES
from keras_resnets.runs.store import RunStore
from keras_resnets.training import loop as training

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import runner  # noqa: E402
from explorer.experiment_runner import EXPERIMENTS_DIR  # noqa: E402
from keras_resnets.experiments.store import ExperimentStore  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
CASES = 5
"""Adversarial contents drawn per file."""
RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "LOCK", "checkpoint.weights.h5",
             "model.keras")
WRONG = [None, True, -1, 0, 1.5, 2**31, 2**63, 10**30, -10**30, "", "x", "x" * 300, [], [1], {},
         {"a": {"b": {}}}, [[[]]]]
TOKENS = ["NaN", "Infinity", "-Infinity", "1e999", "9" * 400, "-" + "9" * 120]


def nested(rng):
    depth = rng.choice([33, 200, 5_000, 100_000])
    opener = rng.choice(["[", '{"a": '])
    closer = "]" if opener == "[" else "}"
    return opener * depth + "1" + closer * rng.choice([depth, 0])


def mutated(rng, record):
    """``record`` (a JSON object) as text with one value, at any depth, replaced by a wrong
    type, a huge number or a non-finite token."""
    record = json.loads(json.dumps(record))
    parent = record
    key = rng.choice(sorted(parent))
    while isinstance(parent[key], dict) and parent[key] and rng.random() < 0.5:
        parent, key = parent[key], rng.choice(sorted(parent[key]))
    if rng.random() < 0.4:
        parent[key] = "@TOKEN@"
        return json.dumps(record).replace('"@TOKEN@"', rng.choice(TOKENS))
    parent[key] = rng.choice(WRONG)
    return json.dumps(record)


def adversarial(rng, record):
    """Text or bytes that a file holding ``record`` must survive."""
    text = json.dumps(record)
    kind = rng.choice(["nested", "mutated", "mutated", "binary", "empty", "truncated", "not an object",
                       "huge"])
    if kind == "nested":
        return nested(rng)
    if kind == "mutated":
        return mutated(rng, record)
    if kind == "binary":
        return rng.randbytes(rng.randint(1, 3000))
    if kind == "empty":
        return ""
    if kind == "truncated":
        return text[:rng.randrange(len(text))]
    if kind == "huge":
        return json.dumps({**record, "message": "x" * (MAX_JSON_BYTES + 10)})
    return rng.choice(["[1, 2]", "5", '"text"', "null", "true"])


def adversarial_lines(rng, events):
    lines = [json.dumps(e) for e in events]
    bad = adversarial(rng, events[0])
    bad = bad.decode("latin-1") if isinstance(bad, bytes) else bad
    lines.insert(rng.randint(0, len(lines)), bad)
    return "\n".join(lines) + rng.choice(["\n", ""])


def config():
    return {"architecture": get_preset("mnist_resnet", nb_blocks=1, nb_channels=4).to_dict(),
            "dataset": {"name": "mnist_sample", "subset": 64, "validation_split": 0.1},
            "recipe": {"epochs": 2, "batch_size": 32}, "backend": BACKEND, "seed": 0,
            "created": "2025-01-01T12:00:00+00:00"}


EVENTS = [{"event": "batch", "epoch": 0, "step": 1, "loss": 2.3, "accuracy": 0.1, "images_per_second": 50.0,
           "time": 1.7e9},
          {"event": "epoch", "epoch": 0, "step": 2, "loss": 2.0, "accuracy": 0.2, "val_loss": 2.1,
           "val_accuracy": 0.25, "learning_rate": 1e-3, "seconds": 1.0, "time": 1.7e9}]


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def bad_id(name, case):
    """The id of the run whose file ``name`` holds adversarial content number ``case``."""
    return f"bad-{name.split('.')[0].lower()}-{case}"


def make_run(store, run_id, state):
    run = store.create(config(), run_id=run_id)
    run.write_status(state=state, epoch=1, epochs=2, pid=None)
    run.append_metrics(*EVENTS)
    return run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two good runs, and one run per adversarial content of each file (each ``completed``
    unless its status is the file), launch records and experiment statuses likewise."""
    rng = random.Random(29)
    store = RunStore(tmp_path_factory.mktemp("store") / "runs")
    make_run(store, "good-completed", "completed")
    make_run(store, "good-interrupted", "interrupted")
    status = {"state": "completed", "epoch": 1, "epochs": 2, "pid": 123, "process_start": 5,
              "host": "here", "message": "done", "updated": "2025-01-01T12:00:00+00:00"}
    lock = {"pid": 123, "host": os.uname().nodename, "process_start": 5, "created": "now"}
    valid = {"config.json": config(), "status.json": status, "LOCK": lock}
    for name in RUN_FILES:
        for case in range(CASES):
            run = make_run(store, bad_id(name, case), "completed")
            if name == "metrics.jsonl":
                content = adversarial_lines(rng, EVENTS)
            elif name in valid:
                content = adversarial(rng, valid[name])
            else:  # binary files: garbage, text, nothing
                content = rng.choice([rng.randbytes(rng.randint(1, 3000)), "{}", nested(rng), ""])
            write(run.path / name, content)
    for case in range(CASES):
        record = {"run_id": f"launch-{case}", "pid": 123, "backend": BACKEND, "started": time.time(),
                  "command": ["python"]}
        write(store.root / runner.LAUNCH_DIR / f"launch-{case}.json", adversarial(rng, record))
        experiment = ExperimentStore(store.root / EXPERIMENTS_DIR).create("depth")
        write(experiment.path / "status.json", adversarial(rng, {**status, "fraction": 1.0, "name": "depth",
                                                                 "size": "quick", "seed": 0}))
    return store


def all_ids(store):
    return sorted(p.name for p in store.root.iterdir() if p.is_dir() and not p.name.startswith("."))


GOOD = {"good-completed": "completed", "good-interrupted": "interrupted"}
SHOWN = [bad_id(name, i % CASES) for i, name in enumerate(RUN_FILES)]
"""A bad run per file, each picked on the pages that show one run (a page run takes seconds)."""


def test_the_listing_shows_every_run_and_each_damaged_one_with_its_reason(store):
    runs = {run.id: run for run in store.list()}
    assert sorted(runs) == all_ids(store) and len(runs) == 2 + CASES * len(RUN_FILES)
    for run_id, state in GOOD.items():
        assert runs[run_id].status["state"] == state and runs[run_id].metrics() == EVENTS
    damaged = 0
    for run in runs.values():
        status = run.status
        assert status["state"] in (*STATES, DAMAGED), run.id
        if status["state"] == DAMAGED:
            damaged += 1
            assert status["message"], run.id
        run.epochs(), run.batches(), run.lock_holder()  # readable, or skipped, never raised
    assert damaged >= CASES  # the generator does reach the readers


def test_the_command_line_lists_every_run_with_its_reason(store):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "keras_resnets", "runs", "--runs-dir", str(store.root)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "", out.stderr[-2000:]
    listed = [line.split()[0] for line in out.stdout.splitlines()[1:] if not line.startswith(" ")]
    assert sorted(listed) == all_ids(store)
    lines = out.stdout.splitlines()
    for i, line in enumerate(lines):
        if " damaged " in line:
            assert lines[i + 1].startswith("  ") and lines[i + 1].strip(), line


def test_the_launcher_reports_each_unreadable_record_as_a_failed_launch(store):
    pending = runner.Runner(store.root).pending()
    assert sorted(p["run_id"] for p in pending) == [f"launch-{case}" for case in range(CASES)]
    for launch in pending:
        assert launch["state"] in ("starting", "failed")
    records = [launch for launch in pending if "cannot be read" in launch["log"]]
    assert records and all(launch["state"] == "failed" for launch in records)


def test_experiment_statuses_that_cannot_be_read_are_failed_runs(store):
    runs = ExperimentStore(store.root / EXPERIMENTS_DIR).list()
    assert len(runs) == CASES
    assert all(run.status["state"] in STATES for run in runs)


@pytest.fixture(scope="module")
def explorer(store):
    os.environ["KERAS_RESNETS_RUNS_DIR"] = str(store.root)
    yield lambda: AppTest.from_file(str(ROOT / "explorer" / "app.py"), default_timeout=180)
    os.environ.pop("KERAS_RESNETS_RUNS_DIR")


def opened(explorer, page, **session):
    at = explorer()
    at.query_params["stages"] = "1x4"
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("page", ["design", "experiments", "export"])
def test_every_page_opens(explorer, page):
    opened(explorer, page)


def test_take_apart_offers_every_run(explorer, store):
    at = opened(explorer, "take_apart", **{"apart.source": "Run bad-model-0"})  # not the shipped net
    assert {f"Run {run_id}" for run_id in all_ids(store)} <= set(at.selectbox(key="apart.source").options)
    assert any("model.keras" in w.value for w in at.warning), [w.value for w in at.warning]
    for run_id in SHOWN:
        at.selectbox(key="apart.source").set_value(f"Run {run_id}").run()
        assert not at.exception and at.warning, run_id  # none has a model to take apart


def test_train_shows_every_run_and_each_damaged_one_as_damaged(explorer, store):
    at = opened(explorer, "train")
    table = at.dataframe[0].value
    assert sorted(table["run"]) == all_ids(store)
    states = dict(zip(table["run"], table["state"]))
    assert {run_id: states[run_id] for run_id in GOOD} == GOOD
    assert sum(state == DAMAGED for state in states.values()) >= CASES
    for run_id in SHOWN:
        at.selectbox(key="train.view").set_value(run_id).run()
        assert not at.exception, (run_id, [e.message for e in at.exception])


def test_compare_shows_every_run_side_by_side(explorer, store):
    at = opened(explorer, "compare", **{"compare.group_seeds": False})
    at.multiselect(key="compare.runs").set_value(all_ids(store)).run()
    assert not at.exception, [e.message for e in at.exception]
    rows = at.dataframe[0].value
    assert len(rows) == len(all_ids(store))
    assert sorted(at.multiselect(key="compare.runs").value) == all_ids(store)


def test_the_reader_names_the_file_of_what_it_cannot_read(tmp_path):
    cases = {"nested.json": "[" * 100_000, "huge.json": "{}" + " " * MAX_JSON_BYTES,
             "nan.json": '{"a": NaN}', "digits.json": '{"a": ' + "9" * 5000 + "}",
             "binary.json": b"\x89PNG\x00", "list.json": "[1]", "fifo.json": None}
    for name, content in cases.items():
        if content is None:
            os.mkfifo(tmp_path / name)  # opened without blocking, refused as not a file
        else:
            write(tmp_path / name, content)
        with pytest.raises(ValueError, match=name):
            read_json(tmp_path / name)


def test_resume_refuses_each_run_with_a_message_and_changes_no_other(store):
    for run_id in all_ids(store):
        if run_id in GOOD:
            continue
        with pytest.raises(ValueError):  # damaged, completed, or locked by a live process
            training.resume(run_id, runs_dir=store.root)
    assert {r.id: r.status["state"] for r in store.list() if r.id in GOOD} == GOOD
