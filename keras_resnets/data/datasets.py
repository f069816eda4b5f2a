"""Image-classification datasets as ``tf.data`` pipelines that feed every Keras backend.

``load_data`` returns normalised, shuffled, batched and prefetched ``tf.data``
pipelines built from in-memory uint8 arrays; Keras 3's ``model.fit`` accepts them
on TensorFlow, JAX and PyTorch alike. Datasets come from tensorflow-datasets
(``DATASETS`` lists them) or, offline, from the embedded ``"mnist_sample"``: the
10,000 real digits of the MNIST test set (Y. LeCun, C. Cortes, C. J. C. Burges),
CC BY-SA 3.0, https://creativecommons.org/licenses/by-sa/3.0/.

A tensorflow-datasets source is used only if it is prepared in ``data_dir`` or its
download host answers within seconds, so nothing blocks offline: ``"mnist"`` then
falls back to the embedded sample with a warning, the others raise
``DataUnavailableError``.

Example:
    >>> from keras_resnets.data.datasets import load_data
    >>> data = load_data("mnist_sample", batch_size=32, subset=256)
    >>> images, labels = next(iter(data.train))
    >>> data.num_train, data.steps_per_epoch
    (256, 8)
"""

from __future__ import annotations

import functools
import math
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from keras_resnets.data.spec import split_sizes
from keras_resnets.design.validation import check_choice, check_int, check_number, check_seed

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "DATASETS",
    "Data",
    "DataUnavailableError",
    "DatasetInfo",
    "is_available",
    "load_arrays",
    "load_data",
    "num_examples",
]

SAMPLE_NAME = "mnist_sample"
_SAMPLE_PATH = Path(__file__).resolve().parents[1] / "_data" / "mnist_sample.npz"
_SAMPLE_SOURCE = "embedded MNIST sample (10,000 real digits from the MNIST test set, offline)"
_CROP_PADDING = 4
_REACH_TIMEOUT = 2.0


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    Attributes:
        name: Key in ``DATASETS``.
        image_shape: ``(height, width, channels)`` of one image.
        classes: Number of classes; labels are ``0 .. classes - 1``.
        mean: Per-channel mean of the training pixels scaled to [0, 1].
        std: Per-channel standard deviation of the training pixels scaled to [0, 1].
        tfds_name: tensorflow-datasets name, or None for the embedded sample.
        description: One line for humans.
        train_examples: Examples of the training split (the whole sample for the sample).
    """

    name: str
    image_shape: tuple[int, int, int]
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tfds_name: str | None
    description: str
    train_examples: int


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(SAMPLE_NAME, (28, 28, 1), 10, (0.1325,), (0.3105,), None,
                    "10,000 real MNIST test digits embedded in the package (offline)",
                    10_000),
        DatasetInfo("mnist", (28, 28, 1), 10, (0.1307,), (0.3081,), "mnist",
                    "MNIST handwritten digits, 60,000 train / 10,000 test",
                    60_000),
        DatasetInfo("fashion_mnist", (28, 28, 1), 10, (0.2860,), (0.3530,), "fashion_mnist",
                    "Fashion-MNIST clothing images, 60,000 train / 10,000 test",
                    60_000),
        DatasetInfo("kmnist", (28, 28, 1), 10, (0.1918,), (0.3483,), "kmnist",
                    "Kuzushiji-MNIST cursive Japanese characters, 60,000 train / 10,000 test",
                    60_000),
        DatasetInfo("cifar10", (32, 32, 3), 10, (0.4914, 0.4822, 0.4465),
                    (0.2470, 0.2435, 0.2616), "cifar10",
                    "CIFAR-10 natural images, 50,000 train / 10,000 test",
                    50_000),
        DatasetInfo("cifar100", (32, 32, 3), 100, (0.5071, 0.4865, 0.4409),
                    (0.2673, 0.2564, 0.2762), "cifar100",
                    "CIFAR-100 natural images, 50,000 train / 10,000 test",
                    50_000),
        DatasetInfo("svhn_cropped", (32, 32, 3), 10, (0.4377, 0.4438, 0.4728),
                    (0.1980, 0.2010, 0.1970), "svhn_cropped",
                    "SVHN cropped house-number digits, 73,257 train / 26,032 test",
                    73_257),
    )
}

# tensorflow-datasets first tries its GCS mirror of prepared datasets, then the original host.
_GCS_MIRROR = "https://storage.googleapis.com/tfds-data/"
_DOWNLOAD_URLS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://storage.googleapis.com/cvdf-datasets/mnist/",),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    "kmnist": ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
    "svhn_cropped": ("http://ufldl.stanford.edu/housenumbers/",),
}


class DataUnavailableError(ValueError):
    """A dataset can be neither read locally nor downloaded.

    Attributes:
        name: The dataset asked for.
        reason: Why it is unavailable.
    """

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(
            f"Dataset {name!r} is unavailable: {reason}. To use it, prepare it on a machine "
            f"with internet access (python -c \"import tensorflow_datasets as tfds; "
            f"tfds.builder('{name}', data_dir='DIR').download_and_prepare()\"), copy DIR here "
            f"and pass data_dir='DIR'; or use name={SAMPLE_NAME!r} (embedded, offline)."
        )


@dataclass
class Data:
    """What ``load_data`` returns.

    Attributes:
        train: Shuffled (and optionally augmented) batches ``(images, labels)``.
        validation: Batches of held-out training examples, or None.
        info: Facts about the dataset actually used (the sample after a fallback).
        num_train: Training examples per epoch.
        num_validation: Validation examples.
        source: Where the data came from, for humans.
        steps_per_epoch: Training batches per epoch.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    info: DatasetInfo
    num_train: int
    num_validation: int
    source: str
    steps_per_epoch: int


