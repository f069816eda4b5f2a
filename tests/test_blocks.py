"""Residual blocks: shapes in both data formats, shortcuts, plain twins, zero-init, stochastic
depth inside a block, arguments, and a numerical match with torchvision-style PyTorch blocks."""

import warnings

import keras
import numpy as np
import pytest
import torch
from torch import nn

from keras_resnets import count_params
from keras_resnets.layers import (
    BottleneckBlock,
    DenseResBlock,
    PreActBottleneckBlock,
    PreActResBlock,
    ResBlock,
)

CONV_BLOCKS = [ResBlock, BottleneckBlock, PreActResBlock, PreActBottleneckBlock]

# Few distinct shapes keep the suite fast: JAX compiles every op anew for each new shape.
# Blocks are 4 wide (bottlenecks 4 inside, 16 outside); inputs are 8x8 (stride 1) or 7x7
# (stride 2, an odd size where asymmetric padding would show).


def _nhwc_to(x, data_format):
    return x if data_format == "channels_last" else np.transpose(x, (0, 3, 1, 2))


def _to_nhwc(x, data_format):
    return x if data_format == "channels_last" else np.transpose(x, (0, 2, 3, 1))


def _paths(layer):
    return {v.path.split("/", 1)[1] for v in layer.weights}


def _has_shortcut(layer):
    return any(p.startswith("shortcut/") for p in _paths(layer))


def _expansion(cls):
    return 4 if issubclass(cls, BottleneckBlock) else 1


# -- shapes ---------------------------------------------------------------------------------------


def _x(rng, size=8, channels=4):
    return rng.standard_normal((2, size, size, channels)).astype("float32")


@pytest.mark.parametrize("cls", CONV_BLOCKS)
@pytest.mark.parametrize(("size", "strides", "out_size"), [(8, 1, 8), (7, 2, 4)])
def test_block_shapes_in_both_data_formats(cls, size, strides, out_size, data_format, run, rng):
    block = cls(4, strides=strides)  # data_format from keras.config
    assert block.data_format == data_format
    x_nhwc = _x(rng, size, 4 * _expansion(cls))
    x = _nhwc_to(x_nhwc, data_format)
    y = run(block, x, training=True)
    expected = _nhwc_to(np.zeros((2, out_size, out_size, 4 * _expansion(cls))), data_format).shape
    assert y.shape == expected
    assert block.compute_output_shape(x.shape) == expected
    unknown = (None,) + x.shape[1:]
    assert block.compute_output_shape(unknown) == (None,) + expected[1:]


@pytest.mark.parametrize("cls", [ResBlock, PreActBottleneckBlock])
def test_explicit_data_format_overrides_the_global_setting(cls, run, rng):
    block = cls(4, strides=2, data_format="channels_first")
    assert keras.config.image_data_format() == "channels_last"
    y = run(block, _nhwc_to(_x(rng, 7, 4 * _expansion(cls)), "channels_first"))
    assert y.shape == (2, 4 * _expansion(cls), 4, 4)


def test_channels_first_block_equals_channels_last_block(run, rng):
    """Same weights, transposed input: the same numbers (kernels are format independent)."""
    last = ResBlock(4, strides=2, data_format="channels_last")
    first = ResBlock(4, strides=2, data_format="channels_first")
    x = _x(rng, 7)
    run(last, x)
    run(first, _nhwc_to(x, "channels_first"))
    first.set_weights(last.get_weights())
    for training in (False, True):
        np.testing.assert_allclose(
            _to_nhwc(run(first, _nhwc_to(x, "channels_first"), training=training), "channels_first"),
            run(last, x, training=training),
            rtol=1e-4, atol=1e-5,
        )


def test_dense_block_shapes(run, rng):
    for units, inputs in ((6, 6), (6, 4)):
        block = DenseResBlock(units)
        x = rng.standard_normal((3, inputs)).astype("float32")
        assert run(block, x, training=True).shape == (3, units) == block.compute_output_shape(x.shape)
        assert _has_shortcut(block) == (units != inputs)


