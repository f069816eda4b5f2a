"""Stochastic depth (Huang et al. 2016): linear decay to ``p_L = 0.5`` against constant depth.

Two twins trained alike: a ResNet of ``L`` blocks, and the same ResNet whose block ``l``
survives a training step with probability ``p_l = 1 - l / L (1 - p_L)``, so that its
expected depth while training is ``sum(p_l) = (3L - 1) / 4`` blocks. At test time every
block is used, scaled by ``p_l``.

A dropped block's branch is not computed (`keras_resnets.layers.ResBlock` runs ``ops.cond``
on the draw), so the time saving shows where the blocks carry the cost: with convolutional
blocks (``Config(network="conv", width=16, blocks=12, num_train=512)``) an epoch took 0.83x
the constant-depth one on two CPU cores. The quick size's small dense blocks cost less than the
conditional's bookkeeping, so there the regularisation shows and the saving does not.

Example:
>>> result = run("tiny")
>>> result.summary["expected_depth"] == (3 * result.summary["blocks"] - 1) / 4
True
"""

from dataclasses import dataclass

import altair as alt
import keras
import numpy as np
import pandas as pd

from keras_resnets.experiments._common import (
    Criterion,
    Experiment,
    Progress,
    Result,
    Setup,
    digit_architecture,
    digits,
    resolve_size,
    train,
)
from keras_resnets.layers import linear_decay
from keras_resnets.models.builder import build_resnet


@dataclass(frozen=True)
class Config(Setup):
    """Sizes of the experiment (and the `Setup` fields).

    Attributes:
        blocks: ``L``, the residual blocks.
        final_survival_probability: ``p_L``.
    """

    blocks: int = 12
    final_survival_probability: float = 0.5


SIZES = {
    "tiny": Config(blocks=6, num_train=1024, num_test=500, epochs=3),
    "quick": Config(),
    "full": Config(network="conv", pool=1, width=16, blocks=25, num_train=8960,
                   num_test=1000, epochs=30, batch_size=128, learning_rate=1e-3),
}

NETWORKS = {"constant": "constant depth", "stochastic": "stochastic depth"}


def run(size="quick", seed=0, progress=None):
    """Trains a ResNet with and without stochastic depth; compares accuracy and time.

    Args:
        size: ``"quick"``, ``"full"`` (the lecture's 25-block MNIST ResNet, 28x28 digits) or
            a `Config`.
        seed: seed of the digits, the initialisations, the training and the block draws.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``network`` and ``epoch`` with ``train_loss``,
        ``train_error``, ``test_error`` and ``seconds``. ``summary`` has ``blocks``,
        ``expected_depth`` (the sum of the survival probabilities), ``test_error_<network>``
        (last epoch), ``seconds_per_epoch_<network>`` (median, first epoch left out: it
        compiles) and ``time_ratio`` (stochastic over constant) for the keys of `NETWORKS`.
    """
    config = resolve_size(size, SIZES)
    data = digits(config, seed)
    step = Progress(progress, 2 * config.epochs)
    frames = []
    for key, label in NETWORKS.items():
        keras.utils.set_random_seed(seed)
        p_L = config.final_survival_probability if key == "stochastic" else 1.0
        model = build_resnet(digit_architecture(
            config, config.blocks, final_survival_probability=p_L, seed=seed
        ))
        frames.append(train(model, data, config, progress=step, label=label).assign(network=label))
    data = pd.concat(frames, ignore_index=True)
    survival = [linear_decay(l, config.blocks, config.final_survival_probability)
                for l in range(1, config.blocks + 1)]
    summary = {"blocks": config.blocks, "expected_depth": float(np.sum(survival))}
    for key, label in NETWORKS.items():
        curve = data[data.network == label]
        summary[f"test_error_{key}"] = float(curve.test_error.iloc[-1])
        timed = curve.seconds.iloc[1:] if len(curve) > 1 else curve.seconds
        summary[f"seconds_per_epoch_{key}"] = float(timed.median())
    summary["time_ratio"] = summary["seconds_per_epoch_stochastic"] / summary["seconds_per_epoch_constant"]
    step.finish()
    return Result(data, _chart(data, survival), summary)


def _chart(data, survival):
    errors = alt.Chart(data).transform_fold(
        ["train_error", "test_error"], as_=["split", "error"]
    ).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("error:Q", title="error"),
        color=alt.Color("network:N"),
        strokeDash=alt.StrokeDash("split:N", title=None),
        tooltip=["network", "epoch", "split:N", alt.Tooltip("error:Q", format=".3f")],
    ).properties(width=300, height=220, title="Error per epoch")
    blocks = pd.DataFrame({"block": np.arange(1, len(survival) + 1), "survival": survival})
    decay = alt.Chart(blocks).mark_bar().encode(
        x=alt.X("block:O", title="block l"),
        y=alt.Y("survival:Q", title="survival probability p_l", scale=alt.Scale(domain=[0, 1])),
    ).properties(width=220, height=220,
                 title=f"Linear decay: expected depth {sum(survival):.2f} of {len(survival)}")
    seconds = alt.Chart(data[data.epoch > 1] if data.epoch.max() > 1 else data).mark_boxplot().encode(
        x=alt.X("network:N", title=None),
        y=alt.Y("seconds:Q", title="seconds per epoch"),
        color=alt.Color("network:N", legend=None),
    ).properties(width=140, height=220, title="Time per epoch")
    return alt.hconcat(errors, decay, seconds).properties(
        title="Stochastic depth (Huang et al. 2016)"
    )


EXPERIMENT = Experiment(
    name="stochastic_depth",
    title="Stochastic depth",
    claim=(
        "Huang et al. (2016) drop whole residual blocks at random while training, block l "
        "surviving with probability p_l decaying linearly to p_L = 0.5, and use every block "
        "at test time. Training then sees networks of expected depth (3L - 1) / 4 of L "
        "blocks, which cuts training time by about a quarter and acts as a regulariser "
        "that lowers the test error of deep ResNets."
    ),
    run=run,
    criterion=Criterion(
        paper="110-layer ResNet on CIFAR-10 with p_L = 0.5: test error 6.41% -> 5.25%, training about 25% "
              "faster (Huang et al., Table 1 and §4).",
        test="Stochastic depth ends with a lower test error than constant depth, and its epochs take "
             "less time.",
        measure=lambda s: (f"test error {s['test_error_constant']:.1%} -> {s['test_error_stochastic']:.1%}; "
                           f"time per epoch, stochastic / constant: {s['time_ratio']:.2f}"),
        holds=lambda s: s["test_error_stochastic"] < s["test_error_constant"] and s["time_ratio"] < 1.0,
    ),
)
