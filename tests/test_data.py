"""Tests of keras_resnets.data with named datasets on the current Keras backend (image folders:
test_data_folders.py); nothing here touches the network."""

from __future__ import annotations

import ipaddress
import math
import socket
import sys
import time
from dataclasses import replace

import keras
import numpy as np
import pytest

from keras_resnets.data import catalog
from keras_resnets.data import datasets as kd
from keras_resnets.data import DataSpec
from keras_resnets.data.datasets import (
    DATASETS,
    DataUnavailableError,
    describe,
    is_available,
    load_arrays,
    load_data,
)


def _is_loopback(host) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuses every connection and name lookup except loopback ones."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            raise OSError(f"network disabled in tests: {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            raise socket.gaierror(f"network disabled in tests: {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _collect(ds) -> tuple[np.ndarray, np.ndarray]:
    batches = [(np.asarray(x), np.asarray(y)) for x, y in ds]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


# Embedded sample


def test_sample_arrays_are_real_mnist_digits():
    (x, y), test, source = load_arrays()
    assert x.shape == (10_000, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (10_000,) and y.dtype == np.uint8
    assert test is None and "embedded MNIST sample" in source
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() > 850 and counts.max() < 1200
    assert 0.12 < x.mean() / 255 < 0.14
    # Real digits: the mean "1" has far less ink than the mean "0".
    assert x[y == 1].mean() < 0.6 * x[y == 0].mean()


def test_sample_records_source_and_licence():
    with np.load(catalog.SAMPLE_PATH) as npz:
        assert "LeCun" in str(npz["source"]) and "CC BY-SA 3.0" in str(npz["licence"])


def test_dataset_table_is_consistent():
    assert {"mnist_sample", "mnist", "fashion_mnist", "kmnist", "cifar10", "cifar100",
            "svhn_cropped"} <= set(DATASETS)
    for name, info in DATASETS.items():
        assert info.name == name
        assert len(info.mean) == len(info.std) == info.image_shape[2]
        assert all(0 < s < 1 for s in info.std) and all(0 < m < 1 for m in info.mean)


def test_normalisation_gives_zero_mean_unit_std():
    data = load_data(batch_size=2500, validation_split=0, data_format="channels_last")
    x, y = _collect(data.train)
    assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (10_000, 28, 28, 1)
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01
    assert data.validation is None and data.num_validation == 0 and data.steps_per_epoch == 4


def test_validation_split_sizes_disjointness_and_seed():
    data = load_data(validation_split=0.2, seed=3, data_format="channels_last")
    assert (data.num_train, data.num_validation) == (8000, 2000)
    assert data.steps_per_epoch == math.ceil(8000 / 64)
    x_train, _ = _collect(data.train)
    x_val, y_val = _collect(data.validation)
    assert len(x_train) == 8000 and len(x_val) == 2000
    assert not {im.tobytes() for im in x_train} & {im.tobytes() for im in x_val}
    _, y_same = _collect(load_data(validation_split=0.2, seed=3).validation)
    _, y_other = _collect(load_data(validation_split=0.2, seed=4).validation)
    np.testing.assert_array_equal(y_val, y_same)
    assert not np.array_equal(y_val, y_other)


def test_subset_and_shuffling():
    data = load_data(batch_size=32, subset=100, seed=1)
    assert (data.num_train, data.steps_per_epoch) == (100, 4)
    first, second = _collect(data.train)[1], _collect(data.train)[1]
    assert len(first) == 100
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    again = _collect(load_data(batch_size=32, subset=100, seed=1).train)[1]
    np.testing.assert_array_equal(first, again)


def test_channels_first_transposes_inside_the_pipeline():
    last = load_data(batch_size=16, data_format="channels_last")
    first = load_data(batch_size=16, data_format="channels_first")
    x_last, _ = next(iter(last.validation))
    x_first, _ = next(iter(first.validation))
    assert x_first.shape == (16, 1, 28, 28)
    np.testing.assert_array_equal(np.transpose(x_last, (0, 3, 1, 2)), x_first)


def test_data_format_defaults_to_keras_config():
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        data = load_data(batch_size=8)
    finally:
        keras.config.set_image_data_format(previous)
    assert data.train.element_spec[0].shape.as_list() == [None, 1, 28, 28]


def test_augmentation_pads_crops_and_flips():
    kwargs = dict(batch_size=64, seed=5, data_format="channels_last")
    plain = next(iter(load_data(**kwargs).train))[0].numpy()
    augmented_data = load_data(augment=True, **kwargs)
    augmented = next(iter(augmented_data.train))[0].numpy()
    assert augmented.shape == plain.shape
    assert not np.allclose(augmented, plain)
    # Every augmented image is a (possibly mirrored) window of the zero-padded original.
    padded = np.pad(plain, [(0, 0), (4, 4), (4, 4), (0, 0)])
    flips = 0
    for original, image in zip(padded, augmented):
        windows = {(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (0, 1)
                   if np.array_equal(image[:, ::-1] if flip else image,
                                     original[dy:dy + 28, dx:dx + 28])}
        assert windows, "augmented image is no crop of the padded original"
        flips += min(flip for *_, flip in windows)
    assert 10 < flips < 54
    # A new epoch draws new crops.
    assert not np.allclose(next(iter(augmented_data.train))[0].numpy(), augmented)


def test_shift_moves_digits_by_at_most_two_pixels_in_training_only():
    kwargs = dict(batch_size=64, seed=5, data_format="channels_last", validation_batch_size=64)
    plain_data = load_data(**kwargs)
    plain = next(iter(plain_data.train))[0].numpy()
    shifted_data = load_data(transforms="shift", **kwargs)
    shifted = next(iter(shifted_data.train))[0].numpy()
    assert shifted_data.info.transforms == "shift" and shifted.shape == plain.shape
    # Every shifted digit is a window of the original padded with its background (pixel 0).
    padded = np.pad(plain, [(0, 0), (2, 2), (2, 2), (0, 0)], constant_values=plain.min())
    moves = [{(dy - 2, dx - 2) for dy in range(5) for dx in range(5)
              if np.array_equal(image, original[dy:dy + 28, dx:dx + 28])}
             for original, image in zip(padded, shifted)]
    assert all(moves), "a shifted digit is no window of the padded original"
    assert sum((0, 0) not in m for m in moves) > 32  # 24 of the 25 offsets move the digit
    # The same seed draws the same shifts; evaluation digits are left as they are.
    assert np.array_equal(next(iter(load_data(transforms="shift", **kwargs).train))[0], shifted)
    assert np.array_equal(next(iter(shifted_data.validation))[0],
                          next(iter(plain_data.validation))[0])


def test_batch_trains_a_tiny_model_on_the_current_backend():
    data = load_data(batch_size=16, subset=64, validation_batch_size=32)
    model = keras.Sequential([
        keras.Input(data.train.element_spec[0].shape[1:]),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(data.info.classes),
    ])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.train, epochs=1, steps_per_epoch=1,
                        validation_data=data.validation.take(1), shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])



def test_pipelines_run_without_the_autotuning_model():
    # tf.data's autotuning thread can hold the deletion of an iterator, at the end of every
    # fit, evaluate and predict pass, until its next wake-up (up to 10 s later).
    data = load_data(batch_size=16, subset=64, validation_batch_size=32)
    for ds in (data.train, data.validation, data.validation.take(1)):
        assert ds.options().autotune.enabled is False
    assert len(_collect(data.train)[0]) == data.num_train  # AUTOTUNE parallelism maps them all


# tensorflow-datasets, mocked


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_tfds_datasets_through_mock_data(name, monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(catalog, "_reachable", lambda urls, timeout: True)
    info = DATASETS[name]
    with tfds.testing.mock_data(num_examples=40):
        data = load_data(name, batch_size=8, validation_split=0.25, data_dir=tmp_path,
                         data_format="channels_last")
        (x, y), (x_test, y_test), source = load_arrays(name, data_dir=tmp_path)
    assert data.info == replace(info, train_examples=40)
    assert source.startswith(f"tensorflow-datasets {name} from ")
    assert (data.num_train, data.num_validation, data.steps_per_epoch) == (30, 10, 4)
    images, labels = next(iter(data.train))
    assert images.shape == (8, *info.image_shape) and labels.dtype == "int32"
    assert x.shape == (40, *info.image_shape) and x.dtype == np.uint8 and y.dtype == np.uint8
    assert x_test.shape == x.shape and y.max() < info.classes


def test_imagenette_streams_images_of_any_size_as_224_crops(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(catalog, "_reachable", lambda urls, timeout: True)
    with tfds.testing.mock_data(num_examples=12):
        data = load_data("imagenette", batch_size=4, validation_split=0.25, data_dir=tmp_path,
                         data_format="channels_first")
        images, labels = next(iter(data.train))
        validation = [tuple(x.shape) for x, _ in data.validation]
    assert data.info.transforms == "imagenet" and data.info.image_shape == (224, 224, 3)
    assert images.shape == (4, 3, 224, 224) and validation == [(3, 3, 224, 224)]
    with pytest.raises(ValueError, match="^transforms='none' is not allowed: .*differ in size"):
        describe("imagenette", transforms="none")


def test_imagenet2012_without_its_archives_says_where_they_go(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataUnavailableError) as caught:
        load_data("imagenet2012", data_dir=tmp_path)
    message = str(caught.value)
    assert "ILSVRC2012_img_train.tar" in message and str(tmp_path / "downloads" / "manual") in message
    assert describe("imagenet2012", data_dir=tmp_path).num_train == 1_153_050


def test_streams_hold_no_whole_split(monkeypatch, tmp_path):
    """A tensorflow-datasets split is read as a stream: never into arrays, never cached."""
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(catalog, "_reachable", lambda urls, timeout: True)
    monkeypatch.setattr(kd, "_to_arrays", None)
    loads = []
    real_load = tfds.load
    monkeypatch.setattr(tfds, "load", lambda *a, **k: loads.append(k) or real_load(*a, **k))
    with tfds.testing.mock_data(num_examples=20):
        data = load_data("cifar10", batch_size=5, data_dir=tmp_path)
        assert sum(len(y) for _, y in data.train) == 18
    assert loads and all(not k["read_config"].try_autocache for k in loads)
    assert data.train.cardinality() == 4


def test_describe_matches_load_data():
    for kwargs in ({}, {"validation_split": 0.3, "subset": 500}, {"augment": True}):
        described, data = describe(**kwargs), load_data(**kwargs)
        assert (described.num_train, described.num_validation) == (data.num_train, data.num_validation)
        assert described.info == data.info
    assert describe(augment=True).info.transforms == "cifar"
    with pytest.raises(ValueError, match="^augment=True is not allowed: False with transforms='imagenet'"):
        describe(augment=True, transforms="imagenet")
    with pytest.raises(ValueError, match="^subset=9001 is not allowed: at most 9,000"):
        describe(subset=9001)


def test_prepared_dataset_skips_the_reachability_check(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(urls, timeout):
        raise AssertionError("a prepared dataset must not probe the network")

    monkeypatch.setattr(catalog, "_reachable", unreachable)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "is_prepared", lambda self: True)
    with tfds.testing.mock_data(num_examples=20, data_dir=str(tmp_path)):
        (tmp_path / "mnist" / str(tfds.builder("mnist").version)).mkdir(parents=True)
        (x, _), _, source = load_arrays("mnist", data_dir=tmp_path)
    assert x.shape == (20, 28, 28, 1) and str(tmp_path) in source


# Offline behaviour


def test_unreachable_mnist_falls_back_to_the_sample_quickly(tmp_path):
    start = time.monotonic()
    with pytest.warns(UserWarning, match="embedded MNIST sample"):
        data = load_data("mnist", data_dir=tmp_path, subset=100)
    assert time.monotonic() - start < 10
    assert data.info == DATASETS["mnist_sample"] and data.num_train == 100
    assert "fallback" in data.source and "mnist unavailable" in data.source


def test_unreachable_mnist_without_fallback_raises(tmp_path):
    with pytest.raises(DataUnavailableError, match="'mnist'"):
        load_arrays("mnist", data_dir=tmp_path, fallback=False)


def test_unreachable_cifar10_raises_a_clear_error(tmp_path):
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as caught:
        load_data("cifar10", data_dir=tmp_path)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert "'cifar10'" in message and "not prepared" in message and "www.cs.toronto.edu" in message
    assert "data_dir" in message and "'mnist_sample'" in message
    assert isinstance(caught.value, ValueError)


def test_missing_tensorflow_datasets_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    assert not is_available("kmnist")
    with pytest.raises(DataUnavailableError, match="tensorflow-datasets is not installed"):
        load_arrays("kmnist")
    with pytest.warns(UserWarning, match="not installed"):
        assert load_arrays("mnist")[2].startswith("embedded MNIST sample")


def test_is_available(tmp_path):
    assert is_available("mnist_sample")
    start = time.monotonic()
    assert not is_available("svhn_cropped", data_dir=tmp_path, timeout=1.0)
    assert time.monotonic() - start < 5


def test_reachability_probe_on_loopback():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert catalog._reachable([f"http://127.0.0.1:{port}/"], timeout=2.0)
    start = time.monotonic()
    assert not catalog._reachable([f"http://127.0.0.1:{port}/"], timeout=2.0)
    assert time.monotonic() - start < 1.5


# Arguments


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"name": "imagenet"}, "dataset"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"validation_batch_size": -1}, "validation_batch_size"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"validation_split": -0.1}, "validation_split"),
        ({"subset": 0}, "subset"),
        ({"subset": 9001}, "subset"),
        ({"data_format": "NHWC"}, "data_format"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, argument):
    value = next(iter(kwargs.values()))
    with pytest.raises(ValueError, match=rf"^{argument}={value!r} is not allowed: "):
        load_data(**kwargs)


