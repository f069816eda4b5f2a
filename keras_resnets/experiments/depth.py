"""Plain networks against their residual twins as depth grows (He et al. 2015, Fig. 4 and 6).

Twins differ only by the skip connections (same layers, same parameters); each depth is
trained on the same budget. A plain network's training error grows with depth (the
"degradation problem"), a residual network's does not.

Example:
>>> result = run("tiny")
>>> s = result.summary
>>> s["plain_error_increase"] > s["residual_error_increase"]
True
"""

from dataclasses import dataclass

import altair as alt

from keras_resnets.experiments._common import Criterion, Experiment, Result, Setup, depth_sweep, resolve_size


@dataclass(frozen=True)
class Config(Setup):
    """Sizes of the experiment (and the `Setup` fields).

    Attributes:
        depths: numbers of blocks; a network of ``n`` blocks has ``2n + 2`` weight layers.
    """

    depths: tuple = (1, 4, 10)


SIZES = {
    "tiny": Config(depths=(1, 6), num_train=1024, num_test=500, epochs=3),
    "quick": Config(),
    "full": Config(network="conv", pool=1, width=16, depths=(3, 9, 15, 21, 27),
                   num_train=8960, num_test=1000, epochs=20, batch_size=128, learning_rate=1e-3),
}


def run(size="quick", seed=0, progress=None):
    """Trains plain and residual twins of each depth on the same budget.

    Args:
        size: ``"quick"``, ``"full"`` (the lecture's convolutional network, 8 to 56 layers,
            28x28 digits) or a `Config`.
        seed: seed of the digits, the initialisations and the training.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``network`` (``"plain"``, ``"residual"``),
        ``blocks``, ``layers`` and ``epoch`` with ``train_loss``, ``train_error``,
        ``test_error`` and ``seconds``. ``summary`` has ``<network>_train_error_<layers>``
        (last epoch) and ``<network>_error_increase``, the training error of the deepest
        network minus that of the shallowest.
    """
    config = resolve_size(size, SIZES)
    families = {"plain": {"residual": False}, "residual": {"residual": True}}
    data = depth_sweep(config, families, seed=seed, progress=progress)
    data["layers"] = 2 * data.blocks + 2
    last = data[data.epoch == config.epochs].set_index(["network", "layers"]).train_error
    summary = {f"{network}_train_error_{layers}": float(error)
               for (network, layers), error in last.items()}
    shallow, deep = 2 * min(config.depths) + 2, 2 * max(config.depths) + 2
    for network in ("plain", "residual"):
        summary[f"{network}_error_increase"] = float(last[network, deep] - last[network, shallow])
    return Result(data, _chart(data), summary)


def _chart(data):
    curves = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("train_error:Q", title="training error"),
        color=alt.Color("layers:O", scale=alt.Scale(scheme="viridis"), title="layers"),
        tooltip=["network", "layers", "epoch", alt.Tooltip("train_error:Q", format=".3f")],
    ).properties(width=240, height=200).facet(column=alt.Column("network:N", title=None))
    final = data[data.epoch == data.epoch.max()]
    by_depth = alt.Chart(final).mark_line(point=True).encode(
        x=alt.X("layers:Q", title="weight layers"),
        y=alt.Y("train_error:Q", title="final training error"),
        color=alt.Color("network:N"),
        tooltip=["network", "layers", alt.Tooltip("train_error:Q", format=".3f"),
                 alt.Tooltip("test_error:Q", format=".3f")],
    ).properties(width=240, height=200)
    return alt.hconcat(curves, by_depth).properties(
        title="Training error of plain and residual twins (He et al. 2015, Fig. 4)"
    )


EXPERIMENT = Experiment(
    name="plain_vs_residual",
    title="Plain against residual networks with depth",
    claim=(
        "He et al. (2015) observe that a deeper plain network has a higher training error "
        "than a shallower one, although it could copy it and add identities: the deeper "
        "network is harder to optimise, not overfitting. Their residual twins, the same "
        "layers with identity skips, train better as depth grows."
    ),
    run=run,
    criterion=Criterion(
        paper="ImageNet (Table 2): plain-34 has a higher error than plain-18 (28.54% against 27.94% "
              "top-1), ResNet-34 a lower one than ResNet-18 (25.03% against 27.88%).",
        test="From the shallowest to the deepest network, the final training error grows more for the "
             "plain networks than for the residual ones.",
        measure=lambda s: (f"training error, deepest minus shallowest: plain {s['plain_error_increase']:+.1%}, "
                           f"residual {s['residual_error_increase']:+.1%}"),
        holds=lambda s: s["plain_error_increase"] > s["residual_error_increase"],
    ),
)
