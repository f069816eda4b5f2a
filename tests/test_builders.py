"""build_resnet and the presets as models: parameter counts and costs against the papers and
torchvision, the lecture's PyTorch network, structure (shortcuts, plain twins, pre-activation),
CReLU + looks-linear linearity, stochastic depth in training, data formats, docstring examples."""

import doctest
import importlib
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import keras_resnets
from keras_resnets import (
    Stage,
    Stem,
    build_resnet,
    count_params,
    format_summary,
    parameter_table,
    presets,
    stage_table,
)
from keras_resnets.layers import StochasticDepth, linear_decay

BACKEND = keras.backend.backend()


@pytest.fixture
def cheap_init(monkeypatch):
    """Zero kernels instead of random ones, for tests that only count parameters or read shapes:
    on CPU, drawing 60 M random numbers (and, on JAX, compiling a sampler for every weight
    shape) dominates building the large models. Counts and shapes do not depend on values."""

    def zeros(self, shape, dtype=None):
        return keras.ops.zeros(shape, dtype=dtype)

    for cls in (keras.initializers.VarianceScaling, keras.initializers.RandomNormal,
                keras.initializers.TruncatedNormal, keras.initializers.RandomUniform):
        monkeypatch.setattr(cls, "__call__", zeros)


def _paths(model):
    return [v.path for v in model.weights]


def _blocks(model):
    return [layer for layer in model.layers if layer.name.startswith("stage")]


def _has_shortcut(block):
    return any("/shortcut/" in v.path for v in block.weights)


# -- parameter counts and costs -------------------------------------------------------------------


def test_lecture_mnist_resnet_has_117802_parameters():
    model = keras_resnets.mnist_resnet()
    assert count_params(model) == {"trainable": 117802, "non_trainable": 1600, "total": 119402}
    assert model.output.shape == (None, 10)


# torchvision's sum(p.numel() for p in resnetXX().parameters()); MACs from its model card.
IMAGENET = {
    18: (11_689_512, 1.81e9),
    34: (21_797_672, 3.66e9),
    50: (25_557_032, 4.09e9),
    101: (44_549_160, 7.80e9),
    152: (60_192_808, 11.51e9),
}


@pytest.mark.slow
@pytest.mark.parametrize("depth", sorted(IMAGENET))
def test_imagenet_resnets_match_torchvision(depth, cheap_init):
    model = build_resnet(presets.resnet(depth))
    params, macs = IMAGENET[depth]
    assert count_params(model)["trainable"] == params
    assert model.output.shape == (None, 1000)
    table = parameter_table(model)
    assert sum(r["trainable"] for r in table) == params
    assert sum(r["macs"] for r in table) == pytest.approx(macs, rel=0.005)
    stages = stage_table(model)
    assert [s["name"] for s in stages] == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert [s["output_shape"][:2] for s in stages[1:5]] == [(56, 56), (28, 28), (14, 14), (7, 7)]
    assert sum(s["blocks"] for s in stages) == presets.resnet(depth).num_blocks


@pytest.mark.parametrize(
    ("depth", "params"),
    [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)],
)
def test_cifar_resnets_match_the_paper(depth, params, cheap_init):
    model = keras_resnets.cifar_resnet(depth)
    assert count_params(model)["trainable"] == params
    # Option A: the plain twin has exactly the same parameters.
    assert count_params(keras_resnets.cifar_resnet(depth, residual=False)) == count_params(model)


def test_format_summary_totals():
    model = keras_resnets.mnist_resnet(nb_blocks=3)
    text = format_summary(model)
    total = count_params(model)
    assert text.splitlines()[-1].split()[1:3] == [f"{total['trainable']:,}", f"{total['non_trainable']:,}"]
    rows = parameter_table(model)
    assert [(r["stage"], r["block"]) for r in rows if r["stage"]] == [(1, 1), (1, 2), (1, 3)]
    # 3 blocks of two 3x3 16->16 convolutions on 28x28, the 1x1 stem, the classifier.
    assert sum(r["macs"] for r in rows) == 6 * 9 * 16 * 16 * 784 + 16 * 784 + 16 * 10