def load_data(name: str = SAMPLE_NAME, *, batch_size: int = 64, validation_split: float = 0.1,
              subset: int | None = None, data_dir: str | Path | None = None, augment: bool = False,
              seed: int = 0, data_format: str | None = None, validation_batch_size: int | None = None,
              fallback: bool = True, drop_remainder: bool = False, reshuffle: bool = True,
              shuffle_seed: int | None = None) -> Data:
    """Loads a dataset as normalised, batched ``tf.data`` pipelines.

    Validation examples are held out of the training split (the whole sample for
    ``"mnist_sample"``, the ``'train'`` split otherwise), chosen by ``seed``.

    Args:
        name: A key of ``DATASETS``.
        batch_size: Training batch size, positive.
        validation_split: Fraction of training examples held out, in [0, 1).
        subset: Number of training examples used (after the validation split), or None for all.
        data_dir: tensorflow-datasets directory; None for its default.
        augment: Apply the ResNet paper's CIFAR augmentation to training batches: 4 pixels of
            zero padding (after normalisation), a random crop back to the image size and a
            random horizontal flip. Meant for natural images; it mirrors digits too.
        seed: Seeds the validation split, and the shuffling and the augmentation unless
            ``shuffle_seed`` is given.
        data_format: ``"channels_last"`` or ``"channels_first"``; None for
            ``keras.config.image_data_format()``.
        validation_batch_size: Validation batch size; None for ``batch_size``.
        fallback: For ``"mnist"``, use the embedded sample (with a warning) when
            tensorflow-datasets cannot provide it.
        drop_remainder: Drop the last partial batch of each pipeline (data parallelism
            splits every batch evenly over the devices); ``num_train`` and
            ``num_validation`` then count the examples that are used.
        reshuffle: Shuffle the training examples anew on every pass of the pipeline; False
            repeats the first pass' order (the training runner builds one pipeline per epoch,
            so that a pass made by ``tf.distribute`` to inspect the data shifts nothing).
        shuffle_seed: Seeds the training order and the augmentation (the runner gives one
            per epoch); None for ``seed``.

    Returns:
        A ``Data`` whose pipelines yield float32 images and int32 labels.

    Raises:
        ValueError: For an unknown name or a bad argument.
        DataUnavailableError: When the dataset cannot be had.

    Example:
        >>> data = load_data(batch_size=128, validation_split=0.2, data_format="channels_first")
        >>> data.num_train, data.num_validation, data.train.element_spec[0].shape
        (8000, 2000, TensorShape([None, 1, 28, 28]))
    """
    check_arguments(name, batch_size=batch_size, validation_split=validation_split,
                    subset=subset, seed=seed)
    check_int("validation_batch_size", validation_batch_size, optional=True)
    channels_first = _channels_first(data_format)
    info, (images, labels), _, source = _resolve(name, data_dir, fallback)
    train_idx, val_idx = _split(len(images), validation_split, subset, seed)
    validation_batch_size = validation_batch_size or batch_size
    if drop_remainder:
        train_idx, val_idx = _whole_batches(train_idx, val_idx, batch_size, validation_batch_size)
    return _batched_data(images, labels, train_idx, val_idx, info=info, source=source,
                         channels_first=channels_first, batch_size=batch_size,
                         validation_batch_size=validation_batch_size, augment=augment,
                         reshuffle=reshuffle, seed=seed if shuffle_seed is None else shuffle_seed)


