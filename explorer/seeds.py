"""Seed groups: runs that differ only by their seed, summarised as mean and standard deviation.

Two runs are in one group when their ``config.json`` agree on everything that shapes the
result (design, dataset, recipe, backend, distribution); the seed, the creation time and the
library versions are left out. Logic without Streamlit, so that it is tested directly.

Example:
>>> a = {"architecture": {"name": "mnist_resnet"}, "seed": 0, "created": "t0", "backend": "jax"}
>>> b = {**a, "seed": 1, "created": "t1"}
>>> group_key(a) == group_key(b), group_key(a) == group_key({**a, "backend": "torch"})
(True, False)
>>> mean_and_std([0.9, 0.95, 1.0])
(0.95, 0.05)
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping

import pandas as pd

from keras_resnets.runs.records import RunConfig
from keras_resnets.training import TrainingRequest

IGNORED = ("seed", "created", "versions", "run_id")
"""Fields of ``config.json`` that do not shape what a run learns (or change with every run)."""
SUMMARISED = ("best val. accuracy", "final train loss", "time per epoch (s)")
"""Columns of the Compare table given as mean and standard deviation over a group."""


def group_key(config: Mapping) -> str:
    """The canonical JSON of ``config`` without its seed and bookkeeping fields."""
    return json.dumps({k: v for k, v in config.items() if k not in IGNORED}, sort_keys=True, default=str)


def group(runs) -> list[list]:
    """The runs in seed groups, in the order of their first run; each group in run order."""
    groups: dict[str, list] = {}
    for run in runs:
        groups.setdefault(group_key(run.config), []).append(run)
    return list(groups.values())


def group_of(runs, run_id) -> list:
    """The seed group of ``runs`` that holds the run ``run_id``."""
    return next(g for g in group(runs) if run_id in {r.id for r in g})


def mean_and_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values that are not ``None`` (std ``None``
    below two values)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None, None
    mean = statistics.fmean(values)
    return round(mean, 12), (round(statistics.stdev(values), 12) if len(values) > 1 else None)


def group_row(rows: list[dict]) -> dict:
    """One table row for a group's rows (from the Compare table): the first row's shared
    fields, ``seeds``, and each `SUMMARISED` column as its mean with a ``± std`` column."""
    out = {"run": rows[0]["run"], "seeds": len(rows),
           "state": ", ".join(dict.fromkeys(str(row.get("state")) for row in rows))}
    for column in SUMMARISED:
        out[column], out[f"{column} ± std"] = mean_and_std(row.get(column) for row in rows)
    shared = {k: v for k, v in rows[0].items() if k not in (*SUMMARISED, "run", "id", "state", "epochs")}
    return {**out, **shared, "ids": " ".join(row["id"] for row in rows)}


def bands(frame: pd.DataFrame, batches: bool = False) -> pd.DataFrame:
    """Mean, standard deviation and band (``low``/``high`` = mean ∓ std) of the ``label``
    groups of a learning-curve frame (`explorer.charts.curve_frame` rows whose ``label`` names
    the group), per epoch and held-out probe and, with ``batches``, per logged step too: the
    seeds of a group share their recipe, so they log and probe at the same steps."""
    rows = frame if batches else frame[frame["granularity"] != "batch"]
    keys = ["label", "metric", "split", "granularity", "epoch"]
    out = rows.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    out["low"], out["high"] = out["mean"] - out["std"], out["mean"] + out["std"]
    return out


def replica_request(config: RunConfig, seed: int) -> TrainingRequest:
    """The `TrainingRequest` that trains a run of ``config`` again with ``seed``: the run's own,
    read back, so that the new run (on the run's backend) falls in the same group."""
    return TrainingRequest.from_config(config).replace(seed=seed)


def next_seeds(runs, n: int) -> list[int]:
    """``n`` seeds that no run of ``runs`` used: after the largest one."""
    used = [run.config.seed or 0 for run in runs]
    start = max(used, default=-1) + 1
    return list(range(start, start + n))
