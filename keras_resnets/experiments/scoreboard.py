"""The lecture's claims as a scoreboard: each experiment's newest stored result at one size,
judged by the experiment's `Criterion`.

Example:
>>> import tempfile
>>> from keras_resnets.experiments.store import ExperimentStore
>>> board = scoreboard(ExperimentStore(tempfile.mkdtemp()), "quick")
>>> len(board), set(board.verdict)
(7, {'not yet run'})
"""

import pandas as pd

from keras_resnets.experiments import EXPERIMENTS

VERDICTS = ("agrees", "does not agree", "cannot be judged", "not yet run")
COLUMNS = ["claim", "paper", "measured", "criterion", "verdict", "result", "backend", "seed"]


def judge(experiment, summary):
    """``(measured, verdict)``: our numbers in words and one of `VERDICTS`.

    ``summary`` is a run's headline numbers, ``None`` when the experiment has not run.

    Example:
    >>> depth = EXPERIMENTS["plain_vs_residual"]
    >>> judge(depth, {"plain_error_increase": 0.2, "residual_error_increase": -0.01})[1]
    'agrees'
    >>> judge(depth, None)
    ('', 'not yet run')
    """
    if summary is None:
        return "", "not yet run"
    criterion = experiment.criterion
    try:
        return criterion.measure(summary), "agrees" if criterion.holds(summary) else "does not agree"
    except (KeyError, TypeError, ValueError) as error:  # a summary of another version of the experiment
        return f"the summary lacks {error}", "cannot be judged"


def latest_runs(store, size):
    """``{experiment name: run}``: the last completed run of each experiment at ``size`` (by the
    time its status was last written, which ids, to the second, cannot order)."""
    latest = {}
    for run in store.list():
        status = run.status
        if status.get("state") != "completed" or status.get("size") != size:
            continue
        best = latest.get(status.get("name"))
        if best is None or status.get("updated", "") > best[1]:
            latest[status.get("name")] = (run, status.get("updated", ""))
    return {name: run for name, (run, _) in latest.items()}


def scoreboard(store, size):
    """A row per experiment (in the registry's order): the claim, the paper's number, ours at
    ``size`` from the newest completed run in ``store`` (an `ExperimentStore`), the criterion
    and the verdict."""
    latest = latest_runs(store, size)
    rows = []
    for name, experiment in EXPERIMENTS.items():
        run = latest.get(name)
        summary, status = None, {}
        if run is not None:
            status = run.status
            try:
                summary = run.summary()
            except ValueError:
                summary = {}
        measured, verdict = judge(experiment, summary)
        rows.append({"claim": experiment.title, "paper": experiment.criterion.paper, "measured": measured,
                     "criterion": experiment.criterion.test, "verdict": verdict,
                     "result": run.id if run else None, "backend": status.get("backend"),
                     "seed": status.get("seed")})
    return pd.DataFrame(rows, columns=COLUMNS)