# -- the lecture's PyTorch network ----------------------------------------------------------------


class LectureResBlock(nn.Module):
    """Copied from the slides."""

    def __init__(self, nb_channels, kernel_size):
        super(LectureResBlock, self).__init__()
        self.conv1 = nn.Conv2d(nb_channels, nb_channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.bn1 = nn.BatchNorm2d(nb_channels)
        self.conv2 = nn.Conv2d(nb_channels, nb_channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.bn2 = nn.BatchNorm2d(nb_channels)

    def forward(self, x):
        y = self.bn1(self.conv1(x))
        y = F.relu(y)
        y = self.bn2(self.conv2(y))
        y += x
        y = F.relu(y)
        return y


class LectureResNet(nn.Module):
    """Copied from the slides."""

    def __init__(self, nb_channels, kernel_size, nb_blocks):
        super(LectureResNet, self).__init__()
        self.conv0 = nn.Conv2d(1, nb_channels, kernel_size=1)
        self.resblocks = nn.Sequential(
            # A bit of fancy Python
            *(LectureResBlock(nb_channels, kernel_size) for _ in range(nb_blocks))
        )
        self.avg = nn.AvgPool2d(kernel_size=28)
        self.fc = nn.Linear(nb_channels, 10)

    def forward(self, x):
        x = F.relu(self.conv0(x))
        x = self.resblocks(x)
        x = F.relu(self.avg(x))
        x = x.view(x.size(0), -1)
        x = self.fc(x)
        return x


def _lecture_name(name):
    """The Keras path of a module of the lecture's network."""
    if name.startswith("resblocks."):
        _, index, layer = name.split(".")
        return f"stage1_block{int(index) + 1}/{layer}"
    return {"conv0": "stem_conv", "fc": "classifier"}[name]


def test_lecture_pytorch_resnet_has_our_parameter_count():
    torch_model = LectureResNet(nb_channels=16, kernel_size=3, nb_blocks=25)
    assert sum(p.numel() for p in torch_model.parameters()) == 117802
    buffers = sum(b.numel() for name, b in torch_model.named_buffers() if "running" in name)
    assert buffers == 1600  # our non-trainable batch-norm statistics


@pytest.mark.parametrize(("nb_channels", "kernel_size", "nb_blocks"), [(4, 3, 2), (2, 5, 1)])
def test_lecture_pytorch_resnet_and_ours_compute_the_same_function(
    nb_channels, kernel_size, nb_blocks, run, torch_port
):
    torch_model = torch_port.randomise(LectureResNet(nb_channels, kernel_size, nb_blocks), seed=3)
    model = keras_resnets.mnist_resnet(nb_channels, kernel_size, nb_blocks)
    assert count_params(model)["trainable"] == sum(p.numel() for p in torch_model.parameters())
    torch_port.copy(torch_model, model, _lecture_name)
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype("float32")
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)).numpy()
    y = run(model, np.transpose(x, (0, 2, 3, 1)))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


# -- structure ------------------------------------------------------------------------------------


# Small models share a few widths (4 and 8) so that JAX, which compiles every op and every
# random initialiser anew for each new shape, reuses its compilations across tests.
SMALL = {"input_shape": (8, 8, 3), "stem": Stem(filters=4), "stages": (Stage(1, 4), Stage(1, 8, 2))}


def _small_arch(**fields):
    return presets.cifar_resnet(8, **{**SMALL, **fields})


def _small_cifar(**fields):
    return build_resnet(_small_arch(**fields))


