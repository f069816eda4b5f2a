"""Image-classification datasets as streaming ``tf.data`` pipelines that feed every Keras backend.

A dataset is a name of `DATASETS` (tensorflow-datasets names and the embedded
``"mnist_sample"``) or the path of an image folder (one subfolder per class, see
`keras_resnets.data.folders`). ``load_data`` returns shuffled, decoded, transformed,
normalised, batched and prefetched pipelines; Keras 3's ``model.fit`` takes them on
TensorFlow, JAX and PyTorch alike. Images stream: a folder's file list or a
tensorflow-datasets stream is held, never the decoded set (only the 1.7 MB embedded sample
sits in memory). ``describe`` tells the sizes, image shape and classes without decoding.

Held-out images come from ``validation_split`` (chosen by ``seed``), or from a second folder
(``validation_dataset``). ``transforms`` names the input transforms of a recipe
(`keras_resnets.data.transforms`: ``"none"``, ``"cifar"``, ``"imagenet"``).

Offline, ``"mnist"`` falls back to the embedded sample with a warning; the other
tensorflow-datasets names raise ``DataUnavailableError`` unless prepared in ``data_dir``.

Example:
    >>> data = load_data("mnist_sample", batch_size=32, subset=256)
    >>> images, labels = next(iter(data.train))
    >>> data.num_train, data.steps_per_epoch
    (256, 8)
    >>> describe("cifar10", transforms="imagenet").image_shape
    (224, 224, 3)
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from keras_resnets.data.catalog import (
    DATASETS,
    SAMPLE_NAME,
    SAMPLE_SOURCE,
    DatasetInfo,
    DataUnavailableError,
    check_tfds,
    dataset_info,
    prepared_count,
    sample,
    tfds_split,
)
from keras_resnets.data.folders import Folder, is_folder, scan
from keras_resnets.data.pipelines import (
    image_decoder,
    pipeline,
    selected,
    shard_order,
    shuffle_buffer,
)
from keras_resnets.data.spec import check_dataset, check_sources, resolve_transforms, split_sizes
from keras_resnets.data.transforms import imagenet_stats, mean_std, output_shape
from keras_resnets.design.validation import check_choice, check_int, check_number, check_seed, fail

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "DATASETS",
    "Data",
    "DataUnavailableError",
    "DatasetInfo",
    "Description",
    "describe",
    "is_available",
    "load_arrays",
    "load_data",
    "normalize",
    "num_examples",
]


@dataclass(frozen=True)
class Description:
    """What `describe` tells of a dataset, without decoding an image.

    Attributes:
        info: The dataset's facts, with the transforms it would be loaded with.
        num_train: Training images per epoch.
        num_validation: Held-out images.
    """

    info: DatasetInfo
    num_train: int
    num_validation: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the images the pipelines yield."""
        return self.info.image_shape

    @property
    def classes(self) -> int:
        """Number of classes."""
        return self.info.classes


