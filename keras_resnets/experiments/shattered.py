"""Shattered gradients (Balduzzi et al. 2017), and looks-linear initialisation against them.

Networks from R to R, 200 units per hidden layer, at initialisation. The gradient of the
output with respect to the input at 256 points of [-2, 2] is smooth for a shallow network
(like brown noise) and shatters into white noise with depth, unless skip connections or a
looks-linear initialisation keep it structured. The measure is the autocorrelation of the
gradient along the 256 points: about 1 for brown noise, about 0 for white noise.

Example:
>>> result = run("tiny")
>>> s = result.summary
>>> s["lag1_1_layer"] > s["lag1_resnet"] > s["lag1_24_layer"]
True
"""

from dataclasses import dataclass

import altair as alt
import keras
import numpy as np
import pandas as pd

from keras_resnets.design.architecture import Architecture, Stage, Stem
from keras_resnets.experiments._autodiff import input_gradient
from keras_resnets.experiments._common import (
    DTYPE_POLICY,
    Criterion,
    Experiment,
    Progress,
    Result,
    resolve_size,
)
from keras_resnets.layers import CReLU
from keras_resnets.layers.initializers import LooksLinear
from keras_resnets.models.builder import build_resnet
from keras_resnets.runtime.internals import nested_layers


@dataclass(frozen=True)
class Config:
    """Sizes of the experiment.

    Attributes:
        points: inputs, evenly spaced in [-2, 2].
        width: units per hidden layer.
        depth: hidden layers of the deep feedforward (ReLU and CReLU) networks.
        resnet_layers: residual units of the ResNet (one layer each, as in the paper); the
            ResNet of the lecture's two-layer blocks gets half as many blocks.
        seeds: independent initialisations (and noise draws); the summary averages them.
        max_lag: largest lag of the autocorrelation function in ``data``'s chart.
    """

    points: int = 256
    width: int = 200
    depth: int = 24
    resnet_layers: int = 50
    seeds: int = 3
    max_lag: int = 20


SIZES = {"tiny": Config(seeds=1), "quick": Config(), "full": Config(seeds=20)}

# key of the summary -> label in the data and the chart, in the lecture's order
NETWORKS = {
    "1_layer": "1-layer feedforward",
    "24_layer": "24-layer feedforward",
    "resnet": "50-layer ResNet",
    "resnet_resblocks": "ResNet of 25 ResBlocks",
    "brown_noise": "brown noise",
    "white_noise": "white noise",
    "crelu": "24-layer CReLU",
    "crelu_ll": "24-layer CReLU + LL",
}


def autocorrelation(values, lag=1):
    """The lag-``lag`` autocorrelation of a sequence: 1 for a smooth one, 0 for white noise.

    A constant sequence (the gradient of a linear network) counts as perfectly correlated.

    Example:
    >>> round(autocorrelation(np.cumsum(np.random.default_rng(0).normal(size=256))), 1)
    1.0
    >>> autocorrelation(np.ones(8))
    1.0
    """
    values = np.asarray(values, dtype="float64")
    centred = values - values.mean()
    variance = np.sum(centred**2)
    if variance <= 1e-10 * max(np.sum(values**2), 1e-30):
        return 1.0
    return float(np.sum(centred[lag:] * centred[: len(values) - lag]) / variance)


def _first_layer(width):
    # PyTorch's default bias for one input, U(-1, 1), spreads the ReLU kinks over [-2, 2].
    return keras.layers.Dense(
        width, kernel_initializer="he_normal",
        bias_initializer=keras.initializers.RandomUniform(-1.0, 1.0),
    )


def feedforward(depth, width, activation="relu", looks_linear=False):
    """``depth`` hidden layers from R to R: the first ``Dense`` + activation, then
    ``Dense`` + batch norm + activation; ``activation="crelu"`` with optional `LooksLinear`."""
    act = CReLU if activation == "crelu" else keras.layers.ReLU
    init = LooksLinear() if looks_linear else "he_normal"
    layers = [keras.Input((1,)), _first_layer(width), act()]
    for _ in range(depth - 1):
        layers += [keras.layers.Dense(width, use_bias=False, kernel_initializer=init),
                   keras.layers.BatchNormalization(), act()]
    layers.append(keras.layers.Dense(1, kernel_initializer=init))
    return keras.Sequential(layers)


def resnet(units, width):
    """The paper's ResNet: a first layer, then ``units`` residual units
    ``x + Dense(ReLU(BN(x)))`` of one layer each."""
    inputs = keras.Input((1,))
    h = keras.layers.ReLU()(_first_layer(width)(inputs))
    for _ in range(units):
        branch = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
        h = keras.layers.Add()([h, keras.layers.Dense(width, kernel_initializer="he_normal")(branch)])
    return keras.Model(inputs, keras.layers.Dense(1)(h))


def resblock_resnet(blocks, width):
    """The lecture's blocks (Linear-BN-ReLU-Linear-BN, + x, ReLU) from R to R, via
    `build_resnet`; the stem has a bias and no batch norm, as the first layer above."""
    model = build_resnet(Architecture(
        name="resnet_r_to_r", input_shape=(1,),
        stem=Stem(kind="dense", filters=width, kernel_size=1, use_bias=True, batch_norm=False),
        stages=(Stage(blocks=blocks, channels=width),), block="dense", pooling=None, classes=1,
        dtype_policy=DTYPE_POLICY,
    ))
    stem = model.get_layer("stem_dense")
    stem.bias.assign(keras.random.uniform((width,), -1.0, 1.0))
    return model