def test_every_model_runs_with_the_shape_it_declares(run, rng):
    """Keras takes the symbolic shapes of the blocks from compute_output_shape, without running
    call(); so every kind of model must also really run."""
    models = [  # (presets run in test_serialization, pre-activation CReLU in the linearity test)
        _small_cifar(preactivation=True, shortcut="C", zero_init_last_bn=True, pooling="max"),
        _small_cifar(block="bottleneck", shortcut="B", stages=(Stage(1, 2), Stage(1, 2, 2))),
        _small_cifar(residual=False, activation="crelu", looks_linear=True, pooling="flatten",
                     pool_activation=True),
        _small_cifar(final_survival_probability=0.5, drop_mode="sample", include_top=False),
        build_resnet(input_shape=(6,), stem=Stem(kind="dense", kernel_size=1, filters=8),
                     block="dense", pooling=None, stages=(Stage(2, 8), Stage(1, 4))),
        build_resnet(input_shape=(6,), stem=Stem(kind="none"), block="highway", pooling=None,
                     stages=(Stage(2, 6),), batch_norm=False),
    ]
    for model in models:
        x = rng.standard_normal((2,) + model.input_shape[1:]).astype("float32")
        for training in (False, True):
            y = run(model, x, training=training)
            assert y.shape == (2,) + tuple(model.output.shape[1:]), model.name
            assert np.all(np.isfinite(y))


def test_tiny_inputs_shrink_to_one_pixel_and_still_run(run, rng):
    """Nothing vanishes: a stride-s layer maps n >= 1 pixels to (n - 1) // s + 1 >= 1."""
    model = _small_cifar(input_shape=(2, 2, 3), stages=SMALL["stages"] + (Stage(1, 8, 2),))
    assert [tuple(b.output.shape[1:3]) for b in _blocks(model)] == [(2, 2), (1, 1), (1, 1)]
    assert run(model, rng.standard_normal((2, 2, 2, 3)), training=True).shape == (2, 10)
    assert run(_small_cifar(input_shape=(1, 1, 3)), rng.standard_normal((2, 1, 1, 3))).shape == (2, 10)


@pytest.mark.parametrize(("depth", "last"), [(18, "stage4_block2"), (50, "stage4_block3")])
def test_imagenet_resnets_on_16x16_end_with_1x1_maps(depth, last, cheap_init):
    model = build_resnet(presets.resnet(depth, input_shape=(16, 16, 3)))
    shapes = {s["name"]: s["output_shape"][:2] for s in stage_table(model)}
    assert [shapes[f"stage{i}"] for i in (1, 2, 3, 4)] == [(4, 4), (2, 2), (1, 1), (1, 1)]
    assert tuple(model.get_layer(last).output.shape[1:3]) == (1, 1)


def test_option_b_projects_where_the_shape_changes_and_option_c_everywhere():
    layout = {"stem": Stem(filters=4), "stages": (Stage(2, 4), Stage(2, 8, 2))}
    b = _small_cifar(shortcut="B", **layout)
    assert [_has_shortcut(block) for block in _blocks(b)] == [False, False, True, False]
    c = _small_cifar(shortcut="C", **layout)
    assert all(_has_shortcut(block) for block in _blocks(c))
    a = _small_cifar(shortcut="A", **layout)
    assert not any(_has_shortcut(block) for block in _blocks(a))
    # After an 8-wide stem, with option B the first block of a 4-wide stage projects too.
    b8 = _small_cifar(shortcut="B", stem=Stem(filters=8), stages=(Stage(1, 4),))
    assert _has_shortcut(_blocks(b8)[0])


def test_plain_twins_have_no_shortcuts_and_the_same_layers():
    for shortcut in ("A", "B", "C"):
        arch = _small_arch(shortcut=shortcut)
        residual, plain = build_resnet(arch), build_resnet(arch.replace(residual=False))
        assert not any(_has_shortcut(block) for block in _blocks(plain))
        assert [p for p in _paths(residual) if "/shortcut/" not in p] == _paths(plain)
    mnist = presets.mnist_resnet(nb_blocks=3)
    assert count_params(build_resnet(mnist)) == count_params(build_resnet(mnist, residual=False))