def load_arrays(
    name: str = SAMPLE_NAME, *, data_dir: str | Path | None = None, fallback: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None, str]:
    """Loads a dataset as raw uint8 arrays, images in (N, H, W, C) layout.

    Args:
        name: A key of ``DATASETS``.
        data_dir: tensorflow-datasets directory; None for its default.
        fallback: For ``"mnist"``, use the embedded sample (with a warning) when
            tensorflow-datasets cannot provide it.

    Returns:
        ``((x_train, y_train), test, source)``: ``test`` is ``(x_test, y_test)`` from the
        ``'test'`` split, or None for the embedded sample (it *is* MNIST's test set);
        ``source`` says where the arrays came from.

    Raises:
        ValueError: For an unknown name.
        DataUnavailableError: When the dataset cannot be had.

    Example:
        >>> (x, y), test, source = load_arrays("mnist_sample")
        >>> x.shape, y.dtype.name, test
        ((10000, 28, 28, 1), 'uint8', None)
    """
    _, train, test, source = _resolve(name, data_dir, fallback)
    return train, test, source


def normalize(images: np.ndarray, name: str = SAMPLE_NAME, data_format: str | None = None) -> np.ndarray:
    """Scales uint8 ``images`` (N, H, W, C) of dataset ``name`` as the pipelines do: to [0, 1],
    then by the dataset's mean and standard deviation; float32, in ``data_format``.

    Example:
        >>> x = normalize(np.full((1, 28, 28, 1), 255, "uint8"), data_format="channels_first")
        >>> x.shape, round(float(x.max()), 3)
        ((1, 1, 28, 28), 2.794)
    """
    info = _info(name)
    x = (images.astype("float32") / 255.0 - np.array(info.mean, "float32")) / np.array(info.std, "float32")
    return np.transpose(x, (0, 3, 1, 2)) if _channels_first(data_format) else x


def is_available(name: str, data_dir: str | Path | None = None, timeout: float = 2.0) -> bool:
    """Tells, within about ``timeout`` seconds, whether a dataset can be loaded.

    Args:
        name: A key of ``DATASETS``.
        data_dir: tensorflow-datasets directory; None for its default.
        timeout: Seconds to wait for the download hosts.

    Returns:
        True for the embedded sample, or when the dataset is prepared in ``data_dir``
        or one of its download hosts accepts a connection.

    Raises:
        ValueError: For an unknown name.

    Example:
        >>> is_available("mnist_sample")
        True
    """
    try:
        _check_tfds(_info(name), data_dir, timeout)
    except DataUnavailableError:
        return False
    return True


def num_examples(name: str, data_dir: str | Path | None = None) -> int:
    """The examples of the training split that `load_data` splits, counted without loading
    them: for ``"mnist"``, those of the embedded sample when it would fall back to it.

    Example:
        >>> num_examples("mnist_sample"), num_examples("cifar10")
        (10000, 50000)
    """
    info = _info(name)
    if name == "mnist" and not is_available(name, data_dir):
        info = DATASETS[SAMPLE_NAME]
    return info.train_examples


