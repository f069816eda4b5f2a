"""Weights in and out of torchvision, ``weights=``, features and ImageNet pre/post-processing,
compared with real torchvision models.

The references are files written by `tests/reference/torchvision_refs.py` in an environment
with PyPI's torch and torchvision (``python tests/run.py`` makes them first). A missing file
fails the test with a message saying how to make it: a skipped comparison is no verification.
"""

import contextlib
import importlib.util
import os
import socket
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets import interop, presets
from keras_resnets.design.architecture import Stage, Stem
from keras_resnets.interop import torchfile
from keras_resnets.interop import weights as torchvision_weights

_spec = importlib.util.spec_from_file_location(
    "torchvision_refs", os.path.join(os.path.dirname(__file__), "reference", "torchvision_refs.py"))
refs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refs)

FORMATS = ("channels_last", "channels_first")
# Every model in channels_last; each kind of block (basic, bottleneck, grouped, wide) in
# channels_first too. A deeper model of a kind repeats the layers of the shallower one: in
# channels_first it would add minutes per backend and no layer.
CHANNELS_FIRST = ("resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2")
LEVELS = {"P2": "layer1", "P3": "layer2", "P4": "layer3", "P5": "layer4"}


def _reference_file(name):
    path = os.path.join(refs.reference_dir(), name)
    if not os.path.exists(path):
        pytest.fail(f"missing reference {path}: make the references with `python tests/run.py` "
                    "(which does it first) or `<python with torch and torchvision> "
                    f"tests/reference/torchvision_refs.py` (${refs.ENV_DIR} moves them).")
    return path


def _reference(name):
    with np.load(_reference_file(f"{name}.npz")) as data:
        ref = dict(data)
    if int(ref["version"]) != refs.VERSION:
        pytest.fail(f"{name}.npz is of version {int(ref['version'])}, not {refs.VERSION}: "
                    "make the references again (python tests/run.py).")
    return ref


def _prefixed(ref, prefix):
    return {k[len(prefix):]: v for k, v in ref.items() if k.startswith(prefix)}


def _relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@contextlib.contextmanager
def _zero_init():
    """Zero kernels instead of random ones while building: every weight is loaded afterwards,
    and drawing 60 M random numbers (on JAX, compiling a sampler per shape) dominates a build."""
    def zeros(self, shape, dtype=None):
        return keras.ops.zeros(shape, dtype=dtype)

    with pytest.MonkeyPatch.context() as patch:
        for cls in (keras.initializers.VarianceScaling, keras.initializers.RandomNormal,
                    keras.initializers.TruncatedNormal, keras.initializers.RandomUniform):
            patch.setattr(cls, "__call__", zeros)
        yield


def _nhwc(x, data_format):
    """A torch (NCHW) array in ``data_format``."""
    return np.transpose(x, (0, 2, 3, 1)) if data_format == "channels_last" else x


class Case:
    """One torchvision model in one data format: our model with its weights loaded, a probe
    that returns its logits and stage features in one call (one compilation), the reference."""

    def __init__(self, name, data_format):
        self.name, self.data_format = name, data_format
        self.ref = _reference(name)
        self.state = _prefixed(self.ref, "state/")
        with _zero_init():
            self.model = getattr(keras_resnets, name)(input_shape=(64, 64, 3),
                                                      data_format=data_format)
        features = keras_resnets.feature_extractor(self.model)
        self.probe = keras.Model(self.model.inputs,
                                 {"logits": self.model.output, **features.output})
        self.x = _nhwc(self.ref["input"], data_format)
        self.eval = None

    def load(self):
        interop.from_torchvision(self.state, self.model)


def test_channels_first_cases_name_compared_models():
    assert set(CHANNELS_FIRST) <= set(refs.MODELS)  # a typo would drop its case silently


@pytest.fixture(scope="module", ids=lambda p: f"{p[0]}-{p[1]}", params=[
    pytest.param((n, f), marks=pytest.mark.slow) for f in FORMATS for n in refs.MODELS
    if f == "channels_last" or n in CHANNELS_FIRST])