def test_crelu_plain_blocks_double_the_width(data_format, run, rng):
    x = _nhwc_to(_x(rng, 7), data_format)
    for block, width in ((ResBlock(4, strides=2, activation="crelu", residual=False), 8),
                         (BottleneckBlock(1, strides=2, activation="crelu", residual=False), 8)):
        y = run(block, x)
        assert y.shape == _nhwc_to(np.zeros((2, 4, 4, width)), data_format).shape
        assert block.compute_output_shape(x.shape) == y.shape
    y = run(DenseResBlock(3, activation="crelu", residual=False), np.ones((2, 5), "float32"))
    assert y.shape == (2, 6)


@pytest.mark.parametrize("shortcut", ["B", "C"])
def test_preactivation_crelu_block_with_a_projection_runs(data_format, run, rng, shortcut):
    """The projection sees the pre-activated (CReLU-doubled) input (regression)."""
    block = PreActResBlock(4, strides=2, activation="crelu", shortcut=shortcut)
    x = _nhwc_to(_x(rng), data_format)
    y = run(block, x, training=True)
    expected = _nhwc_to(np.zeros((2, 4, 4, 4)), data_format).shape
    assert y.shape == block.compute_output_shape(x.shape) == expected
    kernel = {v.path.split("/", 1)[1]: v.shape for v in block.weights}["shortcut/projection/kernel"]
    assert tuple(kernel) == (1, 1, 8, 4)


# -- parameter counts and shortcuts --------------------------------------------------------------


def test_lecture_resblock_parameter_counts():
    block = ResBlock(16, 3, use_bias=True)
    block.build((None, 28, 28, 16))
    # Two 3x3 16->16 convolutions with biases and two batch norms: PyTorch's 4,704 parameters.
    assert count_params(block) == {"trainable": 4704, "non_trainable": 64, "total": 4768}
    block = ResBlock(16, 3)
    block.build((None, 28, 28, 16))
    assert count_params(block)["trainable"] == 4672


def test_bottleneck_parameter_count():
    block = BottleneckBlock(4)
    block.build((None, 8, 8, 4))
    # As torchvision's layer1[0] of ResNet-50: 1x1, 3x3, 1x1 convolutions, three BN, projection.
    convs = 4 * 4 + 9 * 4 * 4 + 4 * 16
    bns = 2 * (4 + 4 + 16)
    projection = 4 * 16 + 2 * 16
    assert count_params(block)["trainable"] == convs + bns + projection
    assert count_params(block)["non_trainable"] == 2 * (4 + 4 + 16 + 16)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_option_b_projects_only_where_the_shape_changes(cls):
    same = cls(4, shortcut="B")
    same.build((None, 8, 8, 4 * _expansion(cls)))
    assert not _has_shortcut(same) and same.shortcut_layer is None
    strided = cls(4, strides=2, shortcut="B")
    strided.build((None, 8, 8, 4 * _expansion(cls)))
    assert _has_shortcut(strided)
    wider = cls(4, shortcut="B")
    wider.build((None, 8, 8, 2))
    assert {"shortcut/projection/kernel", "shortcut/bn/gamma"} <= _paths(wider)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_option_c_projects_in_every_block(cls):
    block = cls(4, shortcut="C")
    block.build((None, 8, 8, 4 * _expansion(cls)))
    assert _has_shortcut(block)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
@pytest.mark.parametrize("strides", [1, 2])
def test_option_a_has_no_weights_and_plain_twins_match_its_count(cls, strides):
    residual = cls(4, strides=strides, shortcut="A")
    plain = cls(4, strides=strides, shortcut="A", residual=False)
    for block in (residual, plain):
        block.build((None, 8, 8, 2))
        assert not _has_shortcut(block)
    assert count_params(residual) == count_params(plain)
    projected = cls(4, strides=strides, shortcut="B")
    projected.build((None, 8, 8, 2))
    out = 4 * _expansion(cls)
    assert count_params(projected)["trainable"] == count_params(plain)["trainable"] + 2 * out + 2 * out


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_plain_twin_has_no_shortcut_layers(shortcut):
    block = ResBlock(4, strides=2, shortcut=shortcut, residual=False)
    block.build((None, 8, 8, 2))
    assert block.shortcut_layer is None and not _has_shortcut(block)


