"""The named datasets: their facts (`DATASETS`), the embedded MNIST sample, and how
tensorflow-datasets provides the others, as streams of encoded images.

The embedded ``"mnist_sample"`` holds the 10,000 real digits of the MNIST test set
(Y. LeCun, C. Cortes, C. J. C. Burges), CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/.

A tensorflow-datasets source is used only if it is prepared in ``data_dir`` or its download
host answers within seconds, so nothing blocks offline. ``"imagenet2012"`` cannot be
downloaded: its archives go in ``<data_dir>/downloads/manual`` (see `DataUnavailableError`).

Example:
>>> DATASETS["cifar10"].image_shape, DATASETS["imagenet2012"].image_shape
((32, 32, 3), (224, 224, 3))
>>> images, labels = sample()
>>> images.shape, images.dtype.name
((10000, 28, 28, 1), 'uint8')
"""

from __future__ import annotations

import functools
import queue
import socket
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_resnets.data.transforms import IMAGENET_MEAN, IMAGENET_STD, output_shape
from keras_resnets.design.validation import check_choice

SAMPLE_NAME = "mnist_sample"
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "_data" / "mnist_sample.npz"
SAMPLE_SOURCE = "embedded MNIST sample (10,000 real digits from the MNIST test set, offline)"
REACH_TIMEOUT = 2.0


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset.

    Attributes:
        name: Key in ``DATASETS``, or an image folder's path.
        stored_shape: ``(height, width, channels)`` of the stored images; height and width are
            None when they differ from image to image.
        classes: Number of classes; labels are ``0 .. classes - 1``.
        mean: Per-channel mean of the training pixels scaled to [0, 1].
        std: Per-channel standard deviation of the training pixels scaled to [0, 1].
        tfds_name: tensorflow-datasets name, or None.
        description: One line for humans.
        train_examples: Images in the training split (before a validation split).
        transforms: The transforms' name (see `keras_resnets.data.transforms`): the dataset's
            default in ``DATASETS``, those used in `load_data`'s and `describe`'s answers.
        class_names: The classes' names, when known.
    """

    name: str
    stored_shape: tuple
    classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tfds_name: str | None
    description: str
    train_examples: int
    transforms: str = "none"
    class_names: tuple[str, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of the images the pipelines yield (channels last)."""
        return output_shape(self.transforms, self.stored_shape)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(SAMPLE_NAME, (28, 28, 1), 10, (0.1325,), (0.3105,), None,
                    "10,000 real MNIST test digits embedded in the package (offline)", 10_000),
        DatasetInfo("mnist", (28, 28, 1), 10, (0.1307,), (0.3081,), "mnist",
                    "MNIST handwritten digits, 60,000 train / 10,000 test", 60_000),
        DatasetInfo("fashion_mnist", (28, 28, 1), 10, (0.2860,), (0.3530,), "fashion_mnist",
                    "Fashion-MNIST clothing images, 60,000 train / 10,000 test", 60_000),
        DatasetInfo("kmnist", (28, 28, 1), 10, (0.1918,), (0.3483,), "kmnist",
                    "Kuzushiji-MNIST cursive Japanese characters, 60,000 train / 10,000 test",
                    60_000),
        DatasetInfo("cifar10", (32, 32, 3), 10, (0.4914, 0.4822, 0.4465),
                    (0.2470, 0.2435, 0.2616), "cifar10",
                    "CIFAR-10 natural images, 50,000 train / 10,000 test", 50_000),
        DatasetInfo("cifar100", (32, 32, 3), 100, (0.5071, 0.4865, 0.4409),
                    (0.2673, 0.2564, 0.2762), "cifar100",
                    "CIFAR-100 natural images, 50,000 train / 10,000 test", 50_000),
        DatasetInfo("svhn_cropped", (32, 32, 3), 10, (0.4377, 0.4438, 0.4728),
                    (0.1980, 0.2010, 0.1970), "svhn_cropped",
                    "SVHN cropped house-number digits, 73,257 train / 26,032 test", 73_257),
        DatasetInfo("imagenette", (None, None, 3), 10, IMAGENET_MEAN, IMAGENET_STD, "imagenette",
                    "Imagenette: 10 easy ImageNet classes, full size, 9,469 train / 3,925 "
                    "validation", 9_469, "imagenet"),
        DatasetInfo("imagenet2012", (None, None, 3), 1000, IMAGENET_MEAN, IMAGENET_STD,
                    "imagenet2012", "ImageNet ILSVRC 2012, 1,281,167 train / 50,000 validation; "
                    "archives from image-net.org in <data_dir>/downloads/manual", 1_281_167,
                    "imagenet"),
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
    "imagenette": ("https://s3.amazonaws.com/fast-ai-imageclas/",),
}
_MANUAL = {"imagenet2012": ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")}
"""Datasets that tensorflow-datasets prepares from archives put in its manual directory."""


class DataUnavailableError(ValueError):
    """A dataset can be neither read locally nor downloaded.

    Attributes:
        name: The dataset asked for.
        reason: Why it is unavailable.
    """

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        if name in _MANUAL:
            how = (f"put {' and '.join(_MANUAL[name])} (from https://image-net.org) in "
                   f"DIR/downloads/manual and pass data_dir='DIR' (the first load prepares it)")
        else:
            how = (f"prepare it on a machine with internet access (python -c \"import "
                   f"tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='DIR')"
                   f".download_and_prepare()\"), copy DIR here and pass data_dir='DIR'")
        super().__init__(f"Dataset {name!r} is unavailable: {reason}. To use it, {how}; or use "
                         f"name={SAMPLE_NAME!r} (embedded, offline).")


def dataset_info(name: str) -> DatasetInfo:
    """The `DatasetInfo` of a name in `DATASETS`, else a `ValueError` listing the names."""
    return DATASETS[check_choice("dataset", name, tuple(sorted(DATASETS)))]


@functools.lru_cache(maxsize=1)
def sample() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits and labels, uint8, read-only."""
    with np.load(SAMPLE_PATH) as npz:
        images, labels = npz["images"], npz["labels"]
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def prepared_count(info: DatasetInfo, data_dir) -> int:
    """Images in the training split: as prepared in ``data_dir``, else as published."""
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(info.tfds_name, data_dir=_dir(data_dir))
        if builder.is_prepared():
            return builder.info.splits["train"].num_examples
    except Exception:  # tensorflow-datasets missing or its files unreadable: the published count
        pass
    return info.train_examples


def check_tfds(info: DatasetInfo, data_dir, timeout: float):
    """Returns a tensorflow-datasets builder and whether it is prepared, or raises quickly."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataUnavailableError(
            info.name, "tensorflow-datasets is not installed (pip install tensorflow-datasets)"
        ) from err
    builder = tfds.builder(info.tfds_name, data_dir=_dir(data_dir))
    prepared = builder.data_path.exists() and builder.is_prepared()
    if prepared:
        return builder, True
    if info.tfds_name in _MANUAL:
        manual = Path(builder.data_dir).parent.parent / "downloads" / "manual"
        missing = [f for f in _MANUAL[info.tfds_name] if not (manual / f).exists()]
        if missing:
            raise DataUnavailableError(info.name, f"it is not prepared in {builder.data_dir} and "
                                                  f"{', '.join(missing)} are not in {manual}")
        return builder, False
    urls = (_GCS_MIRROR, *_DOWNLOAD_URLS[info.tfds_name])
    if not _reachable(urls, timeout):
        hosts = ", ".join(sorted({urllib.parse.urlsplit(url).hostname for url in urls}))
        raise DataUnavailableError(
            info.name,
            f"it is not prepared in {builder.data_dir} and no download host ({hosts}) "
            f"could be reached within {timeout:g} s",
        )
    return builder, False


def tfds_split(info: DatasetInfo, data_dir, split: str, decode: bool = False):
    """Returns ``(dataset, source)``: the ``split`` of a tensorflow-datasets dataset as a
    stream of ``(image, label)`` in its stored order, images encoded (PNG or JPEG bytes)
    unless ``decode``, never cached in memory; downloaded and prepared if need be."""
    builder, prepared = check_tfds(info, data_dir, REACH_TIMEOUT)
    import tensorflow_datasets as tfds

    decoders = None if decode else {"image": tfds.decode.SkipDecoding()}
    try:
        ds = tfds.load(info.tfds_name, split=split, as_supervised=True, data_dir=_dir(data_dir),
                       download=not prepared, decoders=decoders,
                       read_config=tfds.ReadConfig(try_autocache=False))
    except Exception as err:  # tfds raises many types; report them all the same way
        raise DataUnavailableError(
            info.name, f"tensorflow-datasets failed with {type(err).__name__}: {err}"
        ) from err
    return ds, f"tensorflow-datasets {info.tfds_name} from {builder.data_dir}"


def _dir(data_dir):
    return None if data_dir is None else str(data_dir)


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
