"""What the experiments share: registry types, sizes, digits, networks, training, progress."""

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from keras_resnets.data.datasets import DATASETS, load_arrays
from keras_resnets.design import presets
from keras_resnets.design.architecture import Architecture, Stage, Stem
from keras_resnets.design.names import parse_block_name
from keras_resnets.design.validation import check_choice
from keras_resnets.models.builder import build_resnet
from keras_resnets.training.epochs import fit_epochs
from keras_resnets.training.optimization import compile_model
from keras_resnets.training.recipe import Recipe

SIZE_NAMES = ("tiny", "quick", "full")
DTYPE_POLICY = "float32"
"""What every experiment's networks compute in, on every machine: the properties they measure
(linearity, gradient correlations, accuracies to compare with the papers') are float32's."""


@dataclass(frozen=True)
class Result:
    """What an experiment returns.

    Attributes:
        data: the measurements, one row per observation (a tidy `pandas.DataFrame`).
        chart: an Altair chart of ``data``.
        summary: headline numbers, by name.
    """

    data: pd.DataFrame
    chart: object
    summary: dict


@dataclass(frozen=True)
class Criterion:
    """How a run's headline numbers are judged against the paper.

    Attributes:
        paper: the paper's number or statement.
        test: the criterion, in words.
        measure: ``measure(summary) -> str``, our numbers that the criterion reads.
        holds: ``holds(summary) -> bool``, whether they agree with the paper.
    """

    paper: str
    test: str
    measure: Callable
    holds: Callable


@dataclass(frozen=True)
class Experiment:
    """A registry entry: one claim of the lecture and the function that shows it.

    Attributes:
        name: the key in `EXPERIMENTS`.
        title: a short human title.
        claim: the lecture's claim in two or three sentences, citing the paper.
        run: ``run(size="quick", seed=0, progress=None) -> Result``.
        criterion: a `Criterion` that says whether a run's summary agrees with the paper.
    """

    name: str
    title: str
    claim: str
    run: Callable
    criterion: Criterion


@dataclass(frozen=True)
class Setup:
    """How the networks of an experiment look and train (fields shared by every size).

    Attributes:
        network: ``"dense"`` (fully-connected blocks on flattened digits) or ``"conv"``
            (the lecture's MNIST ResNet family).
        pool: downsampling of the 28x28 digits by average pooling (2 gives 14x14).
        width: units or channels of every block.
        num_train: training digits (whole batches: a last, smaller batch would compile the
            train step a second time).
        num_test: test digits (disjoint from the training ones).
        epochs: training epochs.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
    """

    network: str = "dense"
    pool: int = 2
    width: int = 64
    num_train: int = 1536
    num_test: int = 1000
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3

    def replace(self, **fields):
        """A copy with some fields changed."""
        return dataclasses.replace(self, **fields)


def resolve_size(size, sizes):
    """The configuration for ``size``: a name of ``sizes`` or a configuration itself."""
    if isinstance(size, str):
        return sizes[check_choice("size", size, tuple(sizes))]
    if isinstance(size, type(sizes["quick"])):
        return size
    raise ValueError(
        f"size={size!r} is not allowed: one of {tuple(sizes)} or a {type(sizes['quick']).__name__}."
    )


class Progress:
    """Reports ``done / total`` units of work to an optional ``progress(fraction, message)``."""

    def __init__(self, callback, total):
        self.callback = callback
        self.total = max(total, 1)
        self.done = 0

    def __call__(self, message, units=1):
        self.done += units
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0), message)

    def finish(self, message="done"):
        if self.callback is not None:
            self.callback(1.0, message)


