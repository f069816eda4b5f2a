"""End to end: ``streamlit run explorer/app.py`` driven by a real headless Chromium.

Opens the app, sees the lecture network's 117,802 trainable parameters, opens a small design
from a link, trains the lecture's network with the Train page's defaults (the first minute) and
sees the curves appear and the run reach 88% or more, deletes a block of it on Take apart, runs
a second seed of it on Compare, visits every page and checks that none shows a Streamlit
exception. Screenshots of every page go to
``test-artifacts/browser/`` (git-ignored) for people to look at.

It needs Debian's ``chromium`` (``apt-get install chromium``; Playwright's own browser download
is not used). Without it the test is skipped, loudly, except under ``CI=true`` where it
fails: CI installs Chromium, so a missing one there is a broken setup, not a reason to skip.

The app and its training worker are the same whatever the test process's backend, so this
test runs once, in the TensorFlow pass of ``tests/run.py`` (``KERAS_BACKEND`` unset or
``tensorflow``); it drives the worker's backend choice through the page (JAX when installed).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

def _chromium():
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    reason = (f"Chromium is missing ({CHROMIUM} not found): the explorer's browser test did NOT run. "
              "Install it with: apt-get install -y chromium")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


RUN_SECONDS = 2400
"""How long the test waits for a first-minute run: 69 s alone, but up to 1,442 s measured while
another backend's test pass held the cores (PyTorch's two threads slow down twentyfold)."""


def _wait_for_runs(root, count, timeout=RUN_SECONDS):
    """Waits until ``count`` runs of the store at ``root`` have completed; fails at once when a
    run fails, a worker exits without a run, or more runs than ``count`` appear, and when the
    time is up, saying where each run is and what each worker last wrote."""
    from explorer.runner import LAUNCH_DIR, Runner
    from keras_resnets.runs.store import RunStore

    deadline = time.time() + timeout
    while time.time() < deadline:
        states = {run.id: run.status for run in RunStore(root).list()}
        lost = [p["run_id"] for p in Runner(root).pending() if p["state"] == "failed"]
        if len(states) == count and all(s["state"] == "completed" for s in states.values()):
            return
        if lost or len(states) > count or any(
                s["state"] in ("failed", "cancelled", "interrupted") for s in states.values()):
            break
        time.sleep(2)
    where = {i: f"{s['state']}, {s.get('message', '')[:100]} (updated {s.get('updated')})"
             for i, s in states.items()}
    _dump_worker_stacks(root)
    logs = {p.name: p.read_text()[-4000:] for p in (root / LAUNCH_DIR).glob("*.log")}
    pytest.fail(f"{count} completed runs expected within {timeout} s, {time.strftime('%H:%M:%S')}: "
                f"runs {where}; workers without a run: {lost}; worker logs: {logs}")


def _launched(root):
    """The launch records of the workers the app started for the store at ``root``."""
    from explorer.runner import ATTACHMENTS, LAUNCH_DIR, LaunchRecord

    return [LaunchRecord.read(path) for path in (root / LAUNCH_DIR).glob("*.json")
            if not path.name.removesuffix(".json").endswith(ATTACHMENTS)]


def _dump_worker_stacks(root):
    """Has each live worker of the store at ``root`` write its threads' stacks to its log
    (``python -m keras_resnets`` does on SIGUSR1)."""
    from keras_resnets.runs.processes import process_alive

    for record in _launched(root):
        if process_alive(record.pid):
            os.kill(record.pid, signal.SIGUSR1)
    time.sleep(2)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, user_environment):
    """A Streamlit server of the explorer on a free local port, with an empty run store."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        pytest.skip("the browser test runs once, in the TensorFlow pass of the suite")
    chromium = _chromium()
    pytest.importorskip("playwright.sync_api")
    runs = tmp_path_factory.mktemp("browser") / "runs"
    port = _free_port()
    log = open(tmp_path_factory.mktemp("log") / "streamlit.log", "w+")
    env = {**user_environment, "KERAS_RESNETS_RUNS_DIR": str(runs)}
    env.pop("KERAS_BACKEND")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "explorer/app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        log.seek(0)
        pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
    yield {"url": url, "runs": runs, "chromium": chromium}
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    from explorer import workers
    from explorer.runner import LAUNCH_DIR

    if (runs / LAUNCH_DIR).is_dir():  # workers outlive the app, by design: not the test's
        for record in _launched(runs):
            workers.stop(record.pid, record.run_id)


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=server["chromium"], args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page, name):
    """A screenshot of the whole page: Streamlit scrolls inside its own container, so the
    viewport is grown to the content's height for the picture."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    settle(page)
    page.wait_for_timeout(500)
    size = page.viewport_size
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.body;
        return Math.max(main.scrollHeight, window.innerHeight);
    }""")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 8000)})
    page.wait_for_timeout(400)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def no_exception(page, where):
    assert page.locator('[data-testid="stException"]').count() == 0, f"a Streamlit exception on {where}"


