"""What the "Take apart" page takes apart: the shipped pretrained networks or a run of the
store, its plain twin, why a run cannot be taken apart, and the charts of its lesion study
(no Streamlit here).

A source is ``PRETRAINED`` (the lecture's ResNet shipped in the package, with its plain twin)
or a run id. Every source has a config (what was trained, on which digits) and a model.

Example:
>>> config = RunConfig.from_dict({"architecture": {"name": "cifar_resnet20"}, "dataset": {"name": "cifar10"}})
>>> print(problem(config, {"state": "completed"}))
the run was trained on cifar10; this page takes apart digit classifiers (mnist or mnist_sample).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from keras_resnets.experiments import lesions
from keras_resnets.runs.pretrained import pretrained_config, shipped, weights_path
from keras_resnets.runs.records import RunConfig
from keras_resnets.training import TrainingRequest

PRETRAINED = "pretrained"
SHIPPED = "Pretrained lecture ResNet (shipped in the package)"
"""The label of the shipped network among the sources."""
NETWORKS = {"resnet": "ResNet", "plain": "plain twin"}
DIGITS = ("mnist_sample", "mnist")


def problem(config: RunConfig, status: dict) -> str | None:
    """Why a run with ``config`` and ``status`` cannot be taken apart, or None (then its
    `TrainingRequest` reads)."""
    state = status.get("state")
    if state != "completed":
        return (f"the run is {state or 'unknown'}: only a completed run has a trained model to "
                "take apart (wait for it to finish, or pick another).")
    dataset = config.dataset.name
    if dataset not in DIGITS:
        return (f"the run was trained on {dataset}; this page takes apart digit classifiers "
                "(mnist or mnist_sample).")
    if not config.dataset.validation_split:
        return ("the run held no digits out (validation fraction 0), so every digit is one it "
                "has seen.")
    try:
        TrainingRequest.from_config(config)
    except ValueError as error:
        return f"its config.json cannot be read: {error}"
    return None


def twin_of(config: RunConfig, candidates) -> str | None:
    """The id of a completed run among ``candidates`` (``(id, config, status)``) that trained
    the same design with ``residual`` flipped on the same digits with the same seed: the plain
    twin of a ResNet, or the ResNet of a plain network."""
    arch = dict(config.architecture)
    wanted = {**arch, "residual": not arch.get("residual", True)}
    wanted.pop("name", None)
    for run_id, other, status in candidates:
        theirs = dict(other.architecture)
        theirs.pop("name", None)
        if (status.get("state") == "completed" and theirs == wanted
                and other.dataset == config.dataset and other.seed == config.seed):
            return run_id
    return None


def shipped_source(name):
    """``(config, source key, stamp)`` of a shipped network; the key names its file, so a
    rebuilt or moved file is loaded again."""
    path = weights_path(name)
    return pretrained_config(name), f"pretrained:{name}:{path}", path.stat().st_mtime


def sources(runs) -> dict:
    """``{label: (config, status, source key, stamp)}``: the shipped network and each of ``runs``
    (a source key is ``pretrained:<name>:<its file>`` or ``run:<path of its model.keras>``)."""
    found = {}
    if "mnist_resnet" in shipped():
        config, source, stamp = shipped_source("mnist_resnet")
        found[SHIPPED] = (config, {"state": "completed"}, source, stamp)
    for run in runs:
        path = run.model_path
        stamp = path.stat().st_mtime if path.exists() else 0.0
        found[f"Run {run.id}"] = (run.config, run.status, f"run:{path}", stamp)
    return found


def twin(label, config, found):
    """The plain twin's ``(config, source key, stamp)`` of the source ``label`` of ``found``
    (`sources`), or None."""
    if label == SHIPPED:
        return shipped_source("mnist_plain") if "mnist_plain" in shipped() else None
    candidates = [(key, c, s) for key, (c, s, _, _) in found.items() if key != label]
    match = twin_of(config, candidates)
    return None if match is None else (found[match][0], found[match][2], found[match][3])


def networks(label, found) -> tuple[str, dict]:
    """``(kind, {kind: (config, source key, stamp)})``: the source ``label`` of ``found`` under
    its kind (``resnet`` or ``plain``), with its twin under the other kind when there is one."""
    config, _, source, stamp = found[label]
    kind = "resnet" if config.design().residual else "plain"
    picked = {kind: (config, source, stamp)}
    other = twin(label, config, found)
    if other is not None:
        picked["plain" if kind == "resnet" else "resnet"] = other
    return kind, picked


def study(model, x, y, residual: bool) -> dict:
    """A lesion study of a run, smaller than the shipped networks' (which `make_pretrained.py`
    measured on all their held-out digits): 2 random sets per k, the gradient on 4 digits."""
    n = len(lesions.blocks_of(model))
    return lesions.lesion_study(model, x, y, paths=residual, samples=2,
                                ks=range(1, n, max(1, n // 8)), gradient_digits=4)


# -- charts ------------------------------------------------------------------------------------
def lesion_charts(results):
    """``(one, several)``: held-out accuracy with each block deleted, and with random sets of k
    blocks deleted, of the lesion studies ``results`` (by network kind)."""
    each = pd.concat([pd.DataFrame({"block": range(1, len(r["each"]) + 1), "accuracy": r["each"],
                                    "network": NETWORKS[k]}) for k, r in results.items()])
    several = pd.concat([pd.DataFrame({"k": [0, *r["random"]["k"]],
                                       "accuracy": [r["intact"], *r["random"]["accuracy"]],
                                       "network": NETWORKS[k]}) for k, r in results.items()])
    line = dict(point=True)
    one = alt.Chart(each).mark_line(**line).encode(
        x=alt.X("block:Q", title="deleted block", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("accuracy:Q", title="held-out accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("network:N", title=None), tooltip=["network", "block", alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(title="Deleting one block", height=260)
    k = alt.Chart(several).mark_line(**line).encode(
        x=alt.X("k:Q", title="blocks deleted (random sets)", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("accuracy:Q", title="held-out accuracy", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("network:N", title=None), tooltip=["network", "k", alt.Tooltip("accuracy:Q", format=".1%")],
    ).properties(title="Deleting k blocks", height=260)
    return one, k


def path_chart(n, gradient):
    """The share of the 2^n paths of each length, and the share of the gradient they carry."""
    shares = pd.concat([lesions.path_length_shares(n)[["k", "share"]].assign(what="paths of this length"),
                        pd.DataFrame(gradient).assign(what="gradient they carry")])
    return alt.Chart(shares).mark_line(point=True).encode(
        x=alt.X("k:Q", title="path length (residual branches crossed)", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("share:Q", title="share"), color=alt.Color("what:N", title=None),
        tooltip=["what", "k", alt.Tooltip("share:Q", format=".3f")],
    ).properties(title=f"The 2^{n} paths and the gradient they carry", height=260)


def ratio_chart(ratios):
    """How much each block changes the stream: ``|block(h) − h| / |h|`` per block."""
    ratios = pd.DataFrame({"block": range(1, len(ratios) + 1), "ratio": ratios})
    return alt.Chart(ratios).mark_bar().encode(
        x=alt.X("block:O", title="block"), y=alt.Y("ratio:Q", title="|block(h) − h| / |h|"),
        tooltip=["block", alt.Tooltip("ratio:Q", format=".3f")],
    ).properties(title="How much each block changes the stream", height=260)
