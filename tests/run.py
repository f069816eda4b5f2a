"""Runs the whole test suite once per Keras backend and fails if any backend fails.

Usage: ``python tests/run.py [pytest args...]`` (from the repository root). Backends run
two at a time (``KR_TEST_JOBS=1`` runs them one after another); each one's output is
printed when it ends.

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


def start_backend(backend, pytest_args, workdir):
    """Starts pytest with ``KERAS_BACKEND=backend``, its output going to a log file."""
    junit = os.path.join(workdir, f"{backend}.xml")
    log = open(os.path.join(workdir, f"{backend}.log"), "w+")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", f"--junitxml={junit}", *pytest_args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    return proc, log, junit, time.monotonic()


def finish_backend(backend, proc, log, junit, start):
    """Waits for one backend's pytest, prints its output; returns (ok, counts, seconds)."""
    code = proc.wait()
    seconds = time.monotonic() - start
    log.seek(0)
    print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
    sys.stdout.write(log.read())
    log.close()
    if not os.path.exists(junit):
        return False, {"passed": 0, "failed": 1, "skipped": 0}, seconds
    counts = _counts(junit)
    ran = counts["passed"] + counts["failed"]
    if ran == 0:
        print(f"[{backend}] FAILED: no test ran (pytest exit code {code}).", flush=True)
    return code == 0 and ran > 0, counts, seconds


def run_all(pytest_args, workdir, jobs):
    """Runs the backends, ``jobs`` at a time, and returns {backend: (ok, counts, seconds)}.

    Two at a time keep both cores of a small machine busy: much of a test's time is one
    thread of Python or of a compiler.
    """
    results, running = {}, []
    for backend, package in BACKENDS.items():
        if importlib.util.find_spec(package) is None:
            print(f"\n[{backend}] FAILED: the package {package!r} is not installed.", flush=True)
            results[backend] = (False, {"passed": 0, "failed": 1, "skipped": 0}, 0.0)
            continue
        if len(running) >= jobs:
            done = running.pop(0)
            results[done[0]] = finish_backend(*done)
        running.append((backend, *start_backend(backend, pytest_args, workdir)))
    for done in running:
        results[done[0]] = finish_backend(*done)
    return results


def main(argv):
    pytest_args = argv or ["-q"]
    jobs = int(os.environ.get("KR_TEST_JOBS", "2"))
    with tempfile.TemporaryDirectory() as workdir:
        results = run_all(pytest_args, workdir, jobs)
    print("\n===== all backends =====")
    for backend in BACKENDS:
        ok, counts, seconds = results[backend]
        print(f"{backend:<11} {'ok' if ok else 'FAILED':<7} {counts['passed']:>5} passed "
              f"{counts['failed']:>4} failed {counts['skipped']:>4} skipped  {seconds:7.1f} s")
    total = {k: sum(r[1][k] for r in results.values()) for k in ("passed", "failed", "skipped")}
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if all(r[0] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
