"""Residual networks behave like ensembles of shallow networks (Veit et al. 2016).

Unrolled, a ResNet of ``n`` blocks is a sum over ``2^n`` paths, ``C(n, k)`` of which go
through ``k`` residual branches. A trained ResNet and its plain twin are lesioned at test
time: deleting a block (replacing it by the identity of its skip connection) barely hurts
the ResNet, which loses half of its paths, and breaks the plain network, which loses its
only one; deleting ``k`` blocks degrades the ResNet smoothly. The gradient through a path of
length ``k`` shrinks geometrically with ``k``, so the gradient comes from paths much shorter
than the typical ``n / 2``.

Example:
>>> path_length_counts(3)
[1, 3, 3, 1]
>>> result = run("tiny")
>>> s = result.summary
>>> s["drop_one_block_resnet"] < s["drop_one_block_plain"]
True
"""

import math
from dataclasses import dataclass

import altair as alt
import keras
import numpy as np
import pandas as pd

from keras_resnets.experiments._autodiff import input_gradient
from keras_resnets.experiments._common import (
    Criterion,
    Experiment,
    Progress,
    Result,
    Setup,
    accuracy,
    cross_entropy,
    digit_architecture,
    digits,
    forward,
    resolve_size,
    split_model,
    train,
)
from keras_resnets.models.builder import build_resnet


@dataclass(frozen=True)
class Config(Setup):
    """Sizes of the experiment (and the `Setup` fields).

    Attributes:
        blocks: ``n``, the blocks of both networks.
        lesion_samples: random sets of ``k`` deleted blocks averaged for each ``k``.
        path_samples: random paths measured for each length.
        gradient_batch: test digits whose loss gradient flows down the paths.
    """

    blocks: int = 10
    lesion_samples: int = 10
    path_samples: int = 10
    gradient_batch: int = 64


SIZES = {
    "tiny": Config(blocks=6, num_train=1024, num_test=500, epochs=3, lesion_samples=4,
                   path_samples=4),
    "quick": Config(),
    "full": Config(network="conv", pool=1, width=16, blocks=25, num_train=8960,
                   num_test=1000, epochs=20, batch_size=128, learning_rate=1e-3,
                   lesion_samples=20, path_samples=20, gradient_batch=32),
}

NETWORKS = {"resnet": "residual", "plain": "plain"}


def path_length_counts(n):
    """How many of the ``2^n`` paths of ``n`` residual blocks cross ``k`` branches, for
    ``k = 0 .. n``: the binomial coefficients ``C(n, k)``."""
    return [math.comb(n, k) for k in range(n + 1)]


def lesion(model, deleted):
    """``model`` in inference mode with the blocks of index ``deleted`` (0-based) replaced
    by the identity, as a function of a tensor."""
    stem, blocks, head = split_model(model)
    kept = [block for i, block in enumerate(blocks) if i not in set(deleted)]
    return lambda x: forward(head, forward(kept, forward(stem, x)))


def random_paths(n, k, samples, rng):
    """``samples`` random paths of length ``k`` through ``n`` blocks, as a boolean array
    ``(samples, n)``: which residual branches each path crosses."""
    chosen = np.zeros((samples, n), bool)
    for row in chosen:
        row[rng.choice(n, size=k, replace=False)] = True
    return chosen