def test_unknown_name_lists_the_allowed_names():
    with pytest.raises(ValueError, match="cifar10") as caught:
        load_arrays("imagenet")
    assert "'imagenet'" in str(caught.value) and "mnist_sample" in str(caught.value)


def test_drop_remainder_keeps_whole_batches_only():
    data = load_data(batch_size=16, subset=40, validation_split=0.0025, drop_remainder=True)
    assert (data.num_train, data.num_validation, data.steps_per_epoch) == (32, 16, 2)
    assert [len(y) for _, y in data.train] == [16, 16]
    assert [len(y) for _, y in data.validation] == [16]
    with pytest.raises(ValueError, match="batch_size=64"):
        load_data(batch_size=64, subset=40, drop_remainder=True)


# DataSpec: what a run's config records


def test_a_spec_reads_old_configs_and_names_its_transforms():
    old = DataSpec.from_dict({"name": "cifar10", "subset": None, "validation_split": 0.1,
                              "data_dir": None, "augment": True})
    assert (old.transforms, old.augment) == ("cifar", True)
    assert old.to_dict() == {"name": "cifar10", "subset": None, "validation_split": 0.1,
                             "data_dir": None, "augment": True}  # the keys of older configs
    new = DataSpec("cifar10", transforms="imagenet")
    assert new.to_dict()["transforms"] == "imagenet" and "validation_dataset" not in new.to_dict()
    for spec in (old, new, DataSpec(), DataSpec("/photos", validation_split=0, validation_dataset="/val")):
        assert DataSpec.from_dict(spec.to_dict()) == spec
    assert old.replace(transforms="imagenet").augment is False
    assert old.replace(augment=False).transforms is None
    assert DataSpec("cifar10", transforms="cifar").augment is True
    with pytest.raises(ValueError, match="^augment=True is not allowed: False with transforms='none'"):
        DataSpec("cifar10", augment=True, transforms="none")
    with pytest.raises(ValueError, match="^transforms='none' is not allowed: .*differ in size"):
        DataSpec("imagenet2012", transforms="none")
    with pytest.raises(ValueError, match="^transforms='random' is not allowed: one of"):
        DataSpec(transforms="random")


