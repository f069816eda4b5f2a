"""Image folders as datasets (keras_resnets.data.folders, load_data and describe on a path), on
the current Keras backend, with small generated folders."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import PIL.Image
import pytest

from keras_resnets.data import describe, load_data
from keras_resnets.data.folders import scan
from keras_resnets.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def _save(path, array, mode=None):
    """Saves ``array`` as an image (``mode="P"``: with a palette of its colours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = PIL.Image.fromarray(array)
    (image.quantize() if mode == "P" else image).save(path, quality=100)


def numbered_folder(root, classes=("cat", "dog", "emu"), per_class=8, size=(8, 6)):
    """A folder whose image ``i`` (by class, then name) is lossless PNG noise with ``i`` in its
    first pixel: images can be told apart after the pipeline (the explorer's tests use it too)."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        for j in range(per_class):
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            array[0, 0] = k * per_class + j
            _save(root / name / f"{j:02d}.png", array)
    return root


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return numbered_folder(tmp_path_factory.mktemp("numbered"))


def _ids(batches):
    """The numbers in the first pixel of every image, and the labels, of a pipeline."""
    ids, labels = [], []
    for x, y in batches:
        x = np.asarray(x)
        pixel = x[:, 0, 0, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        ids += list(np.rint(pixel * 255).astype(int))
        labels += list(np.asarray(y))
    return np.array(ids), np.array(labels)


def test_a_folder_streams_labelled_images(numbered):
    data = load_data(numbered, batch_size=5, validation_split=0.25, seed=3,
                     data_format="channels_last")
    assert (data.num_train, data.num_validation, data.steps_per_epoch) == (18, 6, 4)
    assert data.info.class_names == ("cat", "dog", "emu") and data.info.image_shape == (8, 6, 3)
    train, train_labels = _ids(data.train)
    validation, validation_labels = _ids(data.validation)
    assert sorted([*train, *validation]) == list(range(24))
    np.testing.assert_array_equal(train_labels, train // 8)  # each image has its class' label
    np.testing.assert_array_equal(validation_labels, validation // 8)
    assert not np.array_equal(train, np.sort(train))  # shuffled
    assert data.train.element_spec[0].dtype == "float32" and data.train.element_spec[1].dtype == "int32"


def test_the_split_follows_the_seed_and_matches_describe(numbered):
    def held_out(seed):
        return sorted(_ids(load_data(numbered, validation_split=0.25, seed=seed,
                                     data_format="channels_last").validation)[0])

    assert held_out(3) == held_out(3) != held_out(4)
    described = describe(str(numbered), validation_split=0.25, subset=10)
    assert (described.num_train, described.num_validation) == (10, 6)
    assert described.image_shape == (8, 6, 3) and described.classes == 3


def test_describe_decodes_nothing(numbered, monkeypatch):
    def refuse(self):
        raise AssertionError("describe decoded an image")

    monkeypatch.setattr(PIL.Image.Image, "load", refuse)
    assert describe(numbered, validation_split=0.5).num_validation == 12


def test_channels_first_and_drop_remainder(numbered):
    data = load_data(numbered, batch_size=5, validation_split=0.25, drop_remainder=True,
                     validation_batch_size=4, data_format="channels_first")
    assert (data.num_train, data.num_validation) == (15, 4)
    assert [tuple(x.shape) for x, _ in data.train] == [(5, 3, 8, 6)] * 3


def test_a_validation_folder(numbered, tmp_path):
    other = numbered_folder(tmp_path / "other", per_class=2)
    data = load_data(numbered, validation_split=0, validation_dataset=other, batch_size=8,
                     data_format="channels_last")
    assert (data.num_train, data.num_validation) == (24, 6)
    assert list(_ids(data.validation)[1]) == [0, 0, 1, 1, 2, 2]
    assert describe(numbered, validation_split=0, validation_dataset=other).num_validation == 6
    with pytest.raises(ValueError, match=r"^validation_split=0.1 is not allowed: 0 when"):
        load_data(numbered, validation_dataset=other)
    numbered_folder(tmp_path / "birds", classes=("cat", "owl"), per_class=1)
    with pytest.raises(ValueError, match=r"classes \['cat', 'dog', 'emu'\]; it has \['cat', 'owl'\]"):
        describe(numbered, validation_split=0, validation_dataset=tmp_path / "birds")
    with pytest.raises(ValueError, match="^validation_dataset="):
        describe("mnist_sample", validation_split=0, validation_dataset=other)


def test_same_seed_same_batches_under_every_transform(numbered):
    for transforms in ("cifar", "imagenet"):
        def first_batch(shuffle_seed):
            data = load_data(numbered, batch_size=6, transforms=transforms, seed=1,
                             shuffle_seed=shuffle_seed, reshuffle=False, data_format="channels_last")
            return np.asarray(next(iter(data.train))[0])

        same, again, other = first_batch(7), first_batch(7), first_batch(8)
        np.testing.assert_array_equal(same, again)
        assert not np.allclose(same, other)


def test_imagenet_transforms_crop_224_and_evaluate_as_torchvision(tmp_path):
    rng = np.random.default_rng(1)
    images = {"a": rng.integers(0, 256, (300, 260, 3), np.uint8),
              "b": rng.integers(0, 256, (240, 320, 3), np.uint8)}
    for name, array in images.items():
        _save(tmp_path / name / "x.png", array)
    with pytest.raises(ValueError, match=r"^transforms='none' is not allowed: .*differ in size "
                                         r"\(b/x.png is 320x240, a/x.png 260x300\)"):
        load_data(tmp_path)
    data = load_data(tmp_path, transforms="imagenet", validation_split=0, validation_dataset=tmp_path,
                     batch_size=2, data_format="channels_last")
    train, _ = next(iter(data.train))
    assert train.shape == (2, 224, 224, 3) and data.info.transforms == "imagenet"
    validation, labels = next(iter(data.validation))
    from keras_resnets.interop.imagenet import preprocess_input

    for x, label in zip(np.asarray(validation), np.asarray(labels)):
        expected = preprocess_input(images["ab"[label]], data_format="channels_last")
        np.testing.assert_allclose(x, expected, atol=1e-3)


def test_greyscale_palette_and_rgba_images(tmp_path):
    colour = np.zeros((6, 6, 3), np.uint8) + np.array([200, 100, 50], np.uint8)
    _save(tmp_path / "mixed" / "colour" / "rgba.png", np.dstack([colour, np.full((6, 6), 7, np.uint8)]))
    _save(tmp_path / "mixed" / "colour" / "palette.png", colour, mode="P")
    for folder in ("mixed", "grey"):
        _save(tmp_path / folder / "grey" / "a.png", np.full((6, 6), 90, np.uint8))
        _save(tmp_path / folder / "grey" / "b.jpg", np.full((6, 6), 90, np.uint8))
    _save(tmp_path / "grey" / "dark" / "c.png", np.full((6, 6), 10, np.uint8))

    data = load_data(tmp_path / "mixed", validation_split=0, batch_size=4, data_format="channels_last")
    assert data.info.image_shape == (6, 6, 3)
    x, y = next(iter(data.train))
    pixels = np.rint((np.asarray(x)[:, 0, 0] * IMAGENET_STD + IMAGENET_MEAN) * 255)
    for pixel, label in zip(pixels, np.asarray(y)):
        assert list(pixel) == ([200, 100, 50] if label == 0 else [90, 90, 90])
    grey = load_data(tmp_path / "grey", validation_split=0, batch_size=3, data_format="channels_last")
    assert grey.info.image_shape == (6, 6, 1) and grey.info.mean == (0.449,)
    assert next(iter(grey.train))[0].shape == (3, 6, 6, 1)


@pytest.mark.parametrize(("build", "message"), [
    (lambda root: None, r"it has no class subfolders"),
    (lambda root: numbered_folder(root, classes=("cat",), per_class=2), r"it has only the class 'cat'"),
    (lambda root: (numbered_folder(root, per_class=1), (root / "fox").mkdir()),
     r"'fox' holds none \(add images or remove it\)"),
    (lambda root: (numbered_folder(root, per_class=1), (root / "cat" / "x.png").write_text("hello")),
     r"1 files are not \(remove or re-save them\): cat[/\\]x.png \(cannot identify"),
    (lambda root: (numbered_folder(root, per_class=1), _truncate(root / "dog" / "00.png", 60)),
     r"dog[/\\]00.png \(a truncated or damaged PNG"),
    (lambda root: (numbered_folder(root, per_class=1), _save(root / "dog" / "j.jpg", np.zeros((8, 6, 3), np.uint8)),
                   _truncate(root / "dog" / "j.jpg", -10)),
     r"dog[/\\]j.jpg \(a truncated or damaged JPEG"),
    (lambda root: (numbered_folder(root, per_class=1),
                   PIL.Image.new("RGB", (8, 6)).save(root / "emu" / "g.png", format="GIF")),
     r"emu[/\\]g.png \(a GIF image, not JPEG or PNG\)"),
])
def test_bad_folders_are_refused_before_anything_trains(tmp_path, build, message):
    build(tmp_path)
    with pytest.raises(ValueError, match=rf"^dataset='{tmp_path}' is not allowed: .*{message}"):
        describe(tmp_path)


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


def test_data_after_an_image_is_no_damage(tmp_path):
    """A phone's motion photo is a JPEG with a video after it: decoders read the image."""
    numbered_folder(tmp_path, per_class=1)
    _save(tmp_path / "dog" / "motion.jpg", np.full((8, 6, 3), 200, np.uint8))
    with open(tmp_path / "dog" / "motion.jpg", "ab") as f:
        f.write(b"\0\0\0\x18ftypmp42" + bytes(range(256)) * 16)
    data = load_data(tmp_path, validation_split=0, batch_size=4, data_format="channels_last")
    assert data.num_train == 4 and len(list(data.train)) == 1


def test_other_files_are_skipped_with_a_warning_and_hidden_ones_ignored(tmp_path):
    numbered_folder(tmp_path, per_class=2)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0")
    (tmp_path / ".cache").mkdir()
    with pytest.warns(UserWarning, match=r"skipped 1 files that are not .jpeg/.jpg/.png: cat[/\\]notes.txt"):
        assert describe(tmp_path, validation_split=0).num_train == 6


def test_the_scan_sees_new_files_and_nested_folders(tmp_path):
    numbered_folder(tmp_path, per_class=2)
    assert len(scan(tmp_path).files) == 6
    _save(tmp_path / "dog" / "more" / "x.png", np.zeros((8, 6, 3), np.uint8))
    folder = scan(tmp_path)
    assert len(folder.files) == 7 and folder.labels[folder.files.index(str(tmp_path / "dog" / "more" / "x.png"))] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scan(tmp_path)  # the cached scan warns no more


def test_a_folder_trains_a_tiny_model_on_the_current_backend(numbered):
    data = load_data(numbered, batch_size=8, validation_split=0.25, transforms="cifar")
    model = keras.Sequential([
        keras.Input(data.train.element_spec[0].shape[1:]),
        keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(data.info.classes),
    ])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.train, epochs=1, validation_data=data.validation, shuffle=False,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])


