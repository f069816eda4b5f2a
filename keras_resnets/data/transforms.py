"""The standard recipes' input transforms, by name: what a run's config records.

- ``"none"``: the images as they are, scaled to [0, 1] and normalised by the dataset's mean
  and standard deviation.
- ``"cifar"``: He et al.'s CIFAR recipe. Training images are normalised as ``"none"``, then
  padded by 4 pixels of zeros (the mean, after normalisation), cropped back at random and
  flipped left-right half of the time; evaluation images as ``"none"``. ``augment=True`` means
  these.
- ``"shift"``: small translations, for digits (where a flip would change the class).
  Training images are moved by up to `SHIFT` pixels up or down and left or right (each
  offset drawn uniformly, the borders filled with zero pixels: black, the digits'
  background), then normalised as ``"none"``; evaluation images as ``"none"``.
- ``"imagenet"``: torchvision's ImageNet recipe, ImageNet's mean and standard deviation.
  Training: a random crop of 8% to 100% of the area and an aspect ratio in [3/4, 4/3],
  resized to 224x224, flipped half of the time; evaluation: the shorter side resized to 256,
  the central 224x224 (`keras_resnets.interop.imagenet.preprocess_input`).

Random choices come from stateless seeds handed to each image (``"shift"``, ``"imagenet"``)
or batch (``"cifar"``), so a pipeline built from the same seed repeats them exactly.

Example:
>>> output_shape("imagenet", (None, None, 3)), output_shape("cifar", (32, 32, 3))
((224, 224, 3), (32, 32, 3))
>>> output_shape("none", (None, None, 3), "a.jpg is 64x48, b.jpg 32x32")
Traceback (most recent call last):
...
ValueError: transforms='none' is not allowed: one that makes images of one size ('imagenet'): the images differ in size (a.jpg is 64x48, b.jpg 32x32).
"""

from __future__ import annotations

from dataclasses import dataclass

from keras_resnets.design.validation import check_choice, fail


@dataclass(frozen=True)
class Transforms:
    """Static facts of a named recipe of input transforms.

    Attributes:
        name: Key in `TRANSFORMS`.
        size: Side of the square images it makes, or None to keep the images' size.
        normalization: ``"dataset"`` (the dataset's mean and std) or ``"imagenet"``.
        description: One line for humans.
    """

    name: str
    size: int | None
    normalization: str
    description: str


TRANSFORMS: dict[str, Transforms] = {
    t.name: t
    for t in (
        Transforms("none", None, "dataset", "none: the images as they are, normalised"),
        Transforms("cifar", None, "dataset",
                   "CIFAR: pad 4, random crop back, random flip (training); normalised"),
        Transforms("shift", None, "dataset",
                   "shift: move by up to 2 pixels each way, zero fill (training); normalised"),
        Transforms("imagenet", 224, "imagenet",
                   "ImageNet: random-resized crop 224 and flip (training), resize 256 and centre "
                   "crop 224 (evaluation); ImageNet mean and std"),
    )
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet's per-channel pixel statistics in [0, 1], as torchvision normalises with them."""

SHIFT = 2
"""The largest translation of ``"shift"``, in pixels along each axis."""
_CROP_PADDING = 4
_EVAL_RESIZE = 256
_AREA_RANGE = (0.08, 1.0)
_ASPECT_RANGE = (3 / 4, 4 / 3)


def check_transforms(name: str) -> Transforms:
    """The `Transforms` of ``name``, else a `ValueError` listing the names."""
    return TRANSFORMS[check_choice("transforms", name, tuple(TRANSFORMS))]


def output_shape(name: str, shape, sizes: str | None = None) -> tuple[int, int, int]:
    """The ``(height, width, channels)`` that transforms ``name`` make of images stored as
    ``shape`` (height and width None where they differ from image to image; ``sizes`` says
    how, for the message)."""
    size = check_transforms(name).size
    if size is not None:
        return size, size, shape[2]
    if None in shape[:2]:
        how = f" ({sizes})" if sizes else ""
        fail("transforms", name, f"one that makes images of one size ('imagenet'): the images "
                                 f"differ in size{how}")
    return tuple(shape)


def mean_std(name: str, mean, std):
    """The mean and std that transforms ``name`` normalise with: the dataset's (``mean``,
    ``std``) or ImageNet's (their channel average for one-channel images)."""
    if check_transforms(name).normalization == "dataset":
        return tuple(mean), tuple(std)
    return imagenet_stats(len(mean))


def imagenet_stats(channels: int):
    """ImageNet's mean and std for images of ``channels`` channels (1: their averages)."""
    if channels == 1:
        return (round(sum(IMAGENET_MEAN) / 3, 4),), (round(sum(IMAGENET_STD) / 3, 4),)
    return IMAGENET_MEAN, IMAGENET_STD


def example_transform(name: str, training: bool):
    """``f(image, seed)`` for one uint8 image ``(height, width, channels)`` (``seed``: a stateless
    seed, two int64), or None when transforms ``name`` leave single images alone."""
    name = check_transforms(name).name
    if name == "shift":
        return _shift if training else None
    if name != "imagenet":
        return None
    return _random_resized_crop_and_flip if training else _resize_and_centre_crop


def batch_transform(name: str, training: bool):
    """``f(images, seed)`` for a normalised float32 batch ``(n, height, width, channels)``, or
    None when transforms ``name`` leave batches alone."""
    return _pad_crop_and_flip if training and check_transforms(name).name == "cifar" else None


def _shift(image, seed):
    """The image moved by up to `SHIFT` pixels along each axis, zeros moved in (uint8 kept).
    Padding the stored pixels, not the normalised ones, fills with the background."""
    import tensorflow as tf

    padded = tf.pad(image, [[SHIFT, SHIFT], [SHIFT, SHIFT], [0, 0]])
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed)


def _random_resized_crop_and_flip(image, seed):
    """A random crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized to
    224x224, flipped half of the time (float32)."""
    import tensorflow as tf

    crop_seed, flip_seed = tf.unstack(tf.random.split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), crop_seed,
        min_object_covered=0.0, aspect_ratio_range=_ASPECT_RANGE, area_range=_AREA_RANGE,
        max_attempts=10, use_image_if_no_bounding_boxes=True)
    size = TRANSFORMS["imagenet"].size
    crop = tf.image.resize(tf.slice(image, begin, crop_size), (size, size), antialias=True)
    return tf.image.stateless_random_flip_left_right(crop, flip_seed)


def _resize_and_centre_crop(image, seed=None):
    """The shorter side resized to 256 (the longer one truncated, as torchvision does), then
    the central 224x224 (float32)."""
    import tensorflow as tf

    size = TRANSFORMS["imagenet"].size
    height, width = tf.unstack(tf.cast(tf.shape(image)[:2], tf.float64))
    scale = _EVAL_RESIZE / tf.minimum(height, width)
    new = tf.cast(tf.stack([height * scale, width * scale]) + 1e-6, tf.int32)
    resized = tf.image.resize(image, new, antialias=True)
    top, left = tf.unstack(tf.cast(tf.round((new - size) / 2), tf.int32))
    return resized[top:top + size, left:left + size]


def _pad_crop_and_flip(images, seed):
    """Zero-pads a batch by 4 pixels, crops each image back at random and flips half."""
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
