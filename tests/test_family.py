"""The ResNet family (ResNeXt, Wide ResNet, ResNet-D) and the plan behind every face."""

import json

import keras
import numpy as np
import pytest

import keras_resnets
from keras_resnets import PRESETS, Architecture, Stage, Stem, build_resnet, count_params, presets
from keras_resnets.cli import main
from keras_resnets.design.names import block_name, parse_block_name
from keras_resnets.layers import BottleneckBlock, PreActResBlock, Shortcut
from keras_resnets.layers.common import conv_layers
from keras_resnets.models.summary import (
    format_summary,
    parameter_table,
    plan_stage_table,
    stage_table,
)

# Trainable parameters with 1000 classes (10 for the CIFAR net): torchvision's and timm's counts.
FAMILY_COUNTS = {
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "cifar_wide_resnet": 36_479_194,
    "resnet50d": 25_576_264,
}
# Multiply-adds per image of every preset at its defaults as (stem, each stage, head): what the
# summary's own counter (walking the built model's convolutions) gave at 8b6b225, before the
# plan became the one counter.
OLD_MACS = {
    "mnist_resnet": (12_544, (90_316_800,), 160),
    "cifar_resnet20": (442_368, (14_155_776, 12_976_128, 12_976_128), 640),
    "cifar_resnet32": (442_368, (23_592_960, 22_413_312, 22_413_312), 640),
    "cifar_resnet44": (442_368, (33_030_144, 31_850_496, 31_850_496), 640),
    "cifar_resnet56": (442_368, (42_467_328, 41_287_680, 41_287_680), 640),
    "cifar_resnet110": (442_368, (84_934_656, 83_755_008, 83_755_008), 640),
    "resnet18": (118_013_952, (462_422_016, 411_041_792, 411_041_792, 411_041_792), 512_000),
    "resnet34": (118_013_952, (693_633_024, 873_463_808, 1_335_885_824, 642_252_800), 512_000),
    "resnet50": (118_013_952, (667_942_912, 1_027_604_480, 1_464_336_384, 809_238_528), 2_048_000),
    "resnet101": (118_013_952, (667_942_912, 1_027_604_480, 5_176_557_568, 809_238_528), 2_048_000),
    "resnet152": (118_013_952, (667_942_912, 1_901_068_288, 8_015_314_944, 809_238_528), 2_048_000),
    "resnet18d": (357_654_528, (462_422_016, 411_041_792, 411_041_792, 411_041_792), 512_000),
    "resnet34d": (357_654_528, (693_633_024, 873_463_808, 1_335_885_824, 642_252_800), 512_000),
    "resnet50d": (357_654_528, (667_942_912, 1_027_604_480, 1_464_336_384, 809_238_528), 2_048_000),
    "resnet101d": (357_654_528, (667_942_912, 1_027_604_480, 5_176_557_568, 809_238_528), 2_048_000),
    "resnet152d": (357_654_528, (667_942_912, 1_901_068_288, 8_015_314_944, 809_238_528), 2_048_000),
    "resnext50_32x4d": (118_013_952, (634_224_640, 1_085_407_232, 1_525_350_400, 865_435_648), 2_048_000),
    "resnext101_32x8d": (118_013_952, (1_303_773_184, 2_183_659_520, 11_091_705_856, 1_714_814_976), 2_048_000),
    "resnext101_64x4d": (118_013_952, (1_217_069_056, 2_068_054_016, 10_426_974_208, 1_628_110_848), 2_048_000),
    "wide_resnet50_2": (118_013_952, (1_978_138_624, 2_877_292_544, 4_213_178_368, 2_209_349_632), 2_048_000),
    "wide_resnet101_2": (118_013_952, (1_978_138_624, 2_877_292_544, 15_568_207_872, 2_209_349_632), 2_048_000),
    "cifar_wide_resnet": (442_368, (1_677_721_600, 1_782_579_200, 1_782_579_200), 6_400),
    "highway_net": (112_896, (36_126_720,), 160),
    "crelu_net": (112_896, (36_126_720,), 320),
}
BACKEND = keras.backend.backend()
SMALL_IMAGE = (32, 32, 3)
# Deeper twins of built presets: the same blocks, more of them; their plan counts are checked
# against the published ones (above and in test_builders.py), not built again.
DEEPER = {"cifar_resnet32", "cifar_resnet44", "cifar_resnet56", "cifar_resnet110", "resnet34",
          "resnet101", "resnet152", "resnet34d", "resnet101d", "resnet152d", "resnext101_32x8d",
          "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2", "cifar_wide_resnet"}