def test_option_a_block_adds_the_subsampled_zero_padded_input(run, rng):
    """With a linear activation and the branch zeroed, the block is exactly its shortcut."""
    block = ResBlock(8, strides=2, shortcut="A", activation="linear", zero_init_last_bn=True,
                     data_format="channels_last")
    x = _x(rng, 7)
    expected = np.zeros((2, 4, 4, 8), "float32")
    expected[..., :4] = x[:, ::2, ::2, :]
    np.testing.assert_allclose(run(block, x), expected, atol=1e-6)


# -- zero-initialised last batch norm ------------------------------------------------------------


@pytest.mark.parametrize("cls", [ResBlock, BottleneckBlock])
@pytest.mark.parametrize("training", [False, True])
def test_zero_init_post_activation_block_is_relu_of_its_input(cls, training, run, rng):
    """The branch starts at zero, so ``relu(x + 0)``: the identity on non-negative inputs."""
    block = cls(4, zero_init_last_bn=True, data_format="channels_last")
    x = _x(rng, 8, 4 * _expansion(cls))
    np.testing.assert_array_equal(run(block, x, training=training), np.maximum(x, 0))
    np.testing.assert_array_equal(run(block, np.abs(x), training=training), np.abs(x))


@pytest.mark.parametrize("cls", [PreActResBlock, PreActBottleneckBlock])
@pytest.mark.parametrize("training", [False, True])
def test_zero_init_preactivation_block_is_exactly_the_identity(cls, training, run, rng):
    block = cls(4, zero_init_last_bn=True, use_bias=True, data_format="channels_last")
    x = _x(rng, 8, 4 * _expansion(cls))
    np.testing.assert_array_equal(run(block, x, training=training), x)


def test_zero_init_with_a_projection_is_the_projected_input(run, rng):
    block = ResBlock(4, strides=2, zero_init_last_bn=True, data_format="channels_last")
    x = _x(rng, 7)
    y = run(block, x)
    np.testing.assert_allclose(y, np.maximum(run(block.shortcut_layer, x), 0), rtol=1e-6)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_without_zero_init_the_block_is_not_the_identity(cls, run, rng):
    block = cls(4, data_format="channels_last")
    x = np.abs(_x(rng, 8, 4 * _expansion(cls)))
    assert np.abs(run(block, x) - x).max() > 1e-2


def test_convolutions_of_a_block_start_with_different_weights():
    """One unseeded initialiser shared by conv1 and conv2 made them identical (regression)."""
    block = ResBlock(4)
    block.build((None, 8, 8, 4))
    kernels = [keras.ops.convert_to_numpy(v) for v in block.weights if v.path.endswith("kernel")]
    assert len(kernels) == 2 and not np.array_equal(*kernels)


# -- pre-activation ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [PreActResBlock, PreActBottleneckBlock])
def test_preactivate_false_skips_the_first_bn_relu(cls):
    first = cls(4, preactivate=False)
    first.build((None, 8, 8, 4 * _expansion(cls)))
    assert not any(p.startswith(("bn1/", "act1")) for p in _paths(first))
    assert "bn2/gamma" in _paths(first)
    later = cls(4)
    later.build((None, 8, 8, 4 * _expansion(cls)))
    assert "bn1/gamma" in _paths(later)


def test_preactivate_false_block_is_conv_path_on_the_raw_input(run, rng):
    """Without pre-activation the block must not rectify its input: negative inputs matter."""
    block = PreActResBlock(4, preactivate=False, data_format="channels_last")
    x = _x(rng)
    y_neg = run(block, x)
    y_pos = run(block, np.maximum(x, 0))
    assert np.abs(y_neg - y_pos).max() > 1e-3


def test_preactivation_blocks_have_no_activation_after_the_sum(run, rng):
    block = PreActResBlock(4, data_format="channels_last")
    y = run(block, _x(rng))
    assert y.min() < 0  # a ReLU after the sum would make every output non-negative
    assert block.post_activation is None


# -- stochastic depth inside a block --------------------------------------------------------------


