"""What the pages say about runs: their labels, table rows and tables (no Streamlit).

A run whose files hold unexpected values is shown as damaged, with the reason (`damage_of`),
and every other run as usual: each function here catches `READ_ERRORS` for its run only.

Example:
>>> choose_run(viewing="b", followed=None, ids=["a", "b"], active=["a"])
'b'
>>> summary_table({"runs": 1200, "accuracy": 0.98765, "plain": True})["value"].tolist()
['1,200', '0.9877', 'True']
"""

from __future__ import annotations

import pandas as pd

from explorer import designs, seeds
from explorer.runner import BACKENDS
from keras_resnets.experiments import EXPERIMENTS
from keras_resnets.runs.status import DAMAGED
from keras_resnets.training import TrainingRequest

VERDICT_ICONS = {"agrees": "✓", "does not agree": "✗", "cannot be judged": "?", "not yet run": "·"}
READ_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, ZeroDivisionError,
               OverflowError)
"""What a page may meet reading a run whose files hold unexpected values (the store checks the
fields it knows; a reader shows such a run as damaged and every other run as usual)."""


def damage_of(run, error=None) -> str | None:
    """Why ``run`` is shown as damaged: the store's reason, the reader's ``error``, or None."""
    if run.damage is not None:
        return run.damage
    if error is not None:
        return f"a file of this run holds an unexpected value ({type(error).__name__}: {error})"
    status = run.status
    return status["message"] if status["state"] == DAMAGED else None


def choose_run(viewing, followed, ids, active):
    """The run to show of ``ids``: ``followed`` (one just started), else ``viewing`` (the one
    picked), else the first ``active`` one or the newest."""
    if followed in ids:
        viewing = followed
    if viewing not in ids:
        viewing = active[0] if active else ids[0]
    return viewing


# -- training runs -------------------------------------------------------------------------------
def single_epoch(run) -> bool:
    """Whether ``run`` trains for a single epoch (an unknown count is not)."""
    try:
        return int(run.status.get("epochs") or 0) == 1
    except READ_ERRORS:
        return False


def describe(run) -> str:
    """A short label: the design's name and what sets it apart (plain, option, p_L...)."""
    try:
        return _describe(run)
    except READ_ERRORS:
        return f"damaged run ({run.id[-4:]})"


def _describe(run) -> str:
    if run.damage is not None:
        return f"damaged run ({run.id[-4:]})"
    arch = run.config.architecture
    name = str(arch.get("name", "?"))
    preset = designs.preset_of(name)
    base = designs.preset_design(preset) if preset else {}
    parts = [name]  # the name says what changed from its preset; older runs' names may not
    for key, part, said in (("residual", "plain", "plain"),
                            ("shortcut", f"option {arch.get('shortcut')}", f"option{arch.get('shortcut')}"),
                            ("final_survival_probability",
                             f"p_L={arch.get('final_survival_probability', 1.0):g}", "final_survival_probability"),
                            ("preactivation", "pre-act", "preact")):
        if key in arch and arch[key] != base.get(key) and said not in name and _shown(key, arch[key]):
            parts.append(part)
    parts.append(BACKENDS.get(run.config.backend, run.config.backend or "?"))
    return f"{' · '.join(parts)} ({run.id[-4:]})"


def _shown(key, value) -> bool:
    """Whether a field that differs from the preset is worth a word: a plain network, a
    shortcut option, dropped blocks, pre-activation (not their absence).

    >>> _shown("residual", False), _shown("residual", True), _shown("final_survival_probability", 0.5)
    (True, False, True)
    """
    if key == "residual":
        return value is False
    if key == "final_survival_probability":
        return isinstance(value, (int, float)) and value < 1.0
    return bool(value)


def group_label(group) -> str:
    """A seed group's label: its first run's, with the number of seeds."""
    return describe(group[0]) + (f" · {len(group)} seeds" if len(group) > 1 else "")


def best_accuracy(epochs) -> float | None:
    """The best held-out accuracy of a run's epoch events (None before the first).

    >>> best_accuracy([{"val_accuracy": 0.9}, {"val_accuracy": None}, {"val_accuracy": 0.95}])
    0.95
    """
    return max((e["val_accuracy"] for e in epochs if e.get("val_accuracy") is not None), default=None)


def comparison_row(run, parameters) -> dict:
    """The Compare table's row of ``run``; ``parameters(architecture_json)`` counts the
    trainable parameters of a design (None when it cannot)."""
    error = None
    if run.damage is None:
        try:
            return _comparison_row(run, parameters)
        except READ_ERRORS as caught:
            error = caught
    return {"run": describe(run), "state": f"damaged: {damage_of(run, error)}", "id": run.id}


