"""What the "Take apart" page takes apart: the shipped pretrained networks or a run of the
store, its plain twin, and why a run cannot be taken apart (no Streamlit here).

A source is ``PRETRAINED`` (the lecture's ResNet shipped in the package, with its plain twin)
or a run id. Every source has a config (what was trained, on which digits) and a model.

Example:
>>> config = RunConfig.from_dict({"architecture": {"name": "cifar_resnet20"}, "dataset": {"name": "cifar10"}})
>>> print(problem(config, {"state": "completed"}))
the run was trained on cifar10; this page takes apart digit classifiers (mnist or mnist_sample).
"""

from __future__ import annotations

from keras_resnets.runs.records import RunConfig

PRETRAINED = "pretrained"
DIGITS = ("mnist_sample", "mnist")


def problem(config: RunConfig, status: dict) -> str | None:
    """Why a run with ``config`` and ``status`` cannot be taken apart, or None."""
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