def digits(setup, seed=0):
    """Normalised digits of the embedded MNIST sample, as NumPy arrays.

    Returns ``((x_train, y_train), (x_test, y_test))``: ``setup.num_train`` and
    ``setup.num_test`` disjoint digits chosen by ``seed``, average-pooled by ``setup.pool``,
    flattened for ``setup.network == "dense"``, channels-first where Keras is set so.
    """
    (images, labels), _, _ = load_arrays("mnist_sample")
    if setup.num_train + setup.num_test > len(images):
        raise ValueError(
            f"num_train + num_test = {setup.num_train + setup.num_test} is not allowed: at most "
            f"{len(images)} digits in the sample."
        )
    info = DATASETS["mnist_sample"]
    order = np.random.default_rng(seed).permutation(len(images))
    x = (images.astype("float32") / 255.0 - info.mean[0]) / info.std[0]
    n, h, w, c = x.shape
    p = setup.pool
    x = x[:, : h - h % p, : w - w % p].reshape(n, h // p, p, w // p, p, c).mean(axis=(2, 4))
    if setup.network == "dense":
        x = x.reshape(n, -1)
    elif keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    y = labels.astype("int32")
    train, test = order[: setup.num_train], order[setup.num_train : setup.num_train + setup.num_test]
    return (x[train], y[train]), (x[test], y[test])


def digit_architecture(setup, blocks, **fields):
    """An `Architecture` for the digits of ``setup`` with ``blocks`` blocks.

    ``"conv"`` is the lecture's MNIST ResNet (`presets.mnist_resnet`); ``"dense"`` its
    fully-connected twin: a linear stem with ReLU, ``blocks`` `DenseResBlock` and a classifier.
    ``fields`` override `Architecture` fields (``residual=False`` for the plain twin).
    """
    side = 28 // setup.pool
    fields = {"dtype_policy": DTYPE_POLICY, **fields}
    if setup.network == "conv":
        return presets.mnist_resnet(setup.width, 3, blocks, input_shape=(side, side, 1), **fields)
    check_choice("network", setup.network, ("dense", "conv"))
    return Architecture(**{
        "name": f"dense{blocks}",
        "input_shape": (side * side,),
        "stem": Stem(kind="dense", filters=setup.width, kernel_size=1, use_bias=True, batch_norm=False),
        "stages": (Stage(blocks=blocks, channels=setup.width),),
        "block": "dense",
        "use_bias": True,
        "pooling": None,
        **fields,
    })


def cross_entropy(labels, logits):
    """Mean sparse categorical cross-entropy of ``logits``."""
    return keras.ops.mean(
        keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    )


def predict(fn, x, batch_size=500):
    """``fn`` (a model, or a function of a tensor) on ``x`` in inference mode, as NumPy."""
    call = fn if not isinstance(fn, keras.Model) else (lambda h: fn(h, training=False))
    outputs = [
        keras.ops.convert_to_numpy(call(keras.ops.convert_to_tensor(x[i : i + batch_size])))
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs)


def accuracy(fn, x, y):
    """The fraction of ``x`` that ``fn`` classifies as ``y``."""
    return float(np.mean(predict(fn, x).argmax(axis=-1) == y))


def train(model, data, setup, *, progress=None, label=""):
    """Trains ``model`` with Adam at ``setup.learning_rate``, on the product's epoch loop
    (`keras_resnets.training.epochs.fit_epochs`); returns a row per epoch.

    Columns: ``epoch``, ``train_loss``, ``train_error`` (running, as in He et al.'s thin
    curves), ``test_error`` (at the end of the epoch) and ``seconds`` (of its training).
    """
    (x, y), test = data
    recipe = Recipe(optimizer="adam", learning_rate=setup.learning_rate, epochs=setup.epochs,
                    batch_size=setup.batch_size, schedule="constant")
    compile_model(model, recipe, math.ceil(len(x) / setup.batch_size), build=False)
    curve = _Curve(test, setup.epochs, progress, label)
    fit_epochs(model, setup.epochs, lambda epoch: {"x": x, "y": y}, callbacks=[curve],
               batch_size=setup.batch_size)
    return pd.DataFrame(curve.rows)


class _Curve(keras.callbacks.Callback):
    """The rows of `train`, one per epoch, each reported to ``progress``."""

    def __init__(self, test, epochs, progress, label):
        super().__init__()
        self.test, self.epochs, self.progress, self.label = test, epochs, progress, label
        self.rows, self.start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        self.rows.append({
            "epoch": epoch + 1,
            "train_loss": float(logs["loss"]),
            "train_error": 1.0 - float(logs["accuracy"]),
            "test_error": 1.0 - accuracy(self.model, *self.test),
            "seconds": seconds,
        })
        if self.progress is not None:
            self.progress(f"{self.label}: epoch {epoch + 1}/{self.epochs}")


def depth_sweep(config, families, *, seed=0, progress=None, architecture=digit_architecture):
    """Trains a network of every family at every depth of ``config.depths``, alike.

    Args:
        config: a `Setup` with a ``depths`` field (numbers of blocks).
        families: ``{name: Architecture fields}``, e.g. ``{"plain": {"residual": False}}``.
        seed: seed of the digits, of every initialisation and of the training.
        progress: optional ``progress(fraction, message)``.
        architecture: ``architecture(config, blocks, **fields) -> Architecture``.

    Returns:
        The learning curves of `train`, with columns ``network`` and ``blocks`` added.
    """
    data = digits(config, seed)
    step = Progress(progress, len(families) * len(config.depths) * config.epochs)
    frames = []
    for blocks in config.depths:
        for name, fields in families.items():
            keras.utils.set_random_seed(seed)
            model = build_resnet(architecture(config, blocks, **fields))
            curve = train(model, data, config, progress=step, label=f"{name}, {blocks} blocks")
            frames.append(curve.assign(network=name, blocks=blocks))
    step.finish()
    return pd.concat(frames, ignore_index=True)


def split_model(model):
    """The layers of a `build_resnet` model as ``(stem, blocks, head)`` lists, in order."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    indices = [i for i, layer in enumerate(layers) if parse_block_name(layer.name)]
    return layers[: indices[0]], layers[indices[0] : indices[-1] + 1], layers[indices[-1] + 1 :]


def forward(layers, h, training=False):
    """Calls ``layers`` in order on ``h``."""
    for layer in layers:
        h = layer(h, training=training)
    return h