def check_arguments(name: str, *, batch_size: int = 32, validation_split: float = 0.1,
                    subset: int | None = None, seed: int = 0) -> None:
    """Raises a `ValueError` naming the first argument of `load_data` that is wrong, without
    loading anything (the training runner checks them before it creates a run).

    Example:
        >>> check_arguments("mnist_sample", validation_split=1.5)
        Traceback (most recent call last):
        ...
        ValueError: validation_split=1.5 is not allowed: a finite number in [0, 1).
    """
    _info(name)
    check_int("batch_size", batch_size)
    check_int("subset", subset, optional=True)
    check_number("validation_split", validation_split, 0, 1, high_open=True)
    check_seed("seed", seed)


def _info(name: str) -> DatasetInfo:
    return DATASETS[check_choice("name", name, tuple(sorted(DATASETS)))]


def _channels_first(data_format: str | None) -> bool:
    if data_format is None:
        import keras

        data_format = keras.config.image_data_format()
    check_choice("data_format", data_format, ("channels_last", "channels_first", None))
    return data_format == "channels_first"


def _resolve(name, data_dir, fallback):
    """Returns ``(info, (x, y), test or None, source)``, falling back for mnist."""
    info = _info(name)
    if info.tfds_name is None:
        return info, _sample(), None, _SAMPLE_SOURCE
    try:
        return (info, *_tfds_arrays(info, data_dir))
    except DataUnavailableError as err:
        if name != "mnist" or not fallback:
            raise
        warnings.warn(
            f"tensorflow-datasets 'mnist' is unavailable ({err.reason}); using the "
            f"{_SAMPLE_SOURCE} instead. Pass fallback=False to get an error instead.",
            stacklevel=3,
        )
        source = (
            f"{_SAMPLE_SOURCE}, as fallback: tensorflow-datasets mnist unavailable ({err.reason})"
        )
        return DATASETS[SAMPLE_NAME], _sample(), None, source


@functools.lru_cache(maxsize=1)
def _sample() -> tuple[np.ndarray, np.ndarray]:
    with np.load(_SAMPLE_PATH) as npz:
        images, labels = npz["images"], npz["labels"]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _check_tfds(info: DatasetInfo, data_dir, timeout: float):
    """Returns a tensorflow-datasets builder and whether it is prepared, or raises quickly."""
    if info.tfds_name is None:
        return None, True
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataUnavailableError(
            info.name, "tensorflow-datasets is not installed (pip install tensorflow-datasets)"
        ) from err
    builder = tfds.builder(info.tfds_name, data_dir=None if data_dir is None else str(data_dir))
    prepared = builder.data_path.exists() and builder.is_prepared()
    urls = (_GCS_MIRROR, *_DOWNLOAD_URLS[info.tfds_name])
    if not prepared and not _reachable(urls, timeout):
        hosts = ", ".join(sorted({urllib.parse.urlsplit(url).hostname for url in urls}))
        raise DataUnavailableError(
            info.name,
            f"it is not prepared in {builder.data_dir} and no download host ({hosts}) "
            f"could be reached within {timeout:g} s",
        )
    return builder, prepared


def _tfds_arrays(info: DatasetInfo, data_dir):
    """Returns ``(x_train, y_train), (x_test, y_test), source`` from tensorflow-datasets."""
    builder, prepared = _check_tfds(info, data_dir, _REACH_TIMEOUT)
    import tensorflow_datasets as tfds

    try:
        splits = tfds.load(info.tfds_name, split=["train", "test"], as_supervised=True,
                           data_dir=None if data_dir is None else str(data_dir),
                           download=not prepared)
        train, test = (_to_arrays(split) for split in splits)
    except Exception as err:  # tfds raises many types; report them all the same way
        raise DataUnavailableError(
            info.name, f"tensorflow-datasets failed with {type(err).__name__}: {err}"
        ) from err
    return train, test, f"tensorflow-datasets {info.tfds_name} from {builder.data_dir}"


