"""Take a trained network apart (Veit et al. 2016): lesions, branch norms and paths.

The `ensembles` experiment trains its own networks; these functions take any trained
`build_resnet` model whose blocks keep the shape of their input (the lecture's MNIST ResNet
and its plain twin): delete blocks at test time (`delete_each`, `delete_random`), measure how
much each block changes the stream (`branch_ratios`) and how the gradient spreads over the
``2^n`` paths (`path_length_shares`, `gradient_by_length`). `held_out` gives a run's
validation digits, which it never trained on.

Example:
>>> from keras_resnets import build_resnet, presets
>>> model = build_resnet(presets.mnist_resnet(nb_channels=4, nb_blocks=3))
>>> x = np.random.default_rng(0).normal(size=(8, 28, 28, 1)).astype("float32")
>>> y = np.arange(8) % 10
>>> delete_each(model, x, y).block.tolist()
[1, 2, 3]
>>> path_length_shares(3).share.tolist()
[0.125, 0.375, 0.375, 0.125]
"""

import keras
import numpy as np
import pandas as pd

from keras_resnets.data.datasets import load_data
from keras_resnets.design.validation import fail
from keras_resnets.experiments._common import accuracy, forward, predict, split_model
from keras_resnets.experiments.ensembles import (
    lesion,
    path_gradients,
    path_length_counts,
    random_paths,
)
from keras_resnets.runs.records import RunConfig


def blocks_of(model):
    """The blocks of ``model`` in order; `ValueError` unless each keeps its input's shape
    (a block that changes it cannot be replaced by the identity)."""
    _, blocks, _ = split_model(model)
    for block in blocks:
        shape_in, shape_out = tuple(block.input.shape[1:]), tuple(block.output.shape[1:])
        if shape_in != shape_out:
            raise ValueError(
                f"block {block.name} maps {shape_in} to {shape_out}: only blocks that keep "
                "their input's shape can be deleted (as in the lecture's MNIST ResNet)."
            )
    return blocks


def check_deleted(deleted, n):
    """``deleted`` as a sorted tuple of 0-based block indices; `ValueError` unless they are
    distinct indices in ``[0, n)`` and leave at least one block."""
    deleted = tuple(sorted(set(int(i) for i in deleted)))
    if any(i < 0 or i >= n for i in deleted):
        fail("deleted", list(deleted), f"block indices in [0, {n})")
    if len(deleted) == n:
        fail("deleted", list(deleted), f"keep at least one of the {n} blocks (deleting every block "
                                       "leaves no network to take apart)")
    return deleted


def lesion_accuracy(model, x, y, deleted=()):
    """Accuracy on ``(x, y)`` of ``model`` with the blocks ``deleted`` (0-based) replaced
    by the identity of their skip connection."""
    deleted = check_deleted(deleted, len(blocks_of(model)))
    return accuracy(lesion(model, deleted), x, y)


def delete_each(model, x, y):
    """Accuracy with each single block deleted: a row per ``block`` (1-based), with
    ``accuracy`` and ``drop`` (the intact accuracy minus it)."""
    stem, blocks, head = split_model(model)
    blocks_of(model)
    states = [predict(lambda h: forward(stem, h), x)]
    for block in blocks:  # the stream before each block: shared by the lesions after it
        states.append(predict(lambda h, b=block: b(h, training=False), states[-1]))
    intact = float(np.mean(predict(lambda h: forward(head, h), states[-1]).argmax(-1) == y))
    scores = [accuracy(lambda h, i=i: forward(head, forward(blocks[i + 1:], h)), states[i], y)
              for i in range(len(blocks))]
    return pd.DataFrame({"block": range(1, len(blocks) + 1), "accuracy": scores,
                         "drop": [intact - s for s in scores]})


def delete_random(model, x, y, samples=3, seed=0, ks=None):
    """Mean accuracy with ``k`` random blocks deleted, over ``samples`` random sets, for
    ``k`` in ``ks`` (default ``0 .. n - 1``): columns ``k``, ``accuracy``, ``std``."""
    n = len(blocks_of(model))
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n) if ks is None else ks:
        check_deleted(range(k), n)
        sets = [rng.choice(n, k, replace=False) for _ in range(samples if k else 1)]
        scores = [accuracy(lesion(model, s), x, y) for s in sets]
        rows.append({"k": k, "accuracy": float(np.mean(scores)), "std": float(np.std(scores))})
    return pd.DataFrame(rows)


def branch_ratios(model, x):
    """How much each block changes the stream on ``x``: the mean over images of
    ``|block(h) - h| / |h|`` at the block's input ``h`` (for a post-activation block, its
    residual branch after the final ReLU: what deleting the block removes). A row per
    ``block`` (1-based) with ``ratio``."""
    stem, blocks, _ = split_model(model)
    blocks_of(model)
    h = keras.ops.convert_to_numpy(forward(stem, keras.ops.convert_to_tensor(x)))
    ratios = []
    for block in blocks:
        out = keras.ops.convert_to_numpy(block(keras.ops.convert_to_tensor(h), training=False))
        axes = tuple(range(1, h.ndim))
        change = np.sqrt(((out - h) ** 2).sum(axis=axes))
        stream = np.sqrt((h**2).sum(axis=axes))
        ratios.append(float(np.mean(change / np.maximum(stream, 1e-12))))
        h = out
    return pd.DataFrame({"block": range(1, len(blocks) + 1), "ratio": ratios})