def case(request):
    case = Case(*request.param)
    case.load()
    return case


def _eval(case, run):
    if case.eval is None:
        case.eval = run(case.probe, case.x)
    return case.eval


def test_eval_logits_equal_torchvisions(case, run):
    error = _relative_error(_eval(case, run)["logits"], case.ref["logits"])
    print(f"{keras.backend.backend()} {case.name} {case.data_format} max relative logit "
          f"difference {error:.2e}")
    assert error < 1e-4


def test_stage_features_equal_torchvisions(case, run):
    outputs = _eval(case, run)
    assert set(outputs) == {"logits", *LEVELS}
    for level, stage in LEVELS.items():
        expected = _nhwc(case.ref[f"features/{stage}"], case.data_format)
        assert outputs[level].shape == expected.shape, level
        assert _relative_error(outputs[level], expected) < 1e-4, level


def test_to_torchvision_gives_the_reference_state_dict_back_exactly(case):
    state = interop.to_torchvision(case.model)
    assert list(state) == list(case.state)  # torchvision's own order
    for key, value in case.state.items():
        if key.endswith("num_batches_tracked"):
            assert state[key] == 0  # Keras does not count batches
        else:
            np.testing.assert_array_equal(state[key], value, err_msg=key)
    before = [keras.ops.convert_to_numpy(v) for v in case.model.weights]
    interop.from_torchvision(state, case.model)
    for a, b in zip(before, case.model.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(b), a, err_msg=b.path)


def test_one_train_mode_step_moves_batch_norm_statistics_as_torchvision(case, run):
    """The last test of a case: it moves the statistics (and loads them back afterwards)."""
    y = run(case.model, case.x, training=True)
    assert _relative_error(y, case.ref["train_logits"]) < 1e-4
    state = interop.to_torchvision(case.model)
    moved = _prefixed(case.ref, "train_state/")
    for key, value in moved.items():
        assert not np.allclose(value, case.state[key]), key  # the step did move them
        assert _relative_error(state[key], value) < 1e-4, key
    case.load()


# -- errors: nothing half-loaded, the first offending key named -----------------------------------

def _small_arch(**fields):
    return presets.resnet(18, input_shape=(16, 16, 3), classes=5, stem=Stem(
        kind="conv", filters=8, kernel_size=7, strides=2, pool=True),
        stages=(Stage(1, 8), Stage(2, 16, 2)), **fields)


@pytest.fixture(scope="module")
def small():
    """A torchvision-form network of two narrow stages (cheap to build on every backend)."""
    return keras_resnets.build_resnet(_small_arch())