def _comparison_row(run, parameters) -> dict:
    request = TrainingRequest.from_config(run.config)  # a run whose request cannot be read is damaged
    status = run.status
    epochs = run.epochs()
    seconds = [e["seconds"] for e in epochs if e.get("seconds")]
    recipe, dataset = request.recipe, request.dataset
    return {
        "run": _describe(run),
        "parameters": parameters(request.architecture.to_json()),
        "best val. accuracy": best_accuracy(epochs),
        "time per epoch (s)": sum(seconds) / len(seconds) if seconds else None,
        "backend": BACKENDS.get(run.config.backend, run.config.backend),
        "final train loss": epochs[-1].get("loss") if epochs else None,
        "depth": request.architecture.depth,
        "state": status.get("state"),
        "epochs": f"{status.get('epoch', 0)}/{status.get('epochs', recipe.epochs)}",
        "dataset": dataset.name,
        "images": dataset.subset or "all",
        "optimizer": f"{recipe.optimizer} {recipe.learning_rate}",
        "id": run.id,
    }


def comparison_table(groups, grouped, parameters) -> pd.DataFrame:
    """A row per run, or per seed group (mean and ± std columns) when grouping; ``parameters``
    as for `comparison_row`."""
    rows = [[comparison_row(run, parameters) for run in g] for g in groups]
    if not grouped:
        return pd.DataFrame([r for group_rows in rows for r in group_rows])
    table_rows = []
    for group_rows in rows:  # a damaged run is shown on its own, never averaged into a group
        readable = [r for r in group_rows if not str(r.get("state")).startswith("damaged")]
        table_rows += [seeds.group_row(readable)] if readable else []
        table_rows += [r for r in group_rows if r not in readable]
    table = pd.DataFrame(table_rows)
    numbers = [c for c in table.columns if c.endswith(" ± std")]
    return table.astype({c: float for c in numbers})


def run_line(run) -> str:
    """What the Train page says a run trains: its design, its data, its backend and, when
    several train it, its processes."""
    config = run.config
    backend = BACKENDS.get(config.backend, config.backend or "?")
    processes = f" in {config.processes} processes" if config.processes > 1 else ""
    return f"`{config.architecture.get('name', '?')}` on {config.dataset.name or '?'} with {backend}{processes}"


def runs_table(runs) -> pd.DataFrame:
    """The Train page's table of the 50 newest ``runs``."""
    rows = []
    for run in runs[:50]:
        try:
            rows.append(_runs_row(run))
        except READ_ERRORS as error:
            rows.append({"run": run.id, "state": "damaged", "design": damage_of(run, error)})
    return pd.DataFrame(rows)


def _runs_row(run) -> dict:
    status = run.status
    config = run.config
    return {
        "run": run.id, "state": status.get("state"),
        "design": str(config.architecture.get("name") or run.damage),
        "dataset": str(config.dataset.name),
        "backend": str(BACKENDS.get(config.backend, config.backend)),
        "epochs": f"{status.get('epoch', 0)}/{status.get('epochs', '?')}",
        "best val. accuracy": best_accuracy(run.epochs()),
    }


# -- experiment results --------------------------------------------------------------------------
def experiment_label(status, run_id) -> str:
    """An experiment result's label in the picker: it must not change while the page is open
    (the browser answers with the label), so it names no state.

    >>> experiment_label({"name": "nope", "size": "quick", "seed": 0, "backend": "jax"}, "x1")
    'nope · quick · seed 0 · JAX (x1)'
    """
    experiment = EXPERIMENTS.get(status.get("name"))
    title = experiment.title if experiment else status.get("name", "?")
    backend = BACKENDS.get(status.get("backend"), status.get("backend", "?"))
    return f"{title} · {status.get('size', '?')} · seed {status.get('seed', '?')} · {backend} ({run_id})"


def summary_table(summary) -> pd.DataFrame:
    """An experiment's headline numbers as text: integers with separators, floats to 4 digits."""
    def text(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"

    return pd.DataFrame({"metric": list(summary), "value": [text(v) for v in summary.values()]})


def results_table(statuses) -> pd.DataFrame:
    """A row per experiment result, from ``{id: status}``."""
    return pd.DataFrame([
        {"result": i, "state": s.get("state"), "experiment": s.get("name"), "size": s.get("size"),
         "seed": s.get("seed"), "backend": BACKENDS.get(s.get("backend"), s.get("backend")),
         "started": s.get("started"), "seconds": s.get("seconds")}
        for i, s in statuses.items()])


def scoreboard_table(board: pd.DataFrame, size: str) -> tuple[pd.DataFrame, int, int]:
    """``(table, agreeing, measured)``: the lecture's claims of a
    `keras_resnets.experiments.scoreboard.scoreboard` at ``size``, each with its verdict's
    icon, and how many of the measured claims agree."""
    verdicts = [f"{VERDICT_ICONS[v]} {v}" for v in board["verdict"]]
    table = board.assign(verdict=verdicts).set_index("claim")[["verdict", "measured", "criterion", "paper"]]
    agree = sum(v.endswith(" agrees") for v in verdicts)
    measured = sum(not v.endswith("not yet run") for v in verdicts)
    return table.rename(columns={"measured": f"measured ({size})", "paper": "the paper"}), agree, measured
