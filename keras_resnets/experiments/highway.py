"""Highway networks against plain networks with depth (Srivastava et al. 2015, Fig. 1).

Highway layers ``y = T(x) H(x) + (1 - T(x)) x`` and their plain twins ``y = H(x)``
(fully-connected, no batch normalisation, as in the paper), trained alike at several
depths. The plain networks' training loss grows with depth; the highway networks' does not.

Example:
>>> result = run("tiny")
>>> s = result.summary
>>> s["plain_loss_increase"] > s["highway_loss_increase"]
True
"""

from dataclasses import dataclass

import altair as alt

from keras_resnets.design import presets
from keras_resnets.design.architecture import Architecture, Stage, Stem
from keras_resnets.experiments._common import (
    DTYPE_POLICY,
    Criterion,
    Experiment,
    Result,
    Setup,
    depth_sweep,
    resolve_size,
)


@dataclass(frozen=True)
class Config(Setup):
    """Sizes of the experiment (and the `Setup` fields).

    Attributes:
        depths: numbers of highway (or plain) layers after the first layer.
        transform_gate_bias: initial bias of the transform gates (the paper uses -1 to -3).
        learning_rate: higher than the other experiments': without batch normalisation
            the highway networks learn slowly at 1e-3.
    """

    depths: tuple = (2, 10, 30)
    width: int = 50
    learning_rate: float = 1e-2
    transform_gate_bias: float = -2.0


SIZES = {
    "tiny": Config(depths=(2, 20), num_train=1024, num_test=500, epochs=3),
    "quick": Config(),
    "full": Config(pool=1, depths=(10, 20, 50, 100), num_train=8960, epochs=40, batch_size=128),
}


def highway_architecture(config, blocks, **fields):
    """A highway network for the digits of ``config``: fully-connected (`HighwayDense`) for
    ``network="dense"``, convolutional (`presets.highway_net`) for ``"conv"``."""
    side = 28 // config.pool
    fields = {"transform_gate_bias": config.transform_gate_bias, "dtype_policy": DTYPE_POLICY,
              **fields}
    if config.network == "conv":
        return presets.highway_net(blocks, config.width, input_shape=(side, side, 1), **fields)
    return Architecture(**{
        "name": f"highway{blocks}",
        "input_shape": (side * side,),
        "stem": Stem(kind="dense", filters=config.width, kernel_size=1, use_bias=True,
                     batch_norm=False),
        "stages": (Stage(blocks=blocks, channels=config.width),),
        "block": "highway",
        "use_bias": True,
        "batch_norm": False,
        "pooling": None,
        **fields,
    })


def run(size="quick", seed=0, progress=None):
    """Trains highway and plain networks of each depth on the same budget.

    Args:
        size: ``"quick"``, ``"full"`` (the paper's 10 to 100 layers on 28x28 digits) or a
            `Config`.
        seed: seed of the digits, the initialisations and the training.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``network`` (``"plain"``, ``"highway"``),
        ``blocks`` (layers after the first) and ``epoch`` with ``train_loss``,
        ``train_error``, ``test_error`` and ``seconds``. ``summary`` has
        ``<network>_train_loss_<blocks>`` (last epoch) and ``<network>_loss_increase``,
        the training loss of the deepest network minus that of the shallowest.
    """
    config = resolve_size(size, SIZES)
    families = {"plain": {"residual": False}, "highway": {"residual": True}}
    data = depth_sweep(config, families, seed=seed, progress=progress,
                       architecture=highway_architecture)
    last = data[data.epoch == config.epochs].set_index(["network", "blocks"]).train_loss
    summary = {f"{network}_train_loss_{blocks}": float(loss)
               for (network, blocks), loss in last.items()}
    shallow, deep = min(config.depths), max(config.depths)
    for network in families:
        summary[f"{network}_loss_increase"] = float(last[network, deep] - last[network, shallow])
    return Result(data, _chart(data), summary)


def _chart(data):
    curves = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("train_loss:Q", title="training loss (cross-entropy)", scale=alt.Scale(type="log")),
        color=alt.Color("blocks:O", scale=alt.Scale(scheme="viridis"), title="layers"),
        tooltip=["network", "blocks", "epoch", alt.Tooltip("train_loss:Q", format=".3f")],
    ).properties(width=240, height=200).facet(column=alt.Column("network:N", title=None))
    final = data[data.epoch == data.epoch.max()]
    by_depth = alt.Chart(final).mark_line(point=True).encode(
        x=alt.X("blocks:Q", title="layers"),
        y=alt.Y("train_loss:Q", title="final training loss", scale=alt.Scale(type="log")),
        color=alt.Color("network:N"),
        tooltip=["network", "blocks", alt.Tooltip("train_loss:Q", format=".3f"),
                 alt.Tooltip("test_error:Q", format=".3f")],
    ).properties(width=240, height=200)
    return alt.hconcat(curves, by_depth).properties(
        title="Highway against plain networks (Srivastava et al. 2015, Fig. 1)"
    )


EXPERIMENT = Experiment(
    name="highway",
    title="Highway against plain networks with depth",
    claim=(
        "Srivastava et al. (2015) gate each layer, y = T(x) H(x) + (1 - T(x)) x, with a "
        "transform gate T biased towards carrying its input at initialisation. Plain "
        "networks get harder to optimise as they deepen, while highway networks of up to "
        "100 layers train as well as shallow ones."
    ),
    run=run,
    criterion=Criterion(
        paper="Plain networks get harder to optimise beyond about 20 layers, while highway networks of up "
              "to 100 layers reach as low a training loss (Srivastava et al., Figure 1).",
        test="From the shallowest to the deepest network, the final training loss grows more for the "
             "plain networks than for the highway ones.",
        measure=lambda s: (f"training loss, deepest minus shallowest: plain {s['plain_loss_increase']:+.3f}, "
                           f"highway {s['highway_loss_increase']:+.3f}"),
        holds=lambda s: s["plain_loss_increase"] > s["highway_loss_increase"],
    ),
)
