"""The explorer's Experiments page and its worker, ``python -m keras_resnets.experiments``: the
page shows the lecture's claims and results read from disk, a worker runs an experiment to
completion, bad names, sizes and ids are refused, and Cancel stops a worker.

Runs on the test process's ``KERAS_BACKEND`` (workers are started with it).
"""

import json
import os
import signal
import sys
import time

import pytest

pytest.importorskip("streamlit")
alt = pytest.importorskip("altair")

import pandas as pd  # noqa: E402
from test_explorer import app as explorer_app  # noqa: E402
from test_explorer import new_app_test  # noqa: E402

import keras_resnets.experiments.__main__ as worker  # noqa: E402
from explorer import workers  # noqa: E402
from explorer.experiment_runner import EXPERIMENTS_DIR, ExperimentRunner  # noqa: E402
from keras_resnets.experiments import EXPERIMENTS, Result  # noqa: E402
from keras_resnets.experiments.store import ExperimentRun, ExperimentStore  # noqa: E402
from keras_resnets.runs.processes import identity, process_alive  # noqa: E402
from keras_resnets.runs.store import RunStore  # noqa: E402

BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
DEAD_PID = 2**22 + 12345


pytestmark = pytest.mark.usefixtures("runs_dir")


def app():
    """The explorer on its Experiments page."""
    return explorer_app(page="experiments")


def fake_result(runs_dir, run_id="20250101-120000-shattered_gradients-abcd", **status):
    """A finished run of shattered_gradients written to disk, as a worker would."""
    run = ExperimentRun(runs_dir / EXPERIMENTS_DIR / run_id)
    run.path.mkdir(parents=True)
    data = pd.DataFrame({"lag": [1, 2, 3], "autocorrelation": [0.9, 0.7, 0.5]})
    run.save(Result(data, alt.Chart(data).mark_line().encode(x="lag:Q", y="autocorrelation:Q"),
                    {"lag1_1_layer": 0.97, "points": 256}))
    run.write_status(**{"state": "completed", "fraction": 1.0, "message": "done", "pid": DEAD_PID,
                        "name": "shattered_gradients", "size": "quick", "seed": 0, "backend": BACKEND,
                        "started": "2025-01-01T12:00:00+00:00", "seconds": 12.3, **status})
    return run