def _linear_block(**kwargs):
    # A linear post-activation makes y = x + drop(f(x)) observable.
    return ResBlock(4, activation="linear", data_format="channels_last", **kwargs)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_stochastic_depth_block(mode, run, rng):
    p = 0.5
    x = _x(rng)
    full = _linear_block()
    dropped = _linear_block(survival_probability=p, drop_mode=mode, seed=3)
    run(full, x)
    run(dropped, x)
    dropped.set_weights(full.get_weights())
    branch = run(full, x) - x
    inference = run(dropped, x)
    np.testing.assert_allclose(inference, x + (p if mode == "batch" else 1.0) * branch, rtol=1e-4, atol=1e-5)
    seen = set()
    for _ in range(16):
        y = run(dropped, x, training=True)
        # Training mode BN uses batch statistics: compare with the full block in training mode.
        full_y = run(full, x, training=True) - x
        per_example = []
        for i in range(len(x)):
            if np.allclose(y[i], x[i], atol=1e-6):
                per_example.append("dropped")
            else:
                scale = 1.0 if mode == "batch" else 1.0 / p
                np.testing.assert_allclose(y[i], x[i] + scale * full_y[i], rtol=1e-4, atol=1e-4)
                per_example.append("kept")
        if mode == "batch":
            assert len(set(per_example)) == 1
        seen.update(per_example)
    assert seen == {"dropped", "kept"}


# Survival probabilities that make the draw certain: 1e-9 always drops, 1 - 1e-7 always keeps.
ALWAYS_DROPPED, ALWAYS_KEPT = 1e-9, 1 - 1e-7


def _twins(cls, survival_probability, rng, **kwargs):
    """A block with stochastic depth and its twin without, sharing weights; and an input."""
    x = _x(rng, 7, 4 * _expansion(cls))
    full = cls(4, data_format="channels_last", **kwargs)
    drop = cls(4, data_format="channels_last", survival_probability=survival_probability,
               seed=0, **kwargs)
    full(x), drop(x)
    drop.set_weights(full.get_weights())
    return full, drop, x


def _branch_state(block):
    return {v.path.split("/", 1)[1]: keras.ops.convert_to_numpy(v.value)
            for v in block.non_trainable_weights if "shortcut" not in v.path}


@pytest.mark.parametrize("cls", CONV_BLOCKS)
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_a_dropped_branch_is_not_computed(cls, shortcut, run, rng):
    """Huang et al.: a dropped block is the identity (or its projection). Its branch is not run,
    so its batch norms keep their statistics; multiplying the branch by zero would update them."""
    full, drop, x = _twins(cls, ALWAYS_DROPPED, rng, strides=2, shortcut=shortcut)
    projects_preactivated = drop.preactivation and shortcut == "B"
    before = _branch_state(drop)
    y = run(drop, x, training=True)
    for path, value in _branch_state(drop).items():
        if not (projects_preactivated and path.startswith("bn1/")):  # the projection's input
            np.testing.assert_array_equal(value, before[path], err_msg=path)
    source = x
    if projects_preactivated:
        source = full.act1(full.bn1(x, training=True))
    expected = full.shortcut_layer(source, training=True)
    if full.post_activation is not None:
        expected = full.post_activation(expected)
    np.testing.assert_allclose(y, keras.ops.convert_to_numpy(expected), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", CONV_BLOCKS)
def test_a_kept_branch_trains_as_without_stochastic_depth(cls, run, rng):
    full, drop, x = _twins(cls, ALWAYS_KEPT, rng, strides=2)
    np.testing.assert_allclose(run(drop, x, training=True), run(full, x, training=True),
                               rtol=1e-5, atol=1e-5)
    for a, b in zip(full.weights, drop.weights):  # the same batch-norm updates
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a.value),
                                   keras.ops.convert_to_numpy(b.value), rtol=1e-6, atol=1e-6,
                                   err_msg=a.path)