def settle(page, timeout=120_000):
    """Waits until the script has finished running (no 'Running...' status widget)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=timeout)


def go(page, title):
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    settle(page)


@pytest.mark.browser
@pytest.mark.slow
def test_explorer_in_a_real_browser(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # First launch: the lecture's network and its count
    page.goto(server["url"])
    page.get_by_text("117,802").first.wait_for(timeout=180_000)
    settle(page)
    assert "preset=mnist_resnet" in page.url
    page.locator('[data-testid="stGraphVizChart"] svg').first.wait_for(timeout=30_000)
    no_exception(page, "Design")
    shot(page, "01-design-default")

    # A link reproduces a design: a small CIFAR-style network with option B
    page.goto(f"{server['url']}/?preset=cifar_resnet20&stages=1x8,1x16/2&shortcut=B&stem.filters=8")
    settle(page)
    page.get_by_text("Trainable parameters").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stGraphVizChart"] svg').nth(1).wait_for(timeout=30_000)
    no_exception(page, "Design from a link")
    shot(page, "02-design-from-link-block")

    # An invalid design gets an inline message, not a traceback
    shape = page.get_by_role("textbox", name="Input shape")
    shape.fill("abc")
    shape.press("Enter")
    settle(page)
    page.get_by_text("input_shape='abc' is not allowed").wait_for(timeout=30_000)
    no_exception(page, "Design with an invalid field")
    shot(page, "03-design-invalid")
    shape.fill("28x28x1")
    shape.press("Enter")
    settle(page)
    page.get_by_text("Trainable parameters").first.wait_for(timeout=60_000)

    # Train: the lecture's network with the page's defaults (the first minute), live curves
    page.goto(server["url"])
    page.get_by_text("117,802").first.wait_for(timeout=180_000)
    settle(page)
    go(page, "Train")
    page.get_by_text("Will train").wait_for(timeout=60_000)
    no_exception(page, "Train")
    shot(page, "04-train-settings")
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Starting the backend").or_(page.get_by_text("— running")).first.wait_for(timeout=60_000)
    shot(page, "04b-train-starting")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.wait_for(timeout=240_000)
    # The curves are drawn while it trains, and the progress bar moves on without a reload
    main_text = page.locator('[data-testid="stMain"]').inner_text()
    assert "— running" in main_text, f"the chart should appear before the run ends:\n{main_text[-1500:]}"
    progress = page.locator('[data-testid="stProgress"]').first
    first_text = progress.inner_text()
    page.wait_for_timeout(1500)
    shot(page, "05-train-live")
    assert "Held-out accuracy" in page.locator('[data-testid="stMain"]').inner_text()
    deadline = time.time() + 300
    while progress.inner_text() == first_text and time.time() < deadline:
        page.wait_for_timeout(2000)
    assert progress.inner_text() != first_text, "the progress bar should move on without a reload"
    # The rest of the run on a page that does not poll (see the seed below), then back to Train
    go(page, "Export and share")
    _wait_for_runs(server["runs"], 1)
    go(page, "Train")
    page.get_by_text("— completed", exact=False).first.wait_for(timeout=120_000)
    assert "100%" in page.locator('[data-testid="stProgress"]').first.inner_text()
    settle(page)
    page.locator('[data-testid="stVegaLiteChart"]').nth(1).wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    no_exception(page, "Train after the run")
    shot(page, "06-train-completed")
    page.get_by_text("Try the trained model").click()
    page.get_by_text("of 16 right").wait_for(timeout=60_000)
    settle(page)
    no_exception(page, "Train, trying the model")
    shot(page, "06b-train-try-the-model")
    runs = [p for p in server["runs"].iterdir() if (p / "status.json").exists()]
    assert len(runs) == 1 and '"completed"' in (runs[0] / "status.json").read_text()
    epochs = [e for e in map(json.loads, (runs[0] / "metrics.jsonl").read_text().splitlines())
              if e["event"] == "epoch"]
    assert epochs[-1]["val_accuracy"] >= 0.88, f"the default run should learn: {epochs}"
    # its validation curve on Train: the held-out probes during the epoch and the epoch's end
    probes = [e for e in map(json.loads, (runs[0] / "metrics.jsonl").read_text().splitlines())
              if e["event"] == "probe"]
    assert len(probes) + len(epochs) >= 8, probes
    main_text = page.locator('[data-testid="stMain"]').inner_text()
    assert "Held-out accuracy" in main_text and "None" not in main_text

    # A reload loses nothing: the run is read back from the run store
    page.reload()
    settle(page)
    page.get_by_text(runs[0].name).first.wait_for(timeout=60_000)
    assert "preset=mnist_resnet" in page.url

    # Take apart: first the shipped pretrained pair, whose claims are told with their numbers
    go(page, "Take apart")
    page.get_by_text("plain twin: held-out accuracy").wait_for(timeout=120_000)
    page.get_by_text("Holds for").first.wait_for(timeout=60_000)
    page.get_by_text("points at the median").first.wait_for(timeout=60_000)
    no_exception(page, "Take apart, the shipped networks")
    shot(page, "07-take-apart-shipped")
    # then the run just trained: delete its first block
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Network").click()
    page.get_by_role("option", name=f"Run {runs[0].name}").click()
    settle(page)
    page.get_by_text("ResNet: held-out accuracy").wait_for(timeout=120_000)
    page.locator('[data-testid="stMultiSelect"]').filter(has_text="Delete blocks").click()
    page.get_by_role("option", name="1", exact=True).click()
    page.keyboard.press("Escape")
    settle(page)
    page.locator('[data-testid="stMetricDelta"]').filter(has_text="points").first.wait_for(timeout=120_000)
    no_exception(page, "Take apart, one block deleted")
    shot(page, "07a-take-apart-lesion")

    # Compare and Export
    go(page, "Compare")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    no_exception(page, "Compare")
    shot(page, "07-compare")
    page.get_by_text("Show batch curves").click()  # off: the epochs and the held-out probes
    settle(page)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    shot(page, "07a-compare-without-batch-curves")

    # A seed group: one more seed of that run, then its mean curve with a band of ± one std
    seed_count = page.locator('input[aria-label="Seeds"]')
    seed_count.fill("1")
    seed_count.press("Enter")
    settle(page)
    page.get_by_role("button", name="Run 1 seed", exact=True).click()  # there once the app has the count
    settle(page)
    no_exception(page, "Compare, starting a seed")

    # Wait on a page that does not poll: Compare redraws its charts every 3 s while a run is
    # active, and on a loaded machine that competes with the seed's worker for the cores.
    go(page, "Export and share")
    _wait_for_runs(server["runs"], 2)
    go(page, "Train")
    go(page, "Compare")
    page.get_by_text("Run more seeds").first.wait_for(timeout=60_000)
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for(timeout=60_000)
    # The table's download comes after the charts: on a loaded machine, seconds after them.
    csv = page.get_by_role("button", name="Table (CSV)")
    csv.wait_for(timeout=60_000)
    no_exception(page, "Compare with a seed group")
    assert csv.count() == 1
    shot(page, "07b-compare-seed-group")
    go(page, "Export and share")
    page.get_by_text("Rebuild it in Python").wait_for(timeout=60_000)
    page.get_by_text("keras_resnets.build_resnet(architecture)").first.wait_for(timeout=30_000)
    page.locator('[data-testid="stFileUploaderDropzone"]').wait_for(timeout=30_000)
    no_exception(page, "Export")
    shot(page, "08-export")
    go(page, "Experiments")
    page.get_by_text("The lecture's claims", exact=True).wait_for(timeout=60_000)
    page.get_by_role("button", name="Run all quick experiments").wait_for(timeout=30_000)
    no_exception(page, "Experiments")
    shot(page, "09-experiments-scoreboard")
    assert not errors, errors


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_chromium_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Chromium is missing"):
        _chromium()