def test_plain_resnet18_lacks_exactly_the_option_b_projections(cheap_init):
    arch = presets.resnet(18, input_shape=(32, 32, 3))
    residual, plain = build_resnet(arch), build_resnet(arch.replace(residual=False))
    projections = sum(c * 2 * c + 2 * 2 * c for c in (64, 128, 256))  # 1x1 conv + BN gamma/beta
    assert count_params(residual)["trainable"] - count_params(plain)["trainable"] == projections


def test_preactivation_placement():
    model = _small_cifar(preactivation=True, stages=(Stage(2, 4), Stage(1, 8, 2)))
    blocks = _blocks(model)
    assert [b.get_config()["preactivate"] for b in blocks] == [False, True, True]
    assert not any(p.startswith("stage1_block1/bn1/") for p in _paths(model))
    assert [layer.name for layer in model.layers[-4:]] == ["post_bn", "post_act", "avg_pool", "classifier"]
    # The stem already ends with BN-ReLU; without one the first block pre-activates itself.
    for stem in (Stem(kind="none"), Stem(filters=4, activation=False)):
        bare = _small_cifar(preactivation=True, stem=stem, stages=(Stage(1, 4),))
        assert _blocks(bare)[0].get_config()["preactivate"] is True
    post = _small_cifar()
    assert "post_bn" not in [layer.name for layer in post.layers]


def test_kernels_start_different():
    """One shared unseeded initialiser gave same-shaped kernels identical weights (regression)."""
    for model in (keras_resnets.mnist_resnet(nb_blocks=3, input_shape=(8, 8, 1)),
                  keras_resnets.crelu_net(3, 4, input_shape=(8, 8, 1))):
        kernels = [keras.ops.convert_to_numpy(v) for v in model.weights if v.path.endswith("/kernel")]
        for i, a in enumerate(kernels):
            for b in kernels[i + 1:]:
                assert a.shape != b.shape or not np.array_equal(a, b)


def test_highway_net_gates_and_plain_twin():
    model = keras_resnets.highway_net(3, 8, transform_gate_bias=-3.0, input_shape=(8, 8, 1))
    biases = [keras.ops.convert_to_numpy(v) for v in model.weights if v.path.endswith("transform_gate/bias")]
    assert len(biases) == 3 and all(np.all(b == -3.0) for b in biases)
    plain = keras_resnets.highway_net(3, 8, residual=False, input_shape=(8, 8, 1))
    assert not any("transform_gate" in p for p in _paths(plain))


def test_channels_first_model_equals_channels_last_model(run, rng):
    arch = _small_arch(input_shape=(7, 7, 3), shortcut="A", stem=Stem(filters=4, pool=True))
    last = build_resnet(arch, data_format="channels_last")
    first = build_resnet(arch, data_format="channels_first")
    assert first.input_shape == (None, 3, 7, 7)
    first.set_weights(last.get_weights())
    x = rng.standard_normal((2, 7, 7, 3)).astype("float32")
    np.testing.assert_allclose(
        run(first, np.transpose(x, (0, 3, 1, 2))), run(last, x), rtol=1e-4, atol=1e-5
    )


def test_global_data_format_is_used_when_unset(data_format):
    model = _small_cifar()
    expected = (None, 8, 8, 3) if data_format == "channels_last" else (None, 3, 8, 8)
    assert model.input_shape == expected


# -- CReLU + looks-linear -------------------------------------------------------------------------


def _linearity_gap(model, run, rng):
    """max |f(a x + b y) - a f(x) - b f(y)| / max |f(x)| in inference mode."""
    shape = (2,) + model.input_shape[1:]
    x = rng.standard_normal(shape).astype("float32")
    y = rng.standard_normal(shape).astype("float32")
    a, b = 0.7, -1.3
    lhs = run(model, a * x + b * y)
    rhs = a * run(model, x) + b * run(model, y)
    return np.abs(lhs - rhs).max() / np.abs(rhs).max()