def test_train_takes_a_folder_and_fits_a_preset_to_it(numbered, tmp_path):
    from keras_resnets.training import train

    run = train("mnist_resnet", numbered, runs_dir=tmp_path, run_id="folder", epochs=1,
                batch_size=6, validation_split=0.25, transforms="none")
    assert run.status["state"] == "completed", run.status
    arch, dataset = run.config["architecture"], run.config["dataset"]
    assert (tuple(arch["input_shape"]), arch["classes"]) == ((8, 6, 3), 3)
    assert dataset["name"] == str(numbered) and run.load_model().output_shape == (None, 3)


def test_the_command_line_trains_on_a_folder_with_a_validation_folder(numbered, tmp_path, capsys):
    from keras_resnets.cli import main

    held_out = numbered_folder(tmp_path / "held_out", per_class=2)
    args = ["train", "--preset", "mnist_resnet", "--set", "nb_blocks=1", "--dataset", str(numbered),
            "--validation-dataset", str(held_out), "--validation-split", "0", "--epochs", "1",
            "--batch-size", "8", "--runs-dir", str(tmp_path / "runs"), "--run-id", "cli"]
    assert main(args) == 0
    assert "24 training / 6 validation images from the image folder" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args[:5], "--dataset", "no_such_set"])
    assert "or the path of an image folder" in capsys.readouterr().err
