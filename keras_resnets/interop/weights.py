"""ImageNet weights: torchvision's published files for its ResNet family, and ``weights=``.

`IMAGENET_WEIGHTS` is the one table of those files (torchvision's ``IMAGENET1K_V1`` weight
enums). A file is fetched with `keras.utils.get_file` into the Keras cache
(``~/.keras/models``) and checked as ``torch.hub`` checks it: the hex digits after the last
``-`` of its name are the start of its SHA-256.

Example:
>>> IMAGENET_WEIGHTS["resnet50"].url
'https://download.pytorch.org/models/resnet50-0676ba61.pth'
>>> IMAGENET_WEIGHTS["resnet50"].top1
76.13
"""

import hashlib
import os
import socket
from typing import NamedTuple

import keras

from keras_resnets.design.validation import fail
from keras_resnets.interop.torchvision import from_torchvision, read_state_dict, without_classifier

_BASE_URL = "https://download.pytorch.org/models/"


class ImagenetWeights(NamedTuple):
    """One published file: its name, ImageNet top-1 (%) and torchvision's resize size."""

    file_name: str
    top1: float
    resize_size: int = 256

    @property
    def url(self):
        return _BASE_URL + self.file_name

    @property
    def sha256_prefix(self):
        return self.file_name.rsplit("-", 1)[1].split(".")[0]


IMAGENET_WEIGHTS = {
    "resnet18": ImagenetWeights("resnet18-f37072fd.pth", 69.758),
    "resnet34": ImagenetWeights("resnet34-b627a593.pth", 73.314),
    "resnet50": ImagenetWeights("resnet50-0676ba61.pth", 76.13),
    "resnet101": ImagenetWeights("resnet101-63fe2227.pth", 77.374),
    "resnet152": ImagenetWeights("resnet152-394f9c45.pth", 78.312),
    "resnext50_32x4d": ImagenetWeights("resnext50_32x4d-7cdf4587.pth", 77.618),
    "resnext101_32x8d": ImagenetWeights("resnext101_32x8d-8ba56ff5.pth", 79.312),
    "resnext101_64x4d": ImagenetWeights("resnext101_64x4d-173b62eb.pth", 83.246, 232),
    "wide_resnet50_2": ImagenetWeights("wide_resnet50_2-95faca4d.pth", 78.468),
    "wide_resnet101_2": ImagenetWeights("wide_resnet101_2-32ee1156.pth", 78.848),
}
IMAGENET_CLASSES = 1000


def imagenet_file(name, cache_dir=None, timeout=10.0):
    """The local path of torchvision's ImageNet file for model ``name``, fetched if needed
    into ``cache_dir/models`` (``None``: the Keras cache, ``$KERAS_HOME`` or ``~/.keras``).

    Raises:
        ValueError: ``name`` has no published file.
        ConnectionError: the file is not cached and cannot be fetched (within ``timeout``
            seconds when offline); the message names the URL and says how to pass the file.
        OSError: the fetched file's SHA-256 does not start with the published prefix.
    """
    if name not in IMAGENET_WEIGHTS:
        raise ValueError(f"weights='imagenet' is not published for {name!r}; models with "
                         f"ImageNet weights: {sorted(IMAGENET_WEIGHTS)}.")
    entry = IMAGENET_WEIGHTS[name]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # a refused or silent network fails fast, never hangs
    try:
        path = keras.utils.get_file(entry.file_name, entry.url, cache_dir=cache_dir,
                                    cache_subdir="models")
    except Exception as error:  # get_file wraps every URL error in a bare Exception
        raise ConnectionError(
            f"cannot fetch {entry.url} ({error}). Download {entry.file_name} where you have "
            f"internet and pass its path: weights='/path/to/{entry.file_name}'.") from error
    finally:
        socket.setdefaulttimeout(previous)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if not digest.hexdigest().startswith(entry.sha256_prefix):
        os.remove(path)
        raise OSError(f"{path}: SHA-256 {digest.hexdigest()} does not start with "
                      f"{entry.sha256_prefix}, as published; the file was removed.")
    return path


def check_weights(weights, architecture):
    """Raises a `ValueError` for a ``weights`` argument that cannot go with ``architecture``
    (as keras.applications: a published classifier needs 1000 classes and average pooling)."""
    if weights is None:
        return
    is_path = isinstance(weights, (str, os.PathLike)) and weights != "imagenet"
    if not (weights == "imagenet" or is_path):
        fail("weights", weights, "None, 'imagenet' or the path of a torchvision state-dict file "
                                 "(.pth, .pt or .npz)")
    if is_path and not os.path.exists(weights):
        raise ValueError(f"weights={weights!r}: no such file.")
    if architecture.include_top and architecture.classes != IMAGENET_CLASSES:
        raise ValueError(
            f"classes={architecture.classes} is not allowed with weights={weights!r} and "
            f"include_top=True: the classifier has {IMAGENET_CLASSES} classes. Pass "
            "include_top=False (and add your own classifier) or classes=1000.")
    if architecture.include_top and architecture.pooling != "avg":
        fail("pooling", architecture.pooling, f"'avg' with weights={weights!r} and include_top=True: "
                                              "the classifier was trained on average pooling")


def load_weights(model, name, weights, include_top=True):
    """Loads ``weights`` into ``model``, a torchvision-family network built by `build_resnet`:
    what ``keras_resnets.resnet50(weights=...)`` and the other torchvision-family functions do
    after `check_weights`.

    Args:
        model: the built model.
        name: torchvision's name of the model (a key of `IMAGENET_WEIGHTS`).
        weights: ``"imagenet"`` (torchvision's published file, fetched and checked by
            `imagenet_file`) or the path of a torchvision state-dict file (``.pth``/``.pt`` as
            ``torch.save`` writes it, or ``.npz``).
        include_top: whether ``model`` has the classifier; without it the file's classifier
            is skipped, so ``classes`` and ``pooling`` are free and ``input_shape`` may be any
            size with 3 channels.

    Raises:
        ValueError: a file that does not fit the model (the message names the key).
    """
    path = imagenet_file(name) if weights == "imagenet" else weights
    state = read_state_dict(path)
    if not include_top:
        state = without_classifier(state)
    from_torchvision(state, model)
    return model