def path_length_shares(n):
    """The ``2^n`` paths of ``n`` blocks by length ``k``: ``paths`` (``C(n, k)``) and
    ``share`` (of all paths; the binomial distribution, summing to 1)."""
    counts = path_length_counts(n)
    return pd.DataFrame({"k": range(n + 1), "paths": counts,
                         "share": [c / 2**n for c in counts]})


def gradient_by_length(model, x, y, samples=2, seed=0, ks=None):
    """How much of the gradient paths of each length carry (Veit et al., Fig. 6).

    For ``k`` in ``ks`` (default ``0 .. n``), the mean norm of the loss gradient at the first
    block's input through ``samples`` random single paths of length ``k`` (`path_gradients`),
    times ``C(n, k)``. Columns ``k``, ``per_path``, ``carried`` and ``share`` (of the
    ``carried`` total).
    """
    n = len(blocks_of(model))
    rng = np.random.default_rng(seed)
    counts = path_length_counts(n)
    rows = []
    for k in range(n + 1) if ks is None else ks:
        grads = path_gradients(model, x, y, random_paths(n, k, samples, rng))
        per_path = float(np.mean(np.sqrt((grads.reshape(len(grads), -1) ** 2).sum(axis=1))))
        rows.append({"k": k, "per_path": per_path, "carried": per_path * counts[k]})
    table = pd.DataFrame(rows)
    return table.assign(share=table.carried / table.carried.sum())


def lesion_study(model, x, y, *, paths=True, samples=3, ks=None, gradient_digits=4, seed=0):
    """Everything a lesion study measures on held-out digits ``(x, y)``, as JSON numbers: what
    the shipped networks keep in their ``"lesions"`` and the explorer's Take apart page reads.

    Args:
        model: a trained `build_resnet` network whose blocks keep their input's shape.
        x, y: held-out digits and their labels.
        paths: also measure what only a ResNet has: `branch_ratios` (on 64 digits) and the
            gradient by path length (`gradient_by_length`, on ``gradient_digits`` digits).
        samples, ks, seed: the random deletions of `delete_random` (``ks``: default
            ``1 .. n - 1``).

    Returns:
        A dict: ``digits``; ``intact`` (the accuracy with every block); ``each`` (the
        accuracy with block ``i + 1`` deleted, for each ``i``); ``random`` (``k``,
        ``accuracy``, ``std`` and ``samples`` of random deletions); with ``paths``,
        ``ratios`` (per block) and ``gradient`` (``k`` and ``share``).

    Example:
    >>> from keras_resnets import build_resnet, presets
    >>> model = build_resnet(presets.mnist_resnet(nb_channels=4, nb_blocks=3))
    >>> x = np.zeros((8, 28, 28, 1), "float32")
    >>> study = lesion_study(model, x, np.arange(8) % 10, samples=1)
    >>> len(study["each"]), study["random"]["k"], study["gradient"]["k"]
    (3, [1, 2], [0, 1, 2, 3])
    """
    n = len(blocks_of(model))
    random = delete_random(model, x, y, samples=samples, seed=seed,
                           ks=range(1, n) if ks is None else ks)
    study = {"digits": int(len(y)), "intact": lesion_accuracy(model, x, y),
             "each": delete_each(model, x, y).accuracy.tolist(),
             "random": {"k": random.k.tolist(), "accuracy": random.accuracy.tolist(),
                        "std": random["std"].tolist(), "samples": samples}}
    if paths:
        gradient = gradient_by_length(model, x[:gradient_digits], y[:gradient_digits],
                                      samples=samples, seed=seed)
        study["ratios"] = branch_ratios(model, x[:64]).ratio.tolist()
        study["gradient"] = {"k": gradient.k.tolist(), "share": gradient.share.tolist()}
    return study


def held_out(config, limit=None):
    """The validation digits of a run's ``config`` (a `RunConfig` or its JSON object: its
    dataset and seed), which it never trained on, as normalised NumPy arrays ``(x, y)`` (the
    first ``limit`` of them); `ValueError` if the run held none out."""
    config = RunConfig.from_dict(config)
    dataset = config.dataset
    data = load_data(dataset.name, batch_size=500, validation_split=dataset.validation_split,
                     subset=dataset.subset, data_dir=dataset.data_dir, seed=config.seed,
                     data_format=config.design().data_format)
    if data.validation is None:
        fail("validation_split", dataset.validation_split,
             "above 0: the run held no digits out, so there are none it has not seen")
    batches = list(data.validation.as_numpy_iterator())
    x = np.concatenate([b[0] for b in batches])[:limit]
    y = np.concatenate([b[1] for b in batches])[:limit]
    return x, y

