"""Looks-linear initialisation with depth (Balduzzi et al. 2017, Fig. 6, small scale).

Four families trained alike at several depths: plain ReLU networks, plain CReLU networks
without and with looks-linear (LL) initialisation, and ResNets. Plain ReLU and CReLU
networks lose accuracy as they deepen; with LL initialisation a plain CReLU network starts
exactly linear and keeps up with the ResNet.

Example:
>>> result = run("tiny")
>>> drop = result.summary
>>> drop["accuracy_drop_crelu_ll"] < drop["accuracy_drop_relu"]
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
        learning_rate: lower than the other experiments': linear networks diverge sooner.
    """

    depths: tuple = (1, 4, 10)
    learning_rate: float = 1e-3


SIZES = {
    "tiny": Config(depths=(1, 6), num_train=1024, num_test=500, epochs=3),
    "quick": Config(),
    "full": Config(network="conv", pool=1, width=16, depths=(2, 6, 14, 26, 50),
                   num_train=8960, num_test=1000, epochs=20, batch_size=128),
}

# key of the summary -> (label, Architecture fields)
FAMILIES = {
    "relu": ("ReLU", {"residual": False}),
    "crelu": ("CReLU w/o LL", {"residual": False, "activation": "crelu"}),
    "crelu_ll": ("CReLU w/ LL", {"residual": False, "activation": "crelu", "looks_linear": True}),
    "resnet": ("ResNet", {"residual": True}),
}


def run(size="quick", seed=0, progress=None):
    """Trains the four families at each depth and measures their test accuracy.

    Args:
        size: ``"quick"``, ``"full"`` (convolutional networks of 6 to 102 layers on 28x28
            digits, Balduzzi et al.'s depths) or a `Config`.
        seed: seed of the digits, the initialisations and the training.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``network``, ``blocks``, ``layers`` and ``epoch``
        with ``train_loss``, ``train_error``, ``test_error``, ``seconds`` and
        ``test_accuracy``. ``summary`` has ``accuracy_<family>_<layers>`` (last epoch) and
        ``accuracy_drop_<family>``, the accuracy of the shallowest network minus that of
        the deepest, for the keys of `FAMILIES`.
    """
    config = resolve_size(size, SIZES)
    families = {label: fields for label, fields in FAMILIES.values()}
    data = depth_sweep(config, families, seed=seed, progress=progress)
    data["layers"] = 2 * data.blocks + 2
    data["test_accuracy"] = 1.0 - data.test_error
    last = data[data.epoch == config.epochs].set_index(["network", "layers"]).test_accuracy
    shallow, deep = 2 * min(config.depths) + 2, 2 * max(config.depths) + 2
    summary = {}
    for key, (label, _) in FAMILIES.items():
        for layers in sorted(set(data.layers)):
            summary[f"accuracy_{key}_{layers}"] = float(last[label, layers])
        summary[f"accuracy_drop_{key}"] = float(last[label, shallow] - last[label, deep])
    return Result(data, _chart(data[data.epoch == config.epochs]), summary)


def _chart(final):
    order = [label for label, _ in FAMILIES.values()]
    return alt.Chart(final).mark_line(point=True).encode(
        x=alt.X("layers:Q", title="depth (weight layers)"),
        y=alt.Y("test_accuracy:Q", title="test accuracy", scale=alt.Scale(zero=False)),
        color=alt.Color("network:N", sort=order),
        tooltip=["network", "layers", alt.Tooltip("test_accuracy:Q", format=".3f")],
    ).properties(width=420, height=260,
                 title="Accuracy against depth (Balduzzi et al. 2017, Fig. 6)")


EXPERIMENT = Experiment(
    name="looks_linear",
    title="Looks-linear initialisation with depth",
    claim=(
        "Balduzzi et al. (2017) pair CReLU, which keeps both relu(x) and relu(-x), with a "
        "'looks linear' initialisation whose weights cancel the two halves, so that the "
        "network is exactly linear at initialisation and its gradients do not shatter. "
        "Without skip connections, such networks train as deep as ResNets, while plain "
        "ReLU and CReLU networks without it lose accuracy with depth."
    ),
    run=run,
    criterion=Criterion(
        paper="Without skips, CReLU networks with looks-linear initialisation keep their accuracy as depth "
              "grows (to about 200 layers on CIFAR-10), where ReLU networks lose it (Balduzzi et al., §5).",
        test="The accuracy lost from the shallowest to the deepest network is smaller for CReLU + LL "
             "than for ReLU.",
        measure=lambda s: (f"accuracy lost with depth: ReLU {s['accuracy_drop_relu']:.1%}, "
                           f"CReLU + LL {s['accuracy_drop_crelu_ll']:.1%}"),
        holds=lambda s: s["accuracy_drop_crelu_ll"] < s["accuracy_drop_relu"],
    ),
)