def _values(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


@pytest.mark.parametrize(("change", "message"), [
    (lambda s: s.pop("layer2.1.bn2.running_var"),
     r"layer2\.1\.bn2\.running_var: missing from the state dict \(expected shape \(16,\)\)"),
    (lambda s: s.update({"fc.weight": np.zeros((5, 7), "float32")}),
     r"fc\.weight: expected shape \(5, 16\), found \(5, 7\)"),
    (lambda s: s.update({"layer3.0.conv1.weight": np.zeros((3, 3), "float32")}),
     r"layer3\.0\.conv1\.weight: not a key of this model \(found shape \(3, 3\)\)"),
])
def test_from_torchvision_refuses_a_mismatch_and_loads_nothing(small, change, message):
    state = interop.to_torchvision(small)
    state = {k: v + 1.0 if v.dtype.kind == "f" else v for k, v in state.items()}
    change(state)
    before = _values(small)
    with pytest.raises(ValueError, match=message):
        interop.from_torchvision(state, small)
    for a, b in zip(before, _values(small)):
        np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize(("model", "message"), [
    (lambda: keras_resnets.cifar_resnet(8), "no 7x7 stride-2 stem_conv"),
    (lambda: keras_resnets.mnist_resnet(nb_blocks=1), "no 7x7 stride-2 stem_conv"),
    (lambda: keras_resnets.build_resnet(_small_arch(shortcut="C")), "shortcut='C'"),
    (lambda: keras_resnets.build_resnet(_small_arch(preactivation=True)), "preactivation=True"),
    (lambda: keras_resnets.build_resnet(_small_arch(use_bias=True)), "use_bias=True"),
    (lambda: keras_resnets.build_resnet(_small_arch(avg_down=True)), "avg_down=True"),
])
def test_models_of_another_form_have_no_torchvision_state_dict(model, message):
    with pytest.raises(ValueError, match=message):
        interop.to_torchvision(model())


# -- weights= -------------------------------------------------------------------------------------

def test_weights_from_a_pth_file_read_with_and_without_torch(run):
    path = _reference_file("resnet18.pth")
    ref = _reference("resnet18")
    without_torch = torchfile.load(path)
    state = _prefixed(ref, "state/")
    assert list(without_torch) == list(state)
    for key, value in state.items():
        np.testing.assert_array_equal(without_torch[key], value, err_msg=key)
        assert without_torch[key].dtype == value.dtype
    with _zero_init():
        model = keras_resnets.resnet18(weights=path, input_shape=(64, 64, 3),
                                       data_format="channels_last")
        headless = keras_resnets.resnet18(weights=path, input_shape=(64, 64, 3),
                                          include_top=False, pooling="max", classes=10,
                                          data_format="channels_last")
    x = _nhwc(ref["input"], "channels_last")
    assert _relative_error(run(model, x), ref["logits"]) < 1e-4
    pooled = run(headless, x)
    expected = _nhwc(ref["features/layer4"], "channels_last").max(axis=(1, 2))
    assert pooled.shape == (2, 512)
    assert _relative_error(pooled, expected) < 1e-4


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"weights": "imagenet", "classes": 10}, "classes=10 is not allowed with weights='imagenet'"),
    ({"weights": "imagenet", "pooling": "max"}, "pooling='max' is not allowed"),
    ({"weights": "resnet18.h5"}, "weights='resnet18.h5': no such file"),
    ({"weights": 3}, "weights=3 is not allowed: None, 'imagenet' or the path"),
])
def test_wrong_weights_arguments_are_refused_before_building(kwargs, message):
    with pytest.raises(ValueError, match=message):
        torchvision_weights.check_weights(kwargs.pop("weights"), presets.resnet(18, **kwargs))


def test_imagenet_weights_offline_fail_at_once_naming_the_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(ConnectionError, match=r"resnet18-f37072fd\.pth.*weights='/path/to/"):
        torchvision_weights.imagenet_file("resnet18", cache_dir=str(tmp_path))


def test_imagenet_weights_are_fetched_checked_cached_and_loaded(tmp_path, monkeypatch, run):
    """``weights="imagenet"`` end to end against a local server that publishes a torchvision
    resnet18 file as download.pytorch.org does (name ending in its SHA-256 prefix)."""
    import functools
    import hashlib
    import http.server
    import shutil
    import threading

    from keras.src.backend import config

    source = _reference_file("resnet18.pth")
    prefix = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:8]
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(source, served / f"resnet18-{prefix}.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torchvision_weights, "_BASE_URL", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setitem(torchvision_weights.IMAGENET_WEIGHTS, "resnet18",
                        torchvision_weights.ImagenetWeights(f"resnet18-{prefix}.pth", 69.758))
    (tmp_path / "keras").mkdir()  # get_file falls back to /tmp/.keras for a missing one
    monkeypatch.setattr(config, "keras_home", lambda: str(tmp_path / "keras"))
    try:
        with _zero_init():
            model = keras_resnets.resnet18(weights="imagenet", input_shape=(64, 64, 3),
                                           data_format="channels_last")
        cached = tmp_path / "keras" / "models" / f"resnet18-{prefix}.pth"
        assert cached.exists()
        server.shutdown()  # a second model reads the cache, not the network
        assert torchvision_weights.imagenet_file("resnet18") == str(cached)
    finally:
        server.server_close()
    ref = _reference("resnet18")
    assert _relative_error(run(model, _nhwc(ref["input"], "channels_last")), ref["logits"]) < 1e-4