@dataclass
class Data:
    """What ``load_data`` returns.

    Attributes:
        train: Shuffled (and transformed) batches ``(images, labels)``.
        validation: Batches of held-out images, or None.
        info: Facts about the dataset actually used (the sample after a fallback), with the
            transforms applied (``info.transforms``) and the image shape they make.
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


def load_data(name=SAMPLE_NAME, *, batch_size: int = 64, validation_split: float = 0.1,
              subset: int | None = None, data_dir: str | Path | None = None, augment: bool = False,
              seed: int = 0, data_format: str | None = None, validation_batch_size: int | None = None,
              fallback: bool = True, drop_remainder: bool = False, reshuffle: bool = True,
              shuffle_seed: int | None = None, transforms: str | None = None,
              validation_dataset=None, shard: tuple[int, int] | None = None) -> Data:
    """Loads a dataset as normalised, batched, streaming ``tf.data`` pipelines.

    Validation examples are held out of the training split (the whole sample for
    ``"mnist_sample"``, the ``'train'`` split otherwise, every image of a folder), chosen by
    ``seed``, unless ``validation_dataset`` names a folder of them.

    Args:
        name: A key of ``DATASETS`` or the path of an image folder.
        batch_size: Training batch size, positive.
        validation_split: Fraction of training examples held out, in [0, 1).
        subset: Number of training examples used (after the validation split), or None for all.
        data_dir: tensorflow-datasets directory; None for its default.
        augment: True means ``transforms="cifar"`` (the ResNet paper's CIFAR augmentation).
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
        transforms: The input transforms' name (`keras_resnets.data.transforms.TRANSFORMS`);
            None for the dataset's default (``"imagenet"`` for the ImageNet sets, else
            ``"none"``).
        validation_dataset: The path of an image folder with the training folder's classes,
            whose images are the validation set (then ``validation_split`` must be 0).
        shard: ``(index, count)``: the share of process ``index`` of ``count`` that train
            together: every ``count``-th example, from ``index``, of the order one process
            would see, in batches of ``batch_size / count`` (``batch_size`` is the global
            batch), cut to whole global batches; the process reads no other image. The sample
            and image folders only (a tensorflow-datasets stream is read in its own order).

    Returns:
        A ``Data`` whose pipelines yield float32 images and int32 labels.

    Raises:
        ValueError: For an unknown name, a folder that cannot be used (the message names the
            files or the fix) or a bad argument.
        DataUnavailableError: When the dataset cannot be had.

    Example:
        >>> data = load_data(batch_size=128, validation_split=0.2, data_format="channels_first")
        >>> data.num_train, data.num_validation, data.train.element_spec[0].shape
        (8000, 2000, TensorShape([None, 1, 28, 28]))
    """
    check_arguments(name, batch_size=batch_size, validation_split=validation_split,
                    subset=subset, seed=seed)
    check_int("validation_batch_size", validation_batch_size, optional=True)
    check_seed("shuffle_seed", shuffle_seed, optional=True)
    channels_first = _channels_first(data_format)
    source = _open(name, data_dir=data_dir, transforms=transforms, augment=augment,
                   validation_dataset=validation_dataset, validation_split=validation_split,
                   fallback=fallback)
    train_idx, val_idx = _split(source, validation_split, subset, seed)
    validation_batch_size = validation_batch_size or batch_size
    if drop_remainder or shard is not None:
        train_idx, val_idx = _whole_batches(train_idx, val_idx, batch_size, validation_batch_size)
    shuffle_seed = seed if shuffle_seed is None else shuffle_seed
    own_train, own_val, count = train_idx, val_idx, 1
    if shard is not None:
        index, count = _check_shard(shard, source, batch_size, validation_batch_size)
        order = shard_order(len(train_idx), seed=shuffle_seed,
                            shuffle_buffer=source.shuffle_buffer(len(train_idx)))
        own_train, own_val = train_idx[order][index::count], val_idx[index::count]
    info = source.info
    mean, std = mean_std(info.transforms, info.mean, info.std)
    build = functools.partial(pipeline, transforms=info.transforms, mean=mean, std=std,
                              image_shape=info.image_shape, channels_first=channels_first,
                              decode=source.decode)
    train = build(source.examples(own_train), size=len(own_train),
                  batch_size=batch_size // count, training=True, seed=shuffle_seed,
                  reshuffle=reshuffle, shuffle_buffer=source.shuffle_buffer(len(own_train)),
                  shard=shard)
    validation = None
    if len(val_idx):
        validation = build(source.validation_examples(own_val), size=len(own_val),
                           batch_size=validation_batch_size // count)
    return Data(train, validation, info, len(train_idx), len(val_idx), source.text,
                math.ceil(len(train_idx) / batch_size))


def describe(name=SAMPLE_NAME, *, validation_split: float = 0.1, subset: int | None = None,
             data_dir: str | Path | None = None, augment: bool = False,
             transforms: str | None = None, validation_dataset=None) -> Description:
    """Tells what `load_data` would load with these arguments, without decoding an image:
    the numbers of training and validation images, the image shape and the classes.

    A folder's files are listed and their headers checked (`keras_resnets.data.folders`); a
    tensorflow-datasets name reads its prepared counts, or its published ones when it is not
    prepared (``"mnist"`` may still fall back to the embedded sample when loaded).

    Raises:
        ValueError: As `load_data` does for the same arguments.

    Example:
        >>> d = describe("mnist_sample", validation_split=0.1, subset=4096)
        >>> d.num_train, d.num_validation, d.image_shape, d.classes
        (4096, 1000, (28, 28, 1), 10)
    """
    check_arguments(name, validation_split=validation_split, subset=subset)
    info, folder, validation = _resolve(name, data_dir, transforms, augment, validation_dataset,
                                        validation_split)
    if folder is None:
        info = replace(info, train_examples=num_examples(name, data_dir))
    if validation is None:
        return Description(info, *split_sizes(info.train_examples, validation_split, subset))
    n_train, _ = split_sizes(info.train_examples, 0, subset)
    return Description(info, n_train, len(validation.files))


def load_arrays(
    name: str = SAMPLE_NAME, *, data_dir: str | Path | None = None, fallback: bool = True
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None, str]:
    """Loads a named dataset of images of one size as raw uint8 arrays, (N, H, W, C), all in
    memory: for analyses of small sets (train with `load_data`, which streams).

    Args:
        name: A key of ``DATASETS`` whose images have one size.
        data_dir: tensorflow-datasets directory; None for its default.
        fallback: For ``"mnist"``, use the embedded sample (with a warning) when
            tensorflow-datasets cannot provide it.

    Returns:
        ``((x_train, y_train), test, source)``: ``test`` is ``(x_test, y_test)`` from the
        ``'test'`` split, or None for the embedded sample (it *is* MNIST's test set);
        ``source`` says where the arrays came from.

    Raises:
        ValueError: For an unknown name, or one whose images differ in size.
        DataUnavailableError: When the dataset cannot be had.

    Example:
        >>> (x, y), test, source = load_arrays("mnist_sample")
        >>> x.shape, y.dtype.name, test
        ((10000, 28, 28, 1), 'uint8', None)
    """
    info = dataset_info(name)
    if None in info.stored_shape:
        fail("dataset", name, "a dataset of images of one size: its images differ in size "
                              "(load it with load_data, which resizes them)")
    if info.tfds_name is not None:
        try:
            splits = [tfds_split(info, data_dir, split, decode=True) for split in ("train", "test")]
            return _to_arrays(splits[0][0]), _to_arrays(splits[1][0]), splits[0][1]
        except DataUnavailableError as err:
            return sample(), None, _fall_back(name, err, fallback)
    return sample(), None, SAMPLE_SOURCE


def normalize(images: np.ndarray, name: str = SAMPLE_NAME, data_format: str | None = None) -> np.ndarray:
    """Scales uint8 ``images`` (N, H, W, C) of dataset ``name`` as the pipelines do: to [0, 1],
    then by the dataset's mean and standard deviation; float32, in ``data_format``.

    Example:
        >>> x = normalize(np.full((1, 28, 28, 1), 255, "uint8"), data_format="channels_first")
        >>> x.shape, round(float(x.max()), 3)
        ((1, 1, 28, 28), 2.794)
    """
    info = dataset_info(name)
    x = (images.astype("float32") / 255.0 - np.array(info.mean, "float32")) / np.array(info.std, "float32")
    return np.transpose(x, (0, 3, 1, 2)) if _channels_first(data_format) else x


def is_available(name, data_dir: str | Path | None = None, timeout: float = 2.0) -> bool:
    """Tells, within about ``timeout`` seconds, whether a dataset can be loaded.

    Args:
        name: A key of ``DATASETS`` or a folder's path.
        data_dir: tensorflow-datasets directory; None for its default.
        timeout: Seconds to wait for the download hosts.

    Returns:
        True for the embedded sample and existing folders, or when the dataset is prepared in
        ``data_dir`` or one of its download hosts accepts a connection.

    Raises:
        ValueError: For an unknown name.

    Example:
        >>> is_available("mnist_sample")
        True
    """
    name = check_dataset(name)
    if name not in DATASETS:
        return is_folder(name)
    info = DATASETS[name]
    if info.tfds_name is None:
        return True
    try:
        check_tfds(info, data_dir, timeout)
    except DataUnavailableError:
        return False
    return True


def num_examples(name, data_dir: str | Path | None = None) -> int:
    """The examples of the training split that `load_data` splits, counted without loading
    them: a folder's images; a tensorflow-datasets name's prepared count, else its published
    one; for ``"mnist"``, those of the embedded sample when it would fall back to it.

    Example:
        >>> num_examples("mnist_sample"), num_examples("cifar10")
        (10000, 50000)
    """
    name = check_dataset(name)
    if name not in DATASETS:
        return len(scan(name).files)
    info = DATASETS[name]
    if info.tfds_name is None:
        return info.train_examples
    if name == "mnist" and not is_available(name, data_dir):
        return DATASETS[SAMPLE_NAME].train_examples
    return prepared_count(info, data_dir)


def check_arguments(name, *, batch_size: int = 32, validation_split: float = 0.1,
                    subset: int | None = None, seed: int = 0) -> None:
    """Raises a `ValueError` naming the first argument of `load_data` that is wrong, without
    reading anything (`describe` also checks a folder's images).

    Example:
        >>> check_arguments("mnist_sample", validation_split=1.5)
        Traceback (most recent call last):
        ...
        ValueError: validation_split=1.5 is not allowed: a finite number in [0, 1).
    """
    name = check_dataset(name)
    if name not in DATASETS and not is_folder(name):
        fail("dataset", name, "a dataset name or the path of an existing folder")
    check_int("batch_size", batch_size)
    check_int("subset", subset, optional=True)
    check_number("validation_split", validation_split, 0, 1, high_open=True)
    check_seed("seed", seed)


@dataclass(frozen=True)
class _Source:
    """A dataset opened for reading: its examples by position, before any pipeline."""

    info: DatasetInfo
    text: str
    examples: Callable  # positions -> tf.data.Dataset of (image, label)
    decode: Callable | None
    validation: Folder | None = None
    streamed: bool = False

    def validation_examples(self, positions):
        if self.validation is None:
            return self.examples(positions)
        return _file_examples(self.validation)(positions)

    def shuffle_buffer(self, size: int) -> int | None:
        return shuffle_buffer(self.info.stored_shape, size) if self.streamed else None


def _open(name, *, data_dir, transforms, augment, validation_dataset, validation_split, fallback):
    """The `_Source` of a dataset name or folder, falling back for mnist."""
    info, folder, validation = _resolve(name, data_dir, transforms, augment, validation_dataset,
                                        validation_split)
    if folder is not None:
        return _Source(info, _folder_text(info, validation), _file_examples(folder),
                       image_decoder(info.stored_shape[2], from_path=True), validation)
    if info.tfds_name is None:
        return _Source(info, SAMPLE_SOURCE, _array_examples, None)
    try:
        stream, text = tfds_split(info, data_dir, "train")
    except DataUnavailableError as err:
        text = _fall_back(name, err, fallback)
        return _Source(replace(DATASETS[SAMPLE_NAME], transforms=info.transforms), text,
                       _array_examples, None)
    info = replace(info, train_examples=int(stream.cardinality()))
    return _Source(info, text, functools.partial(_stream_examples, stream, info.train_examples),
                   image_decoder(info.stored_shape[2], from_path=False), streamed=True)


def _resolve(name, data_dir, transforms, augment, validation_dataset, validation_split):
    """``(info, folder, validation folder)``: the dataset's facts with the transforms to use and
    its folders (or None), every argument checked."""
    name = check_dataset(name)
    folder = None if name in DATASETS else scan(name)
    info = DATASETS[name] if folder is None else _folder_info(folder)
    check_sources(info.name, data_dir, validation_dataset, validation_split)
    info = replace(info, transforms=resolve_transforms(transforms, augment) or info.transforms)
    output_shape(info.transforms, info.stored_shape, folder.sizes if folder else None)
    if validation_dataset is None:
        return info, folder, None
    validation = scan(validation_dataset, "validation_dataset")
    if validation.class_names != folder.class_names:
        fail("validation_dataset", validation.root, f"a folder with the training folder's "
             f"classes {list(folder.class_names)}; it has {list(validation.class_names)}")
    shape = output_shape(info.transforms, (*validation.image_shape[:2], info.stored_shape[2]),
                         validation.sizes)
    if shape != info.image_shape:
        fail("validation_dataset", validation.root, f"images of {info.image_shape[1]}x"
             f"{info.image_shape[0]} as the training folder's; they are {shape[1]}x{shape[0]} "
             f"(pass transforms='imagenet' to resize both)")
    return info, folder, validation


def _folder_info(folder: Folder) -> DatasetInfo:
    channels = folder.image_shape[2]
    mean, std = imagenet_stats(channels)
    return DatasetInfo(folder.root, folder.image_shape, len(folder.class_names), mean, std, None,
                       f"image folder: {len(folder.files):,} images in {len(folder.class_names)} "
                       f"classes", len(folder.files), class_names=folder.class_names)


def _folder_text(info, validation):
    text = f"image folder {info.name} ({info.train_examples:,} images, {info.classes} classes)"
    return text + (f"; validation images from {validation.root}" if validation else "")


def _file_examples(folder: Folder):
    files, labels = np.array(folder.files), np.array(folder.labels, "int32")

    def examples(positions):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((files[positions], labels[positions]))

    return examples


def _array_examples(positions):
    import tensorflow as tf

    images, labels = sample()
    return tf.data.Dataset.from_tensor_slices((images[positions], labels[positions]))


def _stream_examples(stream, size, positions):
    chosen = np.zeros(size, bool)
    chosen[positions] = True
    return selected(stream, chosen)


def _fall_back(name, err, fallback):
    """Warns that the sample replaces ``name`` and says so as a source, or re-raises ``err``."""
    if name != "mnist" or not fallback:
        raise err
    warnings.warn(
        f"tensorflow-datasets 'mnist' is unavailable ({err.reason}); using the "
        f"{SAMPLE_SOURCE} instead. Pass fallback=False to get an error instead.",
        stacklevel=4,
    )
    return f"{SAMPLE_SOURCE}, as fallback: tensorflow-datasets mnist unavailable ({err.reason})"


def _channels_first(data_format: str | None) -> bool:
    if data_format is None:
        import keras

        data_format = keras.config.image_data_format()
    check_choice("data_format", data_format, ("channels_last", "channels_first", None))
    return data_format == "channels_first"


def _to_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    """Reads a ``(image, label)`` dataset into uint8 arrays, a few thousand at a time."""
    batches = [(x.numpy(), y.numpy()) for x, y in ds.batch(4096)]
    images = np.concatenate([x for x, _ in batches]).astype(np.uint8)
    return images, np.concatenate([y for _, y in batches]).astype(np.uint8)


def _split(source: _Source, validation_split: float, subset: int | None, seed: int):
    """Returns shuffled training and validation positions (into the validation folder when
    there is one)."""
    order = np.random.default_rng(seed).permutation(source.info.train_examples)
    if source.validation is not None:
        n_train, _ = split_sizes(len(order), 0, subset)
        return order[:n_train], np.arange(len(source.validation.files))
    n_train, n_validation = split_sizes(len(order), validation_split, subset)
    return order[n_validation:n_validation + n_train], order[:n_validation]


def _check_shard(shard, source, batch_size, validation_batch_size):
    """``(index, count)`` of a valid ``shard`` of ``source``, else a `ValueError`."""
    index, count = shard
    check_int("shard count", count)
    if not 0 <= index < count:
        fail("shard", shard, f"(index, count) with 0 <= index < count")
    if source.streamed:
        fail("shard", shard, f"None for {source.info.name}: a tensorflow-datasets stream is "
                             "read in its own order; several processes need the sample or an "
                             "image folder")
    for name, size in (("batch_size", batch_size), ("validation_batch_size",
                                                     validation_batch_size)):
        if size % count:
            fail(name, size, f"a multiple of the {count} processes that share each batch")
    return index, count


def _whole_batches(train_idx, val_idx, batch_size, validation_batch_size):
    """The training and validation indices cut to whole batches (``drop_remainder``)."""
    train_idx = train_idx[: len(train_idx) - len(train_idx) % batch_size]
    val_idx = val_idx[: len(val_idx) - len(val_idx) % validation_batch_size]
    if not len(train_idx):
        raise ValueError(f"batch_size={batch_size} is larger than the training examples "
                         "left; with drop_remainder no batch would remain.")
    return train_idx, val_idx