def _to_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """Reads a ``(image, label)`` dataset into uint8 arrays, a few thousand at a time."""
    batches = [(x.numpy(), y.numpy()) for x, y in ds.batch(4096)]
    images = np.concatenate([x for x, _ in batches]).astype(np.uint8)
    return images, np.concatenate([y for _, y in batches]).astype(np.uint8)


def _reachable(urls, timeout: float) -> bool:
    """Tells whether any URL's host (or its proxy) accepts a TCP connection within ``timeout``."""
    answers: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def probe(address):
        try:
            with socket.create_connection(address, timeout=timeout):
                answers.put(True)
        except OSError:
            answers.put(False)

    addresses = {_address(url) for url in urls}
    for address in addresses:  # daemon threads: a hanging DNS lookup cannot block exit
        threading.Thread(target=probe, args=(address,), daemon=True).start()
    deadline = time.monotonic() + timeout
    for _ in addresses:
        try:
            if answers.get(timeout=max(0.0, deadline - time.monotonic())):
                return True
        except queue.Empty:
            return False
    return False


def _address(url: str) -> tuple[str, int]:
    """Returns the ``(host, port)`` a download of ``url`` connects to first."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _split(n: int, validation_split: float, subset: int | None, seed: int):
    """Returns shuffled training and validation indices into ``n`` examples."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_validation = split_sizes(n, validation_split, subset)
    return order[n_validation:n_validation + n_train], order[:n_validation]


def _whole_batches(train_idx, val_idx, batch_size, validation_batch_size):
    """The training and validation indices cut to whole batches (``drop_remainder``)."""
    train_idx = train_idx[: len(train_idx) - len(train_idx) % batch_size]
    val_idx = val_idx[: len(val_idx) - len(val_idx) % validation_batch_size]
    if not len(train_idx):
        raise ValueError(f"batch_size={batch_size} is larger than the training examples "
                         "left; with drop_remainder no batch would remain.")
    return train_idx, val_idx


def _batched_data(images, labels, train_idx, val_idx, *, info, source, channels_first, batch_size,
                  validation_batch_size, augment, reshuffle, seed) -> Data:
    """The `Data` of the indexed examples: a training pipeline, and a validation one when there
    are validation examples."""
    pipeline = functools.partial(_pipeline, info=info, channels_first=channels_first)
    train = pipeline(images[train_idx], labels[train_idx], batch_size=batch_size,
                     training=True, augment=augment, reshuffle=reshuffle, seed=seed)
    validation = None
    if len(val_idx):
        validation = pipeline(images[val_idx], labels[val_idx], batch_size=validation_batch_size)
    return Data(train, validation, info, len(train_idx), len(val_idx), source,
                math.ceil(len(train_idx) / batch_size))


def _pipeline(images, labels, *, info, channels_first, batch_size, training=False,
              augment=False, seed=None, reshuffle=True):
    """Builds the batched pipeline; for ``training`` it shuffles and optionally augments."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if training:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=reshuffle)
    ds = ds.batch(batch_size)
    mean = tf.constant(info.mean, tf.float32)
    std = tf.constant(info.std, tf.float32)

    def prepare(x, y, augment_seed=None):
        x = (tf.cast(x, tf.float32) / 255.0 - mean) / std
        if augment_seed is not None:
            x = _augment(x, augment_seed)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return x, tf.cast(y, tf.int32)

    if training and augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle)
        ds = tf.data.Dataset.zip(ds, seeds.batch(2)).map(
            lambda xy, pair: prepare(*xy, pair), num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _augment(images, seed):
    """Zero-pads a batch by ``_CROP_PADDING`` pixels, crops randomly back and flips half."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.split(seed, 2))
    n, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    pad = _CROP_PADDING
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([n, 2], crop_seed, maxval=2 * pad + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)
    cols = offsets[:, 1:] + tf.range(width)
    crops = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    flip = tf.random.stateless_uniform([n, 1, 1, 1], flip_seed) < 0.5
    return tf.where(flip, tf.reverse(crops, axis=[2]), crops)