DENSE_CRELU = {"input_shape": (6,), "stem": Stem(kind="dense", kernel_size=1, filters=4),
               "block": "dense", "pooling": None, "stages": (Stage(3, 4),), "residual": False,
               "activation": "crelu"}


@pytest.mark.parametrize(
    "make",
    [
        lambda ll: keras_resnets.crelu_net(2, 4, input_shape=(8, 8, 1), looks_linear=ll),
        lambda ll: build_resnet(**DENSE_CRELU, looks_linear=ll),
        lambda ll: _small_cifar(preactivation=True, activation="crelu", shortcut="B", looks_linear=ll),
    ],
    ids=["crelu_net", "dense", "preactivation"],
)
def test_crelu_looks_linear_networks_are_linear_at_init_and_not_without_ll(make, run, rng):
    model = make(True)
    assert _linearity_gap(model, run, rng) < 1e-4
    assert _linearity_gap(make(False), run, rng) > 1e-2
    x = rng.standard_normal((2,) + model.input_shape[1:])
    assert run(model, x, training=True).shape == (2, 10)


def test_looks_linear_kernels_follow_a_crelu():
    model = keras_resnets.crelu_net(2, 4, input_shape=(8, 8, 1))
    for v in model.weights:
        if v.path.endswith("/kernel") and not v.path.startswith("stem"):
            w = keras.ops.convert_to_numpy(v)
            np.testing.assert_array_equal(w[..., 0::2, :], -w[..., 1::2, :])


# -- stochastic depth -----------------------------------------------------------------------------


def test_survival_probabilities_decay_linearly_over_all_blocks():
    model = _small_cifar(final_survival_probability=0.5, stages=(Stage(2, 4), Stage(2, 8, 2)), seed=4)
    configs = [b.get_config() for b in _blocks(model)]
    assert [c["survival_probability"] for c in configs] == [linear_decay(l, 4, 0.5) for l in (1, 2, 3, 4)]
    assert configs[-1]["survival_probability"] == 0.5
    assert len({c["seed"] for c in configs}) == 4


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_fit_with_stochastic_depth(mode, rng):
    """A jit-compiled train step on JAX (the seed state is threaded through), plain elsewhere."""
    model = _small_cifar(final_survival_probability=0.5, drop_mode=mode, seed=1)
    drops = [layer for layer in model._flatten_layers() if isinstance(layer, StochasticDepth)]
    assert len(drops) == 2
    before = [keras.ops.convert_to_numpy(d.seed_generator.state) for d in drops]
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True if BACKEND == "jax" else "auto")
    x = rng.standard_normal((4, 8, 8, 3)).astype("float32")
    history = model.fit(x, np.arange(4), batch_size=2, epochs=2, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    after = [keras.ops.convert_to_numpy(d.seed_generator.state) for d in drops]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    p1, p2 = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(p1, p2)


def test_training_outputs_are_random_and_inference_is_not(run, rng):
    model = _small_cifar(final_survival_probability=0.2, drop_mode="sample", seed=2)
    x = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(run(model, x), run(model, x))
    outputs = [run(model, x, training=True) for _ in range(4)]
    assert any(not np.allclose(outputs[0], o) for o in outputs[1:])


# -- docstring examples ---------------------------------------------------------------------------

def _modules_with_examples():
    """Every module of the library and of the explorer's logic (not its pages, which run
    Streamlit when imported) whose docstrings hold an example."""
    root = Path(__file__).resolve().parent.parent
    names = []
    for path in sorted([*root.glob("keras_resnets/**/*.py"), *root.glob("explorer/*.py")]):
        if path.name in ("app.py", "__main__.py") or ">>>" not in path.read_text():
            continue
        names.append(".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__"))
    return names


MODULES = _modules_with_examples()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name.startswith("keras_resnets.experiments.") and keras.backend.backend() != "torch":
        pytest.skip("the experiments' examples train small networks for 100 s in all: they run once, "
                    "in the PyTorch pass (the notebooks check the experiments' claims)")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