def test_imagenet_file_with_another_hash_is_refused_and_removed(tmp_path):
    cached = tmp_path / "models" / "resnet34-b627a593.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"not the published file")
    with pytest.raises(OSError, match="does not start with b627a593"):
        torchvision_weights.imagenet_file("resnet34", cache_dir=str(tmp_path))
    assert not cached.exists()


def test_the_weights_table_covers_the_references_and_the_functions():
    assert set(refs.MODELS) <= set(torchvision_weights.IMAGENET_WEIGHTS)
    for name, entry in torchvision_weights.IMAGENET_WEIGHTS.items():
        assert entry.url.endswith(f"/{name}-{entry.sha256_prefix}.pth")
        assert len(entry.sha256_prefix) >= 8
    assert all(callable(getattr(keras_resnets, name)) for name in refs.MODELS)


# -- ImageNet pre- and post-processing, features of every preset ----------------------------------

def test_preprocess_input_matches_torchvisions_transform():
    with np.load(_reference_file("imagenet_preprocess.npz")) as data:
        image, expected = data["image"], data["output"]
    x = keras_resnets.preprocess_input(image, data_format="channels_first")
    assert x.shape == expected.shape == (3, 224, 224)
    # Antialiased bilinear resizing rounds differently in Keras and torchvision: within one
    # grey level (1/255 of the range, divided by the channel's standard deviation).
    one_level = 1.0 / (255 * min(keras_resnets.interop.imagenet.STD))
    assert np.max(np.abs(x - expected)) < one_level
    assert np.mean(np.abs(x - expected)) < one_level / 2
    np.testing.assert_allclose(
        keras_resnets.preprocess_input(image[None], resize_size=None, crop_size=None,
                                       data_format="channels_last")[0],
        (image / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225], rtol=1e-5, atol=1e-5)


def test_decode_predictions_names_the_top_classes():
    preds = np.zeros((2, 1000), "float32")
    preds[0, [3, 7]] = [0.5, 0.9]
    preds[1, 999] = 2.0
    top = keras_resnets.decode_predictions(preds, top=2)
    assert top[0] == [(7, "cock", pytest.approx(0.9)), (3, "tiger shark", 0.5)]
    assert top[1][0] == (999, "toilet tissue", 2.0)
    with pytest.raises(ValueError, match=r"preds of shape \(2, 10\)"):
        keras_resnets.decode_predictions(preds[:, :10])


@pytest.mark.parametrize(("preset", "levels"), [
    ("mnist_resnet", {"P0": (28, 28, 16)}),
    ("cifar_resnet20", {"P0": (32, 32, 16), "P1": (16, 16, 32), "P2": (8, 8, 64)}),
    ("highway_net", {"P0": (28, 28, 16)}),
    ("resnet50", {"P2": (16, 16, 256), "P3": (8, 8, 512), "P4": (4, 4, 1024),
                  "P5": (2, 2, 2048)}),
])
def test_feature_extractor_names_the_stage_outputs_of_every_preset(preset, levels):
    """Each kind of preset (crelu_net has one stride-1 stage, as mnist_resnet; its looks-linear
    initialiser alone takes two minutes to build on JAX)."""
    kwargs = {"input_shape": (64, 64, 3)} if preset == "resnet50" else {}
    with _zero_init():
        model = keras_resnets.build_resnet(keras_resnets.get_preset(preset, **kwargs),
                                           data_format="channels_last")
    features = keras_resnets.feature_extractor(model)
    assert {k: tuple(v.shape[1:]) for k, v in features.output.items()} == levels
    assert features.count_params() <= model.count_params()  # the same weights, no head