@pytest.mark.parametrize("name", sorted(FAMILY_COUNTS))
def test_family_presets_have_the_published_counts(name):
    assert PRESETS[name]().plan().count_params()["trainable"] == FAMILY_COUNTS[name]


@pytest.mark.parametrize("name", sorted(set(PRESETS) - DEEPER))
def test_plan_counts_equal_the_built_models(name):
    """Built through the top-level function of the same name where there is one."""
    arch = PRESETS[name]()
    small = {"input_shape": SMALL_IMAGE} if arch.input_shape[0] > 32 else {}
    arch = arch.replace(**small)
    build = getattr(keras_resnets, name, None)
    model = build(**small) if build else build_resnet(arch)
    assert model.name == arch.name
    assert arch.plan().count_params() == count_params(model)
    plan_rows = plan_stage_table(arch.plan())
    assert [r["macs"] for r in stage_table(model)] == [r["macs"] for r in plan_rows]
    # Every block of the plan is a layer of that name, with the planned output width.
    for spec in arch.plan().blocks:
        assert model.get_layer(spec.name).output.shape[-1] == spec.out_channels


def test_cifar_wide_resnet_takes_its_arguments():
    wrn = keras_resnets.cifar_wide_resnet(10, 2, dropout=0.3, classes=100, include_top=False)
    assert wrn.name == "wrn10_2" and wrn.output.shape == (None, 128)
    assert count_params(wrn) == presets.cifar_wide_resnet(
        10, 2, classes=100, include_top=False).plan().count_params()
    assert wrn.get_layer("stage3_block1").dropout == 0.3
    assert isinstance(wrn.get_layer("stage3_block1").dropout_layer, keras.layers.Dropout)
    with pytest.raises(ValueError, match="depth=28.5"):
        presets.cifar_wide_resnet(28.5)


def test_plan_specs_say_what_each_block_is():
    plan = presets.resnext(50, 32, 4, input_shape=(64, 64, 3)).plan()
    first, second, down = plan.blocks[0], plan.blocks[1], plan.blocks[3]
    assert (first.in_channels, first.width, first.groups, first.out_channels) == (64, 128, 32, 256)
    assert (first.shortcut, second.shortcut, down.shortcut) == ("projection", "identity", "projection")
    assert (down.name, down.strides, down.input_size, down.output_size) == (
        "stage2_block1", 2, (16, 16), (8, 8))
    assert plan.stem.output_size == (16, 16) and plan.head.out_channels == 1000
    wrn = presets.cifar_wide_resnet(16, 4, final_survival_probability=0.5).plan()
    assert [b.preactivate for b in wrn.blocks[:2]] == [True, True]  # the stem has no BN-ReLU
    assert wrn.blocks[-1].survival_probability == 0.5
    assert [b.width for b in wrn.blocks] == [64] * 2 + [128] * 2 + [256] * 2
    d = presets.resnet_d(50).plan()
    assert d.stem.convs == ((32, 3, 2), (32, 3, 1), (64, 3, 1))
    assert [b.avg_down for b in d.blocks if b.index == 1] == [False, True, True, True]


def test_every_preset_has_the_multiply_adds_it_had():
    assert set(OLD_MACS) == set(PRESETS)
    for name, (stem, stages, head) in OLD_MACS.items():
        plan = PRESETS[name]().plan()
        counted = tuple(sum(b.cost.macs for b in plan.stage(s)) for s in range(1, len(stages) + 1))
        assert (plan.stem.cost.macs, counted, plan.head.cost.macs) == (stem, stages, head), name
        assert plan.macs() == stem + sum(stages) + head


def test_block_names_are_made_and_parsed_in_one_place():
    for spec in presets.resnet(50).plan().blocks:
        assert spec.name == block_name(spec.stage, spec.index)
        assert parse_block_name(spec.name) == (spec.stage, spec.index)
    assert [parse_block_name(n) for n in ("stage1_block", "xstage1_block1", "stage1_block1/conv1")] == [None] * 3


def test_a_model_without_a_plan_counts_what_it_can():
    """Convolutions and dense layers by the plan's rule; a block's multiply-adds are its plan's,
    unknown in a model that build_resnet did not make (a clone, a loaded file)."""
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert [r["macs"] for r in parameter_table(dense)] == [12]
    clone = keras.models.clone_model(keras_resnets.mnist_resnet(nb_blocks=1))
    assert [r["macs"] for r in parameter_table(clone)] == [12_544, None, 160]
    assert format_summary(clone).splitlines()[-1].endswith("?")


