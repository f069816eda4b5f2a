"""``tf.data`` pipelines from a source of examples: decode, transform, batch, normalise, prefetch.

A source is a ``tf.data.Dataset`` of ``(image, label)`` where the image is a uint8 array, the
bytes of a JPEG or PNG file, or a file's path. `pipeline` shuffles it (training), decodes the
images in parallel, applies the named transforms (`keras_resnets.data.transforms`) with one
stateless seed per image and per batch, normalises each batch and prefetches. Parallel decoding
keeps the order, so a pipeline built from the same seeds yields the same batches.

Example:
>>> import numpy as np, tensorflow as tf
>>> source = tf.data.Dataset.from_tensor_slices((np.zeros((10, 4, 4, 1), "uint8"), np.arange(10)))
>>> ds = pipeline(source, size=10, transforms="none", mean=(0.5,), std=(0.25,), batch_size=4,
...               image_shape=(4, 4, 1), channels_first=False)
>>> [tuple(x.shape) for x, _ in ds], float(next(iter(ds))[0][0, 0, 0, 0])
([(4, 4, 4, 1), (4, 4, 4, 1), (2, 4, 4, 1)], -2.0)
"""

from __future__ import annotations

import numpy as np

from keras_resnets.data.transforms import batch_transform, example_transform

SHUFFLE_BUFFER_BYTES = 2**28
"""How much of a stream the training shuffle holds at most (a folder's file list and the
in-memory sample are shuffled whole)."""


def pipeline(source, *, size, transforms, mean, std, batch_size, image_shape, channels_first,
             decode=None, training=False, seed=None, reshuffle=True, shuffle_buffer=None,
             shard=None):
    """Batches of float32 images and int32 labels from ``source``.

    Args:
        source: A ``tf.data.Dataset`` of ``(image, label)`` in a fixed order.
        size: Its number of examples.
        transforms: The transforms' name.
        mean, std: The per-channel normalisation.
        batch_size: Examples per batch; the last batch may be smaller.
        image_shape: ``(height, width, channels)`` the transforms make.
        channels_first: Transpose the batches to ``(n, channels, height, width)``.
        decode: ``f(image) -> uint8 (height, width, channels)``, or None for uint8 arrays.
        training: Shuffle, and apply the transforms' training variant.
        seed: Seeds the order and the random transforms.
        reshuffle: A new order and new random transforms on every pass over the pipeline.
        shuffle_buffer: Examples the shuffle holds; None for all of them.
        shard: ``(index, count)``: ``source`` is this process' share of an order already
            shuffled (`shard_order`), every ``count``-th example from ``index``; it is not
            shuffled again and its images get the random transforms the same positions get
            in one process.
    """
    import tensorflow as tf

    ds = source
    if training and shard is None:
        ds = ds.shuffle(shuffle_buffer or size, seed=seed, reshuffle_each_iteration=reshuffle)
    per_image = example_transform(transforms, training)
    if per_image is not None or decode is not None:
        seeds = _seeds(seed, reshuffle) if training and per_image is not None else None
        if seeds is not None and shard is not None:
            seeds = seeds.shard(shard[1], shard[0])
        ds = _map_images(ds, decode, per_image, image_shape, seeds)
    ds = ds.batch(batch_size)
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    per_batch = batch_transform(transforms, training)

    def prepare(x, y, batch_seed=None):
        x = (tf.cast(x, tf.float32) / 255.0 - mean) / std
        if per_batch is not None:
            x = per_batch(x, batch_seed)
        if channels_first:
            x = tf.transpose(x, [0, 3, 1, 2])
        return x, tf.cast(y, tf.int32)

    if per_batch is not None:
        ds = tf.data.Dataset.zip(ds, _seeds(seed, reshuffle))
        ds = ds.map(lambda xy, s: prepare(*xy, s), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _options():
    """The pipeline's ``tf.data`` options: no autotuning model. Its thread sleeps between
    tunings for 10 ms, then twice as long each time, up to 10 s; an iterator's deletion (at the
    end of every ``fit``, ``evaluate`` or ``predict`` pass) can wait for its next wake-up, which
    added up to 10 s to an epoch of a few seconds. Without it, ``AUTOTUNE`` parallelism stays
    at its starting value, one call per core (at most 16)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def shard_order(size, *, seed, shuffle_buffer=None):
    """The positions ``0..size-1`` in the order `pipeline` shuffles ``size`` examples with
    ``seed`` (``reshuffle=False``): tf.data's shuffle depends on the seeds and the buffer, not
    on the examples, so each process can take its share of one process' order.

    Example:
    >>> import tensorflow as tf
    >>> order = shard_order(8, seed=3)
    >>> ds = tf.data.Dataset.range(10, 18).shuffle(8, seed=3, reshuffle_each_iteration=False)
    >>> [int(x) - 10 for x in ds] == order.tolist()
    True
    """
    import tensorflow as tf

    ds = tf.data.Dataset.range(size).shuffle(shuffle_buffer or size, seed=seed,
                                             reshuffle_each_iteration=False)
    return np.fromiter(ds.as_numpy_iterator(), np.int64, count=size)


def _map_images(ds, decode, per_image, image_shape, seeds):
    """Decodes (when ``decode``) and transforms (when ``per_image``, with one of ``seeds``
    each when they are given) each image in parallel, in order, to ``image_shape``."""
    import tensorflow as tf

    def one(image, label, image_seed=None):
        if decode is not None:
            image = decode(image)
        if per_image is not None:
            image = per_image(image, image_seed)
        return tf.ensure_shape(image, image_shape), label

    if seeds is not None:
        ds = tf.data.Dataset.zip(ds, seeds)
        return ds.map(lambda xy, s: one(*xy, s), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(one, num_parallel_calls=tf.data.AUTOTUNE)


def _seeds(seed, reshuffle):
    """An endless stream of stateless seeds (pairs of int64) drawn from ``seed``."""
    import tensorflow as tf

    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle).batch(2)


def image_decoder(channels: int, from_path: bool):
    """``f(x) -> uint8 (height, width, channels)`` for JPEG or PNG bytes, or a file's path."""
    import tensorflow as tf

    def decode(x):
        contents = tf.io.read_file(x) if from_path else x
        return tf.io.decode_image(contents, channels=channels, expand_animations=False)

    return decode


def selected(source, chosen: np.ndarray):
    """The examples of ``source`` at the positions ``i`` where ``chosen[i]``, in order (with
    their number known, so that Keras counts the steps)."""
    import tensorflow as tf

    count = int(chosen.sum())
    chosen = tf.constant(chosen, tf.bool)
    ds = source.enumerate().filter(lambda i, _: chosen[i]).map(lambda _, example: example)
    return ds.apply(tf.data.experimental.assert_cardinality(count))


def shuffle_buffer(image_shape, size: int) -> int:
    """Examples a streaming shuffle holds: all ``size`` when they fit in `SHUFFLE_BUFFER_BYTES`
    as raw pixels (images of varying size count as 128 KiB, a large JPEG)."""
    height, width, channels = image_shape
    per_image = height * width * channels if height and width else 2**17
    return int(max(1, min(size, SHUFFLE_BUFFER_BYTES // per_image)))