def test_a_spec_names_folders_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    spec = DataSpec("photos", validation_split=0, validation_dataset="held/out")
    assert (spec.name, spec.validation_dataset) == (str(tmp_path / "photos"), str(tmp_path / "held" / "out"))
    assert DataSpec(tmp_path / "gone").name == str(tmp_path / "gone")  # an old run's folder may be gone
    with pytest.raises(ValueError, match=r"^dataset='nowhere' is not allowed: one of \("):
        DataSpec("nowhere")
    with pytest.raises(ValueError, match="^validation_split=0.1 is not allowed: 0 when"):
        DataSpec("photos", validation_dataset="held")
    with pytest.raises(ValueError, match="^validation_dataset='.*held' is not allowed: None for dataset 'cifar10'"):
        DataSpec("cifar10", validation_split=0, validation_dataset="held")
    with pytest.raises(ValueError, match="^data_dir='tfds' is not allowed: None for an image folder"):
        DataSpec("photos", data_dir="tfds")


def test_load_data_and_describe_take_a_specs_fields():
    spec = DataSpec("mnist_sample", subset=300, validation_split=0.2, augment=True)
    described = describe(**spec.to_dict())
    data = load_data(**spec.to_dict(), batch_size=100)
    assert (described.num_train, described.num_validation) == spec.sizes(10_000) == (300, 2000)
    assert (data.num_train, data.info.transforms) == (300, "cifar") and described.info == data.info