def wait_for(condition, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def texts(elements):
    return [e.value for e in elements]


def test_the_page_shows_the_claim_of_the_selected_experiment():
    at = app()
    first = next(iter(EXPERIMENTS.values()))
    assert any(first.claim in m for m in texts(at.markdown))
    at.selectbox(key="experiments.name").set_value("highway").run()
    assert not at.exception
    assert any(EXPERIMENTS["highway"].claim in m for m in texts(at.markdown))
    assert not any(first.claim in m for m in texts(at.markdown))
    assert at.button_group(key="experiments.size").options == ["quick", "full (for a GPU)"]
    at.button_group(key="experiments.size").set_value("full").run()
    assert any("for a GPU" in c for c in texts(at.caption))
    assert any("No experiment results yet" in c for c in texts(at.caption))


def test_a_finished_result_is_read_from_disk(runs_dir):
    run = fake_result(runs_dir)
    at = app()
    assert at.selectbox(key="experiments.view").value == run.id
    assert any("completed" in m for m in texts(at.markdown))
    assert any(EXPERIMENTS["shattered_gradients"].claim in m for m in texts(at.markdown))
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1 and json.loads(charts[0].proto.spec)["mark"]["type"] == "line"
    table = at.dataframe[0].value
    assert dict(zip(table["metric"], table["value"])) == {"lag1_1_layer": "0.97", "points": "256"}
    assert any(b.proto.label == "Download the data (data.csv)" for b in at.get("download_button"))


def test_failed_and_interrupted_runs_get_a_message(runs_dir):
    fake_result(runs_dir, "20250101-120000-highway-0001", name="highway", state="failed",
                message="ValueError: out of memory")
    fake_result(runs_dir, "20250101-120000-highway-0002", name="highway", state="running")
    at = app()
    assert any("interrupted" in w for w in texts(at.warning))  # the newest; its pid is gone
    at.selectbox(key="experiments.view").set_value("20250101-120000-highway-0001").run()
    assert not at.exception
    assert any("failed: ValueError: out of memory" in e and "Traceback" not in e for e in texts(at.error))
    assert not at.get("vega_lite_chart")


def test_unknown_names_and_sizes_are_refused_with_a_message(runs_dir, tmp_path, capsys):
    for argv, message in ((["nope"], "invalid choice: 'nope'"),
                          (["highway", "--size", "huge"], "invalid choice: 'huge'")):
        with pytest.raises(SystemExit) as exit_info:
            worker.main([*argv, "--out", str(tmp_path / "out")])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    runner = ExperimentRunner(runs_dir)
    for kwargs in ({"name": "nope"}, {"name": "highway", "size": "huge"}, {"name": "highway", "backend": "theano"},
                   {"name": "highway", "seed": -1}):
        with pytest.raises(ValueError, match="is not allowed"):
            runner.launch(**kwargs)
    assert runner.runs() == []


def test_unsafe_ids_never_leave_the_experiment_store(runs_dir, tmp_path):
    fake_result(tmp_path, "secret")  # outside the store: tmp_path/.experiments/secret
    (runs_dir / EXPERIMENTS_DIR).mkdir(parents=True)
    (runs_dir / EXPERIMENTS_DIR / "link").symlink_to(tmp_path / EXPERIMENTS_DIR / "secret")
    runner = ExperimentRunner(runs_dir)
    for bad in ("../../.experiments/secret", "..", "/etc", "a/../../secret", "", "x" * 200, "link"):
        with pytest.raises(ValueError):
            runner.get(bad)
        with pytest.raises(ValueError):
            runner.cancel(bad)
    assert runner.runs() == []
    at = new_app_test()
    at.session_state["experiments.view"] = "../../.experiments/secret"
    at.run()
    at.switch_page("app_pages/experiments.py").run()
    assert not at.exception and not at.get("vega_lite_chart")


@pytest.mark.slow
def test_a_worker_runs_an_experiment_to_completion(runs_dir):
    runner = ExperimentRunner(runs_dir)
    run_id = runner.launch("shattered_gradients", size="tiny", seed=1, backend=BACKEND)
    run = runner.get(run_id)
    assert wait_for(lambda: run.status["state"] not in ("created", "running"), 300), run.log_tail()
    status = run.status
    assert status["state"] == "completed", (status, run.log_tail())
    assert (status["name"], status["size"], status["seed"], status["backend"]) == (
        "shattered_gradients", "tiny", 1, BACKEND)
    assert status["fraction"] == 1.0 and status["seconds"] > 0
    data = pd.read_csv(run.path / "data.csv")
    assert {"network", "seed", "x", "gradient"} <= set(data.columns) and len(data) > 0
    assert run.chart_spec()["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    summary = run.summary()
    assert summary["lag1_1_layer"] > summary["lag1_24_layer"]
    at = app()
    assert at.selectbox(key="experiments.view").value == run_id and len(at.get("vega_lite_chart")) == 1


@pytest.mark.slow
def test_cancel_stops_a_running_worker(runs_dir):
    runner = ExperimentRunner(runs_dir)
    run_id = runner.launch("shattered_gradients", size="quick", backend=BACKEND)
    run = runner.get(run_id)
    assert wait_for(lambda: run.status["state"] != "created", 120), run.log_tail()
    assert run.status["state"] == "running", (run.status, run.log_tail())
    pid = run.status["pid"]
    at = app()
    at.button(key=f"experiments.cancel_{run_id}").click().run()
    assert not at.exception
    assert run.status["state"] == "cancelled", (run.status, run.log_tail())
    assert not process_alive(pid), run.log_tail()


def test_store_lists_runs_newest_first(runs_dir):
    older = fake_result(runs_dir, "20250101-120000-highway-0001")
    newer = fake_result(runs_dir, "20250102-120000-highway-0001")
    (runs_dir / EXPERIMENTS_DIR / "no-status").mkdir()
    assert [r.id for r in ExperimentStore(runs_dir / EXPERIMENTS_DIR).list()] == [newer.id, older.id]


def test_a_worker_asked_to_cancel_stops_at_its_progress_report_like_a_training_run(tmp_path):
    run = ExperimentRun(tmp_path / "out")
    run.path.mkdir()
    run.write_status(state="created", **identity())  # as the explorer's launcher writes it
    run.request_cancel()  # the CANCEL file a training run's worker checks at every batch
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = worker.main(["shattered_gradients", "--size", "tiny", "--out", str(run.path)])
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert code == 143 and run.status["state"] == "cancelled"
    assert not (run.path / "summary.json").exists()


def test_experiment_runs_read_a_dead_or_replaced_worker_as_training_runs_do(runs_dir):
    """An active status whose pid is gone, or whose pid now names another process (its start
    time differs), reads as interrupted; the live process it names stays running."""
    store = ExperimentStore(runs_dir / EXPERIMENTS_DIR)
    me = identity()
    cases = {"gone": {"pid": DEAD_PID}, "reused": {**me, "process_start": me["process_start"] + 1},
             "alive": me}
    for name, fields in cases.items():
        run = store.create(name)
        run.write_status(state="running", **fields)
        training = RunStore(runs_dir).create({"seed": 0}, run_id=name)
        training.write_status(state="running", **fields)
        expected = "running" if name == "alive" else "interrupted"
        assert run.status["state"] == training.status["state"] == expected, name
        assert name == "alive" or "stopped without finishing" in run.status["message"]


def test_workers_started_together_share_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(workers, "_PROCESSES", {})  # none of other tests' workers
    # Each worker lives a few seconds: the first of the two is still running when the second starts.
    show = [sys.executable, "-c", "import os, time; print(os.environ.get('OMP_NUM_THREADS')); time.sleep(3)"]
    alone = workers.start("alone", show, BACKEND, tmp_path / "alone.log")
    alone.wait()
    batch = [workers.start(f"w{i}", show, BACKEND, tmp_path / f"w{i}.log", starting=2 - i) for i in range(2)]
    for process in batch:
        process.wait()
    workers.reap()
    threads = [(tmp_path / f"{key}.log").read_text().strip() for key in ("alone", "w0", "w1")]
    assert threads == ["None", "2", "2"]
