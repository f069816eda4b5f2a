"""ImageNet inputs and outputs as torchvision's ResNet weights expect them.

`preprocess_input` is torchvision's ``ImageClassification`` transform of its ``IMAGENET1K_V1``
weights: resize the shorter side to 256 (bilinear, antialiased), crop the central 224x224,
scale to [0, 1], subtract the mean and divide by the standard deviation of ImageNet's RGB
channels. `decode_predictions` names the top classes with torchvision's 1000 class names.

Example:
>>> import numpy as np
>>> image = np.full((300, 400, 3), 255, "uint8")  # a white RGB image
>>> x = preprocess_input(image)
>>> x.shape, [round(float(v), 3) for v in x[0, 0]]
((224, 224, 3), [2.249, 2.429, 2.64])
>>> decode_predictions(np.eye(1000)[[1]], top=1)
[[(1, 'goldfish', 1.0)]]
"""

import functools
import os

import keras
import numpy as np

from keras_resnets.design.validation import fail

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def preprocess_input(images, *, resize_size=256, crop_size=224, data_format=None):
    """Images as torchvision's ResNets take them (see the module).

    Args:
        images: one RGB image ``(height, width, 3)`` or a batch ``(n, height, width, 3)`` of
            values in [0, 255] (uint8 or float), channels last as images are stored.
        resize_size: the size of the shorter side after resizing; ``None`` keeps the size
            (232 for ``resnext101_64x4d``'s weights, see `IMAGENET_WEIGHTS`).
        crop_size: the side of the central square crop; ``None`` keeps the whole image.
        data_format: of the result; ``None`` is Keras' setting.

    Returns:
        A float32 NumPy array, ``(…, crop_size, crop_size, 3)`` or channels first.
    """
    x = np.asarray(images, dtype="float32")
    if x.ndim not in (3, 4) or x.shape[-1] != 3:
        raise ValueError(f"images of shape {x.shape} are not allowed: (height, width, 3) or "
                         "(n, height, width, 3), RGB channels last.")
    if resize_size is not None:
        height, width = x.shape[-3:-1]  # torchvision truncates the longer side
        if height <= width:
            size = (resize_size, int(resize_size * width / height))
        else:
            size = (int(resize_size * height / width), resize_size)
        x = keras.ops.convert_to_numpy(keras.ops.image.resize(
            x, size, interpolation="bilinear", antialias=True, data_format="channels_last"))
    if crop_size is not None:
        height, width = x.shape[-3:-1]
        if crop_size > min(height, width):
            fail("crop_size", crop_size, f"at most the shorter side of {height}x{width} images")
        top, left = round((height - crop_size) / 2), round((width - crop_size) / 2)
        x = x[..., top:top + crop_size, left:left + crop_size, :]
    x = (x / 255.0 - np.array(MEAN, "float32")) / np.array(STD, "float32")
    if (data_format or keras.config.image_data_format()) == "channels_first":
        x = np.moveaxis(x, -1, -3)
    return np.ascontiguousarray(x, dtype="float32")


@functools.cache
def class_names():
    """torchvision's 1000 ImageNet class names, in the order of the classifier's outputs."""
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_data", "imagenet_classes.txt")
    with open(path, encoding="utf-8") as f:
        return tuple(f.read().splitlines())


def decode_predictions(preds, top=5):
    """The ``top`` classes of each row of ``preds`` (logits or probabilities, ``(n, 1000)``),
    as lists of ``(class index, class name, score)``, best first."""
    preds = np.asarray(keras.ops.convert_to_numpy(preds))
    names = class_names()
    if preds.ndim != 2 or preds.shape[1] != len(names):
        raise ValueError(f"preds of shape {preds.shape} are not allowed: (n, {len(names)}).")
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [[(int(i), names[i], float(row[i])) for i in best] for row, best in zip(preds, order)]