def calibrate_batch_norm(model, x):
    """Sets every batch norm's statistics to those of ``x`` (one pass, momentum 0), so that
    inference mode normalises exactly as training mode does on ``x``."""
    norms = [layer for layer in nested_layers(model)
             if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def _network(key, config):
    if key == "1_layer":
        return feedforward(1, config.width)
    if key == "24_layer":
        return feedforward(config.depth, config.width)
    if key == "resnet":
        return resnet(config.resnet_layers, config.width)
    if key == "resnet_resblocks":
        return resblock_resnet(config.resnet_layers // 2, config.width)
    return feedforward(config.depth, config.width, "crelu", looks_linear=key == "crelu_ll")


def run(size="quick", seed=0, progress=None):
    """Gradients of the output with respect to the input, and their autocorrelation.

    Args:
        size: ``"quick"``, ``"full"`` (20 initialisations) or a `Config`.
        seed: seed of the first initialisation; the others follow it.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``network``, ``seed`` and input ``x``, with the
        ``gradient`` there (the noise itself for the two noise references). ``summary`` has
        ``lag1_<network>``, the lag-1 autocorrelation averaged over seeds, for the keys of
        `NETWORKS`.
    """
    config = resolve_size(size, SIZES)
    x = np.linspace(-2.0, 2.0, config.points, dtype="float32")[:, None]
    networks = [key for key in NETWORKS if not key.endswith("noise")]
    step = Progress(progress, config.seeds * len(networks))
    frames = []
    for s in range(seed, seed + config.seeds):
        values = {}
        for key in networks:
            keras.utils.set_random_seed(s)
            model = _network(key, config)
            calibrate_batch_norm(model, x)
            values[key] = input_gradient(model, x)[:, 0]
            step(f"seed {s}: {NETWORKS[key]}")
        white = np.random.default_rng(s).normal(size=config.points)
        values["brown_noise"], values["white_noise"] = np.cumsum(white), white
        frames += [
            pd.DataFrame({"network": NETWORKS[key], "seed": s, "x": x[:, 0], "gradient": v})
            for key, v in values.items()
        ]
    data = pd.concat(frames, ignore_index=True)
    lag1 = data.groupby(["network", "seed"])["gradient"].apply(autocorrelation)
    lag1 = lag1.groupby(level="network").mean()
    summary = {f"lag1_{key}": float(lag1[label]) for key, label in NETWORKS.items()}
    step.finish()
    return Result(data, _chart(data, config.max_lag), summary)


def _chart(data, max_lag):
    order = list(NETWORKS.values())
    first = data[data.seed == data.seed.min()]
    gradients = alt.Chart(first).mark_line(strokeWidth=1).encode(
        x=alt.X("x:Q", title="input"),
        y=alt.Y("gradient:Q", title="gradient"),
        color=alt.Color("network:N", sort=order, legend=None),
    ).properties(width=130, height=110).facet(
        facet=alt.Facet("network:N", sort=order, title=None), columns=4,
    ).resolve_scale(y="independent")
    acf = pd.DataFrame([
        {"network": network, "lag": lag, "autocorrelation": autocorrelation(group.gradient, lag)}
        for (network, _), group in data.groupby(["network", "seed"])
        for lag in range(1, max_lag + 1)
    ]).groupby(["network", "lag"], as_index=False).mean()
    decay = alt.Chart(acf).mark_line(point=True).encode(
        x=alt.X("lag:Q", title="lag (points)", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("autocorrelation:Q", title="autocorrelation of the gradient"),
        color=alt.Color("network:N", sort=order, title=None,
                        legend=alt.Legend(orient="right")),
        tooltip=["network", "lag", alt.Tooltip("autocorrelation:Q", format=".2f")],
    ).properties(width=500, height=200)
    return alt.vconcat(gradients, decay).resolve_legend(color="independent").properties(
        title="Shattered gradients: d output / d input at initialisation"
    )


EXPERIMENT = Experiment(
    name="shattered_gradients",
    title="Shattered gradients and looks-linear initialisation",
    claim=(
        "Balduzzi et al. (2017) show that depth 'shatters' the gradient of a feedforward "
        "network with respect to its input: neighbouring inputs get uncorrelated gradients, "
        "like white noise, while a shallow network's gradient is smooth like brown noise. "
        "Skip connections keep the gradient structured (correlations decay sublinearly "
        "rather than exponentially), and so does a CReLU network with looks-linear "
        "initialisation, which is exactly linear at initialisation."
    ),
    run=run,
    criterion=Criterion(
        paper="Gradients with respect to the input: a 1-layer net's look like brown noise, a 24-layer "
              "net's like white noise, a 50-layer ResNet's in between (Balduzzi et al., Figure 1).",
        test="Lag-1 autocorrelation of the gradient: 1-layer > ResNet > 24-layer.",
        measure=lambda s: (f"lag-1 autocorrelation: 1-layer {s['lag1_1_layer']:.2f}, ResNet {s['lag1_resnet']:.2f}, "
                           f"24-layer {s['lag1_24_layer']:.2f}"),
        holds=lambda s: s["lag1_1_layer"] > s["lag1_resnet"] > s["lag1_24_layer"],
    ),
)
