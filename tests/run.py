"""Runs the whole test suite once per Keras backend and fails if any backend fails.

Usage: ``python tests/run.py [pytest args...]`` (from the repository root).

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


def run_backend(backend, pytest_args, workdir):
    """Runs pytest with ``KERAS_BACKEND=backend``; returns (ok, counts, seconds)."""
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        print(f"\n[{backend}] FAILED: the package {BACKENDS[backend]!r} is not installed.", flush=True)
        return False, {"passed": 0, "failed": 1, "skipped": 0}, 0.0
    junit = os.path.join(workdir, f"{backend}.xml")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    print(f"\n===== KERAS_BACKEND={backend} =====", flush=True)
    start = time.monotonic()
    code = subprocess.call(
        [sys.executable, "-m", "pytest", f"--junitxml={junit}", *pytest_args], env=env
    )
    seconds = time.monotonic() - start
    if not os.path.exists(junit):
        return False, {"passed": 0, "failed": 1, "skipped": 0}, seconds
    counts = _counts(junit)
    ran = counts["passed"] + counts["failed"]
    ok = code == 0 and ran > 0
    if ran == 0:
        print(f"[{backend}] FAILED: no test ran (pytest exit code {code}).", flush=True)
    return ok, counts, seconds


def main(argv):
    pytest_args = argv or ["-q"]
    summary = []
    with tempfile.TemporaryDirectory() as workdir:
        for backend in BACKENDS:
            ok, counts, seconds = run_backend(backend, pytest_args, workdir)
            summary.append((backend, ok, counts, seconds))
    print("\n===== all backends =====")
    for backend, ok, counts, seconds in summary:
        print(f"{backend:<11} {'ok' if ok else 'FAILED':<7} {counts['passed']:>5} passed "
              f"{counts['failed']:>4} failed {counts['skipped']:>4} skipped  {seconds:7.1f} s")
    total = {k: sum(c[k] for _, _, c, _ in summary) for k in ("passed", "failed", "skipped")}
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if all(ok for _, ok, _, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