def test_compiled_training_leaves_a_dropped_branch_untouched(rng):
    """In a train step (compiled with XLA on JAX and TensorFlow) a dropped branch gets no gradient
    and no batch-norm update, and a kept one both."""
    x = rng.standard_normal((8, 8, 8, 4)).astype("float32")
    inputs = keras.Input((8, 8, 4))
    dropped = ResBlock(4, survival_probability=ALWAYS_DROPPED, seed=0, name="dropped",
                       data_format="channels_last")
    kept = ResBlock(4, survival_probability=ALWAYS_KEPT, seed=1, name="kept",
                    data_format="channels_last")
    h = kept(dropped(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),  # XLA on JAX and TF
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Gradients do not exist")  # zero, as in a graph
        model.fit(x, np.arange(8) % 2, batch_size=4, epochs=2, verbose=0)
    changed = {v.path for v in model.weights
               if not np.array_equal(before[v.path], keras.ops.convert_to_numpy(v.value))}
    assert not {p for p in changed if p.startswith("dropped/")}
    assert {v.path for v in model.get_layer("kept").weights} <= changed


# -- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: ResBlock(0), "nb_channels"),
        (lambda: ResBlock(-4), "nb_channels"),
        (lambda: ResBlock("16"), "nb_channels"),
        (lambda: ResBlock(16.0), "nb_channels"),
        (lambda: ResBlock(True), "nb_channels"),
        (lambda: ResBlock(4, 4), "kernel_size"),
        (lambda: ResBlock(4, 0), "kernel_size"),
        (lambda: ResBlock(4, strides=0), "strides"),
        (lambda: ResBlock(4, shortcut="D"), "shortcut"),
        (lambda: ResBlock(4, activation="sigmoid"), "activation"),
        (lambda: ResBlock(4, activation="crelu"), "crelu"),
        (lambda: ResBlock(4, residual=False, survival_probability=0.5), "residual"),
        (lambda: ResBlock(4, survival_probability=0.0), "survival_probability"),
        (lambda: ResBlock(4, survival_probability="0.5"), "survival_probability"),
        (lambda: ResBlock(4, survival_probability=True), "survival_probability"),
        (lambda: ResBlock(4, survival_probability=0.5, drop_mode="row"), "drop_mode"),
        (lambda: ResBlock(4, data_format="NCHW"), "data_format"),
        (lambda: BottleneckBlock(4, expansion=0), "expansion"),
        (lambda: BottleneckBlock(4, activation="crelu"), "crelu"),
        (lambda: DenseResBlock(4, kernel_size=3), "kernel_size"),
        (lambda: DenseResBlock(4, strides=2), "strides"),
    ],
)
def test_blocks_reject_bad_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_option_a_block_cannot_narrow(run):
    with pytest.raises(ValueError, match="only add channels"):
        run(ResBlock(2, shortcut="A", data_format="channels_last"), np.ones((1, 4, 4, 4), "float32"))


# -- torchvision-style blocks in PyTorch, same weights, same outputs -----------------------------


class TorchBasicBlock(nn.Module):
    """torchvision's BasicBlock: the stride on the first 3x3 conv, padding 1 on both sides."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.downsample(x))


class TorchBottleneck(nn.Module):
    """torchvision's Bottleneck ("v1.5": the stride on the 3x3 conv)."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4)
        )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + self.downsample(x))


def _rename(name):
    return {"downsample.0": "shortcut/projection", "downsample.1": "shortcut/bn"}.get(name, name)


@pytest.mark.parametrize("size", [7, 8])
def test_strided_resblock_equals_torchvision_basic_block(size, run, torch_port):
    """Symmetric padding of strided convolutions: Keras' 'same' would pad only bottom/right."""
    torch_block = torch_port.randomise(TorchBasicBlock(4, 4, 2))
    block = ResBlock(4, strides=2, shortcut="B", data_format="channels_last")
    x = np.random.default_rng(1).standard_normal((2, 4, size, size)).astype("float32")
    run(block, np.transpose(x, (0, 2, 3, 1)))
    torch_port.copy(torch_block, block, _rename)
    with torch.no_grad():
        expected = torch_block(torch.from_numpy(x)).numpy()
    y = run(block, np.transpose(x, (0, 2, 3, 1)))
    np.testing.assert_allclose(np.transpose(y, (0, 3, 1, 2)), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [7, 8])
def test_strided_bottleneck_equals_torchvision_bottleneck(size, run, torch_port):
    torch_block = torch_port.randomise(TorchBottleneck(16, 4, 2))
    block = BottleneckBlock(4, strides=2, shortcut="B", data_format="channels_first")
    x = np.random.default_rng(2).standard_normal((2, 16, size, size)).astype("float32")
    run(block, x)
    torch_port.copy(torch_block, block, _rename)
    with torch.no_grad():
        expected = torch_block(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(block, x), expected, rtol=1e-4, atol=1e-4)