def path_gradients(model, x, y, paths):
    """The loss gradient at the first block's input, through single paths.

    As in Veit et al. (2016), the batch goes forward through the whole network; going back,
    a path's gradient crosses the residual branch of the blocks it goes through and the skip
    connection of the others (for a post-activation block, both share the final ReLU's
    derivative). The gradients of all ``2^n`` paths add up to the whole gradient.

    Args:
        model: a `build_resnet` ResNet with ReLU activations.
        x, y: a batch of inputs and integer labels.
        paths: a boolean array ``(paths, blocks)``, as from `random_paths`.

    Returns:
        An array ``(paths,) + shape of the first block's input``.
    """
    stem, blocks, head = split_model(model)
    states = [forward(stem, keras.ops.convert_to_tensor(x))]
    for block in blocks:
        states.append(block(states[-1], training=False))
    states = [keras.ops.convert_to_numpy(state) for state in states]
    labels = keras.ops.convert_to_tensor(y)
    top = input_gradient(lambda h: cross_entropy(labels, forward(head, h)), states[-1])
    samples = len(paths)
    grad = np.repeat(top[None], samples, axis=0)  # (paths, batch, ...)
    for i in reversed(range(len(blocks))):
        inputs = keras.ops.convert_to_tensor(np.concatenate([states[i]] * samples))
        upstream = keras.ops.convert_to_tensor(grad.reshape((-1,) + grad.shape[2:]))
        through_block = input_gradient(
            lambda h, b=blocks[i], g=upstream: b(h, training=False) * g, inputs
        ).reshape(grad.shape)
        skip = grad * (states[i + 1] > 0) if blocks[i].anatomy.post else grad
        crosses = paths[:, i].reshape((samples,) + (1,) * (grad.ndim - 1))
        grad = np.where(crosses, through_block - skip, skip)
    return grad


def run(size="quick", seed=0, progress=None):
    """Trains a ResNet and its plain twin, lesions them and follows the gradient's paths.

    Args:
        size: ``"quick"``, ``"full"`` (the lecture's 25-block MNIST ResNet, 28x28 digits) or
            a `Config`.
        seed: seed of the digits, the initialisations, the training and the samples.
        progress: optional ``progress(fraction, message)``.

    Returns:
        A `Result`. ``data`` has a row per ``study``, ``network`` and ``k`` with a ``value``:
        ``"intact"`` (accuracy), ``"delete_one"`` (accuracy without block ``k``, 1-based),
        ``"delete_k"`` (mean accuracy without ``k`` random blocks), ``"path_count"``
        (paths of length ``k``), ``"path_gradient"`` (mean gradient norm through one path
        of length ``k``) and ``"gradient_by_length"`` (the two multiplied: the gradient
        that paths of length ``k`` carry). ``summary`` has ``accuracy_<network>``,
        ``drop_one_block_<network>`` (mean accuracy lost by deleting one block),
        ``paths``, ``median_path_length`` and ``gradient_path_length`` (the length that
        carries the most gradient).
    """
    config = resolve_size(size, SIZES)
    n = config.blocks
    (x, y), (x_test, y_test) = data = digits(config, seed)
    step = Progress(progress, 2 * config.epochs + 2 * n + n + 1)
    rng = np.random.default_rng(seed)
    rows, models = [], {}
    for key, label in NETWORKS.items():
        keras.utils.set_random_seed(seed)
        models[key] = build_resnet(digit_architecture(config, n, residual=key == "resnet"))
        train(models[key], data, config, progress=step, label=label)
        rows.append(("intact", key, 0, accuracy(lesion(models[key], ()), x_test, y_test)))
        for i in range(n):
            rows.append(("delete_one", key, i + 1, accuracy(lesion(models[key], (i,)), x_test, y_test)))
        for k in range(1, n + 1):
            scores = [accuracy(lesion(models[key], rng.choice(n, k, replace=False)), x_test, y_test)
                      for _ in range(config.lesion_samples if k < n else 1)]
            rows.append(("delete_k", key, k, float(np.mean(scores))))
            step(f"{label}: deleting {k} blocks")
    counts = path_length_counts(n)
    batch = x_test[: config.gradient_batch], y_test[: config.gradient_batch]
    for k in range(n + 1):
        grads = path_gradients(models["resnet"], *batch, random_paths(n, k, config.path_samples, rng))
        mean = float(np.mean(np.sqrt(np.sum(grads.reshape(len(grads), -1) ** 2, axis=1))))
        step(f"gradients through paths of length {k}")
        rows += [("path_count", "resnet", k, counts[k]), ("path_gradient", "resnet", k, mean),
                 ("gradient_by_length", "resnet", k, counts[k] * mean)]
    data = pd.DataFrame(rows, columns=["study", "network", "k", "value"])
    summary = {}
    for key in NETWORKS:
        table = data[data.network == key]
        intact = float(table[table.study == "intact"].value.iloc[0])
        summary[f"accuracy_{key}"] = intact
        summary[f"drop_one_block_{key}"] = intact - float(table[table.study == "delete_one"].value.mean())
    carried = data[data.study == "gradient_by_length"].set_index("k").value
    summary.update(paths=2**n, median_path_length=n / 2, gradient_path_length=int(carried.idxmax()))
    step.finish()
    return Result(data, _chart(data), summary)