def test_plan_macs_and_activations_follow_the_input_size():
    small = presets.resnet(18, input_shape=(32, 32, 3)).plan()
    large = presets.resnet(18, input_shape=(64, 64, 3)).plan()
    head = small.head.cost.macs  # the classifier does not grow with the image
    assert large.macs() - head == 4 * (small.macs() - head)
    assert large.activations() == 4 * small.activations() - 3 * (small.head.cost.activations)
    assert small.count_params() == large.count_params()


def test_new_fields_round_trip_through_json():
    arch = presets.resnet_d(50, groups=8, width_per_group=16, dropout=0.1,
                            shortcut_batch_norm=False, input_shape=(64, 64, 3))
    data = json.loads(arch.to_json())
    assert (data["groups"], data["width_per_group"], data["avg_down"], data["stem"]["kind"]) == (
        8, 16, True, "deep")
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_dict(data).plan() == arch.plan()


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"groups": 2}, "groups"),  # basic blocks
        ({"block": "bottleneck", "groups": 0}, "groups"),
        ({"block": "bottleneck", "width_per_group": True}, "width_per_group"),
        ({"block": "bottleneck", "width_per_group": 1, "stages": [Stage(1, 16)]},
         r"stages\[0\]\.channels"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"block": "highway", "dropout": 0.2}, "dropout"),
        ({"shortcut": "A", "avg_down": True}, "avg_down"),
        ({"avg_down": "yes"}, "avg_down"),
        ({"shortcut_batch_norm": 0}, "shortcut_batch_norm"),
        ({"stem": {"kind": "deep", "filters": 15}}, "stem.filters"),
        ({"input_shape": (8,), "block": "dense", "pooling": None, "stem": {"kind": "deep"}},
         "stem.kind"),
    ],
)
def test_bad_family_fields_name_the_field(fields, name):
    with pytest.raises(ValueError, match=name):
        Architecture(**fields)


