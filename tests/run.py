"""Runs the whole test suite once per Keras backend and fails if any backend fails.

Usage: ``python tests/run.py [pytest args...]`` (from the repository root). Backends run
two at a time, the last one in two halves (`passes`; ``KR_TEST_JOBS=1`` runs them one after
another, whole); each run's output is printed when it ends.

First it makes the torchvision reference files that ``tests/test_interop.py`` compares with,
unless they are there and current: `tests/reference/torchvision_refs.py` runs in a Python with
PyPI's torch and torchvision, ``$KERAS_RESNETS_TORCHVISION_PYTHON`` if set, else a virtual
environment it creates once in ``~/.cache/keras-resnets/torchvision-venv`` (torch 2.13.0 and
torchvision 0.28.0 from PyPI, about 5 GB and 2.5 minutes; the suite's own torch cannot be
used: a CPU build from disk that PyPI's torchvision does not load).

A backend that cannot be imported fails the run (it is never skipped), and so does a
pytest run that collects no test. The last line sums up all backends as
``N passed, N failed, N skipped``.
"""

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def _counts(junit_path):
    root = ET.parse(junit_path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in total:
            total[key] += int(suite.get(key, 0))
    failed = total["failures"] + total["errors"]
    return {"passed": total["tests"] - failed - total["skipped"], "failed": failed,
            "skipped": total["skipped"]}


def _load(name, path):
    """The module of the file ``path`` (relative to the repository), without its package."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.path.dirname(__file__), "..", path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def passes(pytest_args, jobs):
    """The pytest runs: ``(label, backend, args)``, one per backend. With two at a time and no
    test paths given, the last backend's run is split in two halves of the test files: it
    starts when one of the first two ends, and its halves end on both cores at about the same
    time."""
    runs = [(backend, backend, list(pytest_args)) for backend in BACKENDS]
    given = any(os.path.exists(arg.split("::")[0]) for arg in pytest_args)
    if jobs != 2 or given:
        return runs
    here = os.path.dirname(os.path.abspath(__file__))
    files = sorted(os.path.join(here, name) for name in os.listdir(here)
                   if name.startswith("test_") and name.endswith(".py"))
    backend = runs.pop()[1]
    return runs + [(f"{backend} {i + 1}/2", backend, [*pytest_args, *files[i::2]]) for i in (0, 1)]


def start_pass(label, backend, pytest_args, workdir, share):
    """Starts pytest with ``KERAS_BACKEND=backend`` and the environment variables ``share``,
    its output going to a log file."""
    name = label.replace(" ", "-").replace("/", "of")
    junit = os.path.join(workdir, f"{name}.xml")
    log = open(os.path.join(workdir, f"{name}.log"), "w+")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **share}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--junitxml={junit}", *pytest_args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    return proc, log, junit, time.monotonic()


def finish_pass(label, proc, log, junit, start):
    """Waits for one pytest run, prints its output; returns (ok, counts, seconds)."""
    code = proc.wait()
    seconds = time.monotonic() - start
    log.seek(0)
    print(f"\n===== KERAS_BACKEND={label} =====", flush=True)
    sys.stdout.write(log.read())
    log.close()
    if not os.path.exists(junit):
        return False, {"passed": 0, "failed": 1, "skipped": 0}, seconds
    counts = _counts(junit)
    ran = counts["passed"] + counts["failed"]
    if ran == 0:
        print(f"[{label}] FAILED: no test ran (pytest exit code {code}).", flush=True)
    return code == 0 and ran > 0, counts, seconds


def _first_to_end(running):
    """Waits until one of the running pytest runs ends, and returns its entry."""
    while True:
        for entry in running:
            if entry[1].poll() is not None:
                return entry
        time.sleep(1)


def run_all(pytest_args, workdir, jobs):
    """Runs the `passes`, ``jobs`` at a time, and returns {label: (ok, counts, seconds)}.

    Two at a time keep both cores of a small machine busy: much of a test's time is one
    thread of Python or of a compiler.
    """
    # The runs that run at once share the cores (their OpenMP threads). runtime/environment.py alone:
    # the package's import would set the fast settings in this process.
    share = _load("environment", os.path.join("keras_resnets", "runtime", "environment.py")).core_share(jobs)
    results, running = {}, []
    for label, backend, args in passes(pytest_args, jobs):
        if importlib.util.find_spec(BACKENDS[backend]) is None:
            print(f"\n[{label}] FAILED: the package {BACKENDS[backend]!r} is not installed.",
                  flush=True)
            results[label] = (False, {"passed": 0, "failed": 1, "skipped": 0}, 0.0)
            continue
        if len(running) >= jobs:
            done = _first_to_end(running)
            running.remove(done)
            results[done[0]] = finish_pass(*done)
        running.append((label, *start_pass(label, backend, args, workdir, share)))
    for done in running:
        results[done[0]] = finish_pass(*done)
    return results


def _load_refs():
    return _load("torchvision_refs", os.path.join("tests", "reference", "torchvision_refs.py"))


def _references_current(refs):
    import numpy as np

    folder = refs.reference_dir()
    for name in ("resnet18.pth", "imagenet_preprocess.npz"):
        if not os.path.exists(os.path.join(folder, name)):
            return False
    for name in refs.MODELS:
        path = os.path.join(folder, f"{name}.npz")
        if not os.path.exists(path):
            return False
        with np.load(path) as data:
            if int(data["version"]) != refs.VERSION:
                return False
    return True


def _torchvision_python():
    """A Python with PyPI's torch and torchvision: the environment variable's or our venv."""
    python = os.environ.get("KERAS_RESNETS_TORCHVISION_PYTHON")
    if python:
        return python
    venv = os.path.join(os.path.expanduser("~"), ".cache", "keras-resnets", "torchvision-venv")
    python = os.path.join(venv, "bin", "python")
    probe = [python, "-c", "import torchvision; torchvision.models.resnet18()"]
    if os.path.exists(python) and subprocess.call(probe, stderr=subprocess.DEVNULL) == 0:
        return python
    print(f"\n===== creating {venv} (PyPI's torch and torchvision) =====", flush=True)
    subprocess.check_call([sys.executable, "-m", "venv", "--clear", venv])
    # PyPI's own builds, not the CPU wheel this machine's pip configuration points at.
    env = {**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull, "PIP_CONSTRAINT": ""}
    subprocess.check_call([python, "-m", "pip", "install", "-q", "--index-url",
                           "https://pypi.org/simple", "torch==2.13.0", "torchvision==0.28.0",
                           "numpy"], env=env)
    return python


def make_references():
    """Makes the torchvision reference files unless they are current; True if they are then."""
    refs = _load_refs()
    if _references_current(refs):
        return True
    print("\n===== torchvision reference files =====", flush=True)
    start = time.monotonic()
    try:
        python = _torchvision_python()
        subprocess.check_call([python, os.path.join(os.path.dirname(__file__), "reference",
                                                    "torchvision_refs.py")])
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"FAILED to make the references ({error}): tests/test_interop.py will fail.",
              flush=True)
        return False
    print(f"made in {time.monotonic() - start:.1f} s", flush=True)
    return True


def main(argv):
    pytest_args = argv or ["-q"]
    make_references()
    jobs = int(os.environ.get("KR_TEST_JOBS", "2"))
    with tempfile.TemporaryDirectory() as workdir:
        results = run_all(pytest_args, workdir, jobs)
    print("\n===== all backends =====")
    for label, (ok, counts, seconds) in results.items():
        print(f"{label:<12} {'ok' if ok else 'FAILED':<7} {counts['passed']:>5} passed "
              f"{counts['failed']:>4} failed {counts['skipped']:>4} skipped  {seconds:7.1f} s")
    total = {k: sum(r[1][k] for r in results.values()) for k in ("passed", "failed", "skipped")}
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if all(r[0] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