def _chart(data):
    def panel(study, title, y_title, mark="line", log=False):
        table = data[data.study == study]
        return getattr(alt.Chart(table), f"mark_{mark}")(point=mark == "line").encode(
            x=alt.X("k:Q", title=title, axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title=y_title, scale=alt.Scale(type="log" if log else "linear")),
            color=alt.Color("network:N"),
            tooltip=["network", "k", alt.Tooltip("value:Q", format=".3g")],
        ).properties(width=230, height=180)

    intact = alt.Chart(data[data.study == "intact"]).mark_rule(strokeDash=[4, 4]).encode(
        y="value:Q", color="network:N"
    )
    one = (panel("delete_one", "deleted block", "test accuracy") + intact).properties(
        title="Deleting one block")
    several = panel("delete_k", "blocks deleted", "test accuracy").properties(
        title="Deleting k random blocks")
    shares = data[data.study.isin(["path_count", "gradient_by_length"])].copy()
    shares["share"] = shares.value / shares.groupby("study").value.transform("sum")
    lengths = alt.Chart(shares).mark_line(point=True).encode(
        x=alt.X("k:Q", title="path length", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("share:Q", title="share"),
        color=alt.Color("study:N", title=None, legend=alt.Legend(
            labelExpr="datum.label == 'path_count' ? 'paths' : 'gradient carried'")),
    ).properties(width=230, height=180, title="Paths and the gradient they carry")
    per_path = panel("path_gradient", "path length", "gradient norm per path", log=True).properties(
        title="Gradient through one path")
    return alt.vconcat(alt.hconcat(one, several), alt.hconcat(lengths, per_path)).properties(
        title="Residual networks as ensembles of paths (Veit et al. 2016)"
    )


EXPERIMENT = Experiment(
    name="ensembles",
    title="Residual networks as ensembles",
    claim=(
        "Veit et al. (2016) unroll a ResNet of n blocks into 2^n paths and show that it "
        "behaves like an ensemble of them: deleting a block at test time barely hurts it, "
        "whereas it breaks a plain network, and the error grows smoothly with the number of "
        "paths removed. The gradient through a path shrinks geometrically with its length, "
        "so training relies on paths much shorter than the network."
    ),
    run=run,
    criterion=Criterion(
        paper="Deleting one block of a 110-layer ResNet barely changes its CIFAR-10 error, while it breaks "
              "VGG; gradients come mostly from paths of 5 to 17 blocks of 54 (Veit et al., Figures 3 and 6).",
        test="Deleting one block costs the ResNet less accuracy than the plain net, and the gradient "
             "peaks at a path length no longer than the median one.",
        measure=lambda s: (f"accuracy lost deleting one block: ResNet {s['drop_one_block_resnet']:.1%}, plain "
                           f"{s['drop_one_block_plain']:.1%}; gradient peaks at length "
                           f"{s['gradient_path_length']} (median {s['median_path_length']:g})"),
        holds=lambda s: (s["drop_one_block_resnet"] < s["drop_one_block_plain"]
                         and s["gradient_path_length"] <= s["median_path_length"]),
    ),
)