@pytest.mark.parametrize("strides", [1, 2])
def test_grouped_convolution_equals_one_convolution_per_group(run, data_format, rng, strides):
    groups, cin, cout = 4, 8, 12
    layers = conv_layers(cout, 3, strides, use_bias=True, kernel_initializer="he_normal",
                         data_format=data_format, name="g", groups=groups)
    grouped = keras.Sequential(layers)
    x = rng.normal(size=(2, 7, 7, cin)).astype("float32")
    axis = -1 if data_format == "channels_last" else 1
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    y = run(grouped, x)
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in layers[-1].weights)
    assert kernel.shape == (3, 3, cin // groups, cout)
    parts = []
    for g, xg in enumerate(np.split(x, groups, axis=axis)):
        one = keras.Sequential(conv_layers(cout // groups, 3, strides, use_bias=True,
                                           kernel_initializer="zeros", data_format=data_format,
                                           name=f"g{g}"))
        one.build(xg.shape)
        width = cout // groups
        one.layers[-1].set_weights([kernel[..., g * width:(g + 1) * width],
                                    bias[g * width:(g + 1) * width]])
        parts.append(run(one, xg))
    np.testing.assert_allclose(y, np.concatenate(parts, axis=axis), rtol=1e-5, atol=1e-5)


def test_resnext_block_equals_its_equations_with_one_convolution_per_group(run, rng):
    """y = relu(x + bn3(conv3(relu(bn2(concat_g conv2_g(relu(bn1(conv1(x))))))))) in inference."""
    block = BottleneckBlock(8, groups=4, width_per_group=32, data_format="channels_last")
    x = rng.normal(size=(2, 6, 6, 32)).astype("float32")
    block.build(x.shape)
    for w in block.non_trainable_weights:  # move the statistics off their initial values
        w.assign(rng.uniform(0.5, 1.5, size=w.shape).astype("float32"))
    y = run(block, x)
    weights = {w.path.split("/", 1)[1]: keras.ops.convert_to_numpy(w) for w in block.weights}
    assert weights["conv2/kernel"].shape == (3, 3, 4, 16)  # 16 wide inside, 4 groups of 4

    def bn(h, name):
        return ((h - weights[f"{name}/moving_mean"]) / np.sqrt(weights[f"{name}/moving_variance"] + 1e-5)
                * weights[f"{name}/gamma"] + weights[f"{name}/beta"])

    def conv(h, kernel):
        layer = keras.layers.Conv2D(kernel.shape[-1], kernel.shape[0], padding="same", use_bias=False)
        layer.build(h.shape)
        layer.set_weights([kernel])
        return keras.ops.convert_to_numpy(layer(h))

    relu = lambda h: np.maximum(h, 0)  # noqa: E731
    h = relu(bn(conv(x, weights["conv1/kernel"]), "bn1"))
    kernel = weights["conv2/kernel"]
    h = np.concatenate([conv(hg, kernel[..., 4 * g:4 * g + 4])
                        for g, hg in enumerate(np.split(h, 4, axis=-1))], axis=-1)
    h = relu(bn(h, "bn2"))
    expected = relu(x + bn(conv(h, weights["conv3/kernel"]), "bn3"))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_avg_down_shortcut_averages_then_projects(run, data_format, rng):
    shortcut = Shortcut("B", filters=6, strides=2, avg_down=True)
    x = rng.normal(size=(1, 5, 5, 4)).astype("float32")  # odd: a partial window at the edge
    xin = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    y = run(shortcut, xin)
    if data_format == "channels_first":
        y = y.transpose(0, 2, 3, 1)
    pooled = np.stack([np.stack([x[:, i:i + 2, j:j + 2].mean(axis=(1, 2)) for j in (0, 2, 4)], 1)
                       for i in (0, 2, 4)], 1)
    kernel = keras.ops.convert_to_numpy(shortcut.projection.kernel)[0, 0]
    stats = {w.path.split("/")[-1]: keras.ops.convert_to_numpy(w) for w in shortcut.bn.weights}
    expected = (pooled @ kernel - stats["moving_mean"]) / np.sqrt(stats["moving_variance"] + 1e-5)
    np.testing.assert_allclose(y, expected * stats["gamma"] + stats["beta"], rtol=1e-5, atol=1e-5)


def test_deep_stem_layers_and_dropout_behave():
    model = build_resnet(presets.resnet_d(18, input_shape=SMALL_IMAGE))
    names = [layer.name for layer in model.layers[:14]]
    assert names[:4] == ["input", "stem_conv1_pad", "stem_conv1", "stem_bn1"]
    assert "stem_conv3" in names and "stem_bn" in names and "stem_pool" in names
    assert model.get_layer("stem_conv1").kernel.shape == (3, 3, 3, 32)
    block = PreActResBlock(4, dropout=0.5, seed=1, data_format="channels_last")
    x = np.ones((2, 4, 4, 4), "float32")
    inference = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_array_equal(inference, keras.ops.convert_to_numpy(block(x)))
    assert not np.allclose(inference, keras.ops.convert_to_numpy(block(x, training=True)))


def test_a_family_model_trains_one_step(data_format):
    arch = Architecture(
        input_shape=(16, 16, 3), stem=Stem(kind="deep", filters=8, strides=2),
        stages=(Stage(1, 4), Stage(1, 8, 2)), block="bottleneck", groups=2, width_per_group=32,
        avg_down=True, classes=3, seed=0)
    model = build_resnet(arch)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  # TensorFlow has no channels_first convolution on CPU: XLA compiles one.
                  jit_compile=BACKEND == "tensorflow" and data_format == "channels_first" or "auto")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    shape = (4, 16, 16, 3) if data_format == "channels_last" else (4, 3, 16, 16)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    history = model.fit(x, np.array([0, 1, 2, 0]), epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    grouped = [i for i, w in enumerate(model.trainable_weights) if "stage1_block1/conv2" in w.path]
    assert grouped and all(not np.allclose(before[i], after[i]) for i in grouped)


def test_keras_file_of_a_resnext_model_loads_back(tmp_path, run, rng):
    arch = presets.resnext(50, 4, 8, input_shape=(16, 16, 3), classes=5, stages=(
        Stage(1, 8), Stage(1, 16, 2)), stem=Stem(kind="deep", filters=8, strides=2),
        avg_down=True, dropout=0.2, data_format="channels_last")
    model = build_resnet(arch)
    path = tmp_path / "resnext.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    block = loaded.get_layer("stage2_block1")
    assert (block.groups, block.width_per_group, block.avg_down, block.dropout) == (4, 8, True, 0.2)
    x = rng.normal(size=(2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(run(loaded, x), run(model, x), rtol=1e-5, atol=1e-5)


def test_cli_summary_of_a_family_preset_and_set_groups(capsys):
    assert main(["summary", "--preset", "resnext50_32x4d"]) == 0
    out = capsys.readouterr().out
    assert "resnext50_32x4d: depth 50" in out and "25,028,904" in out and "G" in out
    assert main(["summary", "--preset", "resnet50", "--set", "groups=32",
                 "--set", "width_per_group=4"]) == 0
    assert "25,028,904" in capsys.readouterr().out
    assert main(["summary", "--preset", "resnet18", "--set", "groups=2"]) == 2
    assert "groups=2" in capsys.readouterr().err
