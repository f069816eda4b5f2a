"""The PyTorch export: the generated file, executed under plain torch, builds the same network
(same parameter count) and, with the Keras weights copied in, gives the same outputs."""

import importlib.util

import keras
import numpy as np
import pytest

from keras_resnets import Architecture, build_resnet, count_params, presets
from keras_resnets.interop.export_torch import keras_weights, torch_class_name, torch_source

torch = pytest.importorskip("torch")

DESIGNS = {
    "lecture_mnist": presets.mnist_resnet(),
    "cifar20_option_a": presets.cifar_resnet(20, input_shape=(16, 16, 3)),
    "preact_bottleneck_option_c": Architecture(
        name="preact-bottleneck", input_shape=(16, 16, 3), block="bottleneck", preactivation=True,
        shortcut="C", stages=({"blocks": 2, "channels": 8}, {"blocks": 1, "channels": 16, "strides": 2})),
    "stochastic_depth": presets.cifar_resnet(20, input_shape=(16, 16, 3), final_survival_probability=0.5,
                                             shortcut="B"),
    "wide_bottleneck": Architecture(
        name="wide-bottleneck", input_shape=(16, 16, 3), block="bottleneck", width_per_group=128,
        stages=({"blocks": 1, "channels": 8}, {"blocks": 1, "channels": 16, "strides": 2})),
    "plain_twin": presets.mnist_resnet(16, 3, 4, residual=False),
    "crelu_flatten_max_pool_stem": Architecture(
        name="crelu_flatten", input_shape=(20, 20, 3), activation="crelu", residual=False,
        stem={"filters": 8, "kernel_size": 5, "strides": 2, "pool": True}, pooling="flatten",
        stages=({"blocks": 1, "channels": 8},), classifier_activation="softmax"),
    "dense": Architecture(name="dense", input_shape=(20,), block="dense", pooling=None, shortcut="A",
                          stem={"kind": "dense", "filters": 12, "kernel_size": 1},
                          stages=({"blocks": 2, "channels": 16},)),
}


def _load(source, tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomize_statistics(model, rng):
    """Batch-norm statistics and scales away from their initial 0/1, so that a wrong mapping shows."""
    for weight in model.weights:
        leaf = weight.path.rsplit("/", 1)[-1]
        if leaf in ("moving_variance", "gamma"):
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
        elif leaf in ("moving_mean", "beta"):
            weight.assign(rng.normal(0, 0.1, weight.shape).astype("float32"))


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_exported_module_matches_the_keras_model(design, tmp_path):
    arch = DESIGNS[design]
    source = torch_source(arch)
    assert "import keras" not in source and "from keras" not in source
    module = _load(source, tmp_path, f"exported_{design}")
    net = getattr(module, torch_class_name(arch))().eval()
    keras.utils.set_random_seed(0)
    model = build_resnet(arch)
    _randomize_statistics(model, np.random.default_rng(1))
    arrays = keras_weights(model)
    assert sum(p.numel() for p in net.parameters()) == count_params(model)["trainable"]
    buffers = sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked"))
    assert buffers == sum(a.size for p, a in arrays.items() if p.endswith(("moving_mean", "moving_variance")))
    module.load_keras_weights(net, arrays)
    assert Architecture.from_json(module.ARCHITECTURE) == arch

    x = np.random.default_rng(2).normal(size=(2, *arch.input_shape)).astype("float32")
    keras_x = x if len(arch.input_shape) == 1 or keras.config.image_data_format() == "channels_last" \
        else x.transpose(0, 3, 1, 2)
    expected = keras.ops.convert_to_numpy(model(keras_x, training=False))
    torch_x = torch.from_numpy(x if len(arch.input_shape) == 1 else x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        got = net(torch_x).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


@pytest.mark.parametrize("arch, count", [(presets.mnist_resnet(), 117802), (presets.cifar_resnet(20), 269722)])
def test_the_documented_parameter_counts_hold_in_pytorch(arch, count, tmp_path):
    module = _load(torch_source(arch), tmp_path, arch.name)
    assert sum(p.numel() for p in getattr(module, torch_class_name(arch))().parameters()) == count


def test_a_missing_or_misshaped_weight_is_named(tmp_path):
    module = _load(torch_source(presets.mnist_resnet(16, 3, 1)), tmp_path, "small")
    arrays = keras_weights(build_resnet(presets.mnist_resnet(16, 3, 1)))
    del arrays["classifier/bias"]
    with pytest.raises(ValueError, match="classifier.bias"):
        module.load_keras_weights(module.MnistResnet(), arrays)
    arrays["classifier/bias"] = np.zeros(3, "float32")
    with pytest.raises(ValueError, match="classifier/bias"):
        module.load_keras_weights(module.MnistResnet(), arrays)


@pytest.mark.parametrize("field, value", [
    ("block", "highway"), ("stem.kind", "deep"), ("groups", 2), ("avg_down", True), ("dropout", 0.3),
    ("shortcut_batch_norm", False),
])
def test_parts_the_export_does_not_write_are_refused_with_a_reason(field, value):
    """Each of these designs builds in Keras, but the generated module would not be the same
    network: the export refuses it instead of writing a different one."""
    base = DESIGNS["wide_bottleneck"]
    arch = presets.highway_net(3) if field == "block" else base.replace(
        **({"stem": {"kind": value, "filters": 8}} if field == "stem.kind" else {field: value}))
    build_resnet(arch)
    with pytest.raises(ValueError, match=f"{field}={value!r} is not supported by the PyTorch export"):
        torch_source(arch)
