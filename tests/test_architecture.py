"""The architecture description: validation, JSON round trips, `replace`, presets (no models)."""

import json

import pytest

from keras_resnets import PRESETS, Architecture, Stage, Stem, get_preset, presets
from keras_resnets.design.architecture import coerce_architecture

VECTORS = {"input_shape": (20,), "stem": Stem(kind="dense", kernel_size=1), "block": "dense",
           "pooling": None, "stages": (Stage(2, 16),)}


# -- JSON and dict round trips --------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    arch = get_preset(name)
    text = arch.to_json()
    assert json.loads(text) == arch.to_dict()
    assert Architecture.from_json(text) == arch
    assert Architecture.from_dict(json.loads(text)) == arch


def test_round_trip_keeps_every_field():
    arch = presets.cifar_resnet(
        32, preactivation=True, shortcut="C", final_survival_probability=0.5, drop_mode="sample",
        zero_init_last_bn=True, bn_momentum=0.99, bn_epsilon=1e-3, seed=7, data_format="channels_first",
        classifier_activation="softmax", input_shape=(24, 24, 3), dtype_policy="mixed_bfloat16",
    )
    back = Architecture.from_json(arch.to_json(indent=2))
    assert back == arch
    assert back.stages[1] == Stage(blocks=5, channels=32, strides=2, kernel_size=3)
    assert isinstance(back.stem, Stem) and isinstance(back.stages, tuple)
    assert back.input_shape == (24, 24, 3)


def test_to_dict_is_plain_json_data():
    data = presets.mnist_resnet().to_dict()
    assert isinstance(data["input_shape"], list)
    assert isinstance(data["stages"], list) and isinstance(data["stages"][0], dict)
    assert isinstance(data["stem"], dict)
    assert json.loads(json.dumps(data)) == data


def test_stem_and_stages_may_be_given_as_dicts_and_lists():
    arch = Architecture(stem={"filters": 8}, stages=[{"blocks": 2, "channels": 8}], input_shape=[16, 16, 3])
    assert arch.stem == Stem(filters=8)
    assert arch.stages == (Stage(2, 8),)
    assert arch.input_shape == (16, 16, 3)
    assert arch == Architecture(stem=Stem(filters=8), stages=(Stage(2, 8),), input_shape=(16, 16, 3))


def test_replace_returns_a_validated_copy():
    arch = presets.cifar_resnet(20)
    plain = arch.replace(residual=False)
    assert plain.residual is False and arch.residual is True
    assert plain.replace(residual=True) == arch
    assert arch.replace(stem={"filters": 8}).stem.filters == 8
    with pytest.raises(ValueError, match="final_survival_probability"):
        plain.replace(final_survival_probability=0.5)
    with pytest.raises(ValueError, match="unknown field.*'depth'"):
        arch.replace(depth=32)


def test_architecture_is_immutable_and_hashable_by_value():
    arch = presets.mnist_resnet()
    with pytest.raises(AttributeError):
        arch.residual = False
    assert arch == presets.mnist_resnet() and arch != presets.mnist_resnet(nb_blocks=3)


def test_coerce_accepts_instance_dict_json_and_overrides():
    arch = presets.cifar_resnet(20)
    assert coerce_architecture(arch) is arch
    assert coerce_architecture(arch.to_dict()) == arch
    assert coerce_architecture(arch.to_json()) == arch
    assert coerce_architecture(arch, residual=False) == arch.replace(residual=False)
    assert coerce_architecture(None, classes=3).classes == 3
    with pytest.raises(ValueError, match="unknown field"):
        coerce_architecture(arch, colour="red")
    with pytest.raises(ValueError, match="architecture"):
        coerce_architecture(42)


# -- derived facts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "depth", "blocks"),
    [
        (presets.resnet(18), 18, 8),
        (presets.resnet(34), 34, 16),
        (presets.resnet(50), 50, 16),
        (presets.resnet(101), 101, 33),
        (presets.resnet(152), 152, 50),
        (presets.cifar_resnet(20), 20, 9),
        (presets.cifar_resnet(110), 110, 54),
        (presets.mnist_resnet(), 52, 25),
    ],
)
def test_depth_counts_weighted_layers_as_the_papers(arch, depth, blocks):
    assert arch.depth == depth
    assert arch.num_blocks == blocks


def test_presets_follow_the_papers():
    r50 = presets.resnet(50)
    assert [s.blocks for s in r50.stages] == [3, 4, 6, 3]
    assert [s.channels for s in r50.stages] == [64, 128, 256, 512]
    assert [s.strides for s in r50.stages] == [1, 2, 2, 2]
    assert r50.stem == Stem(kind="conv", filters=64, kernel_size=7, strides=2, pool=True)
    assert (r50.block, r50.shortcut, r50.classes, r50.input_shape) == ("bottleneck", "B", 1000, (224, 224, 3))
    c56 = presets.cifar_resnet(56)
    assert [(s.blocks, s.channels, s.strides) for s in c56.stages] == [(9, 16, 1), (9, 32, 2), (9, 64, 2)]
    assert c56.shortcut == "A"
    mnist = presets.mnist_resnet()
    assert mnist.stem.kernel_size == 1 and mnist.stem.use_bias and not mnist.stem.batch_norm
    assert mnist.use_bias and mnist.pool_activation and mnist.stages == (Stage(25, 16),)
    assert get_preset("resnet18", residual=False).name == "imagenet18_plain"
    assert get_preset("crelu_net", looks_linear=False).looks_linear is False
    assert presets.highway_net().block == "highway"


# -- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        # counts and sizes
        ({"stages": [{"blocks": 0, "channels": 16}]}, r"stages\[0\]\.blocks"),
        ({"stages": [{"blocks": -1, "channels": 16}]}, r"stages\[0\]\.blocks"),
        ({"stages": [Stage(2, 16), Stage(2, 0, 2)]}, r"stages\[1\]\.channels"),
        ({"stages": [{"blocks": 1, "channels": 16, "strides": 0}]}, r"stages\[0\]\.strides"),
        ({"stages": [{"blocks": 1, "channels": 16, "kernel_size": 4}]}, r"stages\[0\]\.kernel_size"),
        ({"stages": []}, "stages"),
        ({"stages": {"blocks": 1, "channels": 2}}, "stages"),
        ({"stages": [(1, 16)]}, r"stages\[0\]"),
        ({"stem": {"kernel_size": 2}}, "stem.kernel_size"),
        ({"stem": {"filters": 0}}, "stem.filters"),
        ({"stem": {"strides": 0}}, "stem.strides"),
        ({"stem": {"kind": "stacked"}}, "stem.kind"),
        ({"stem": "conv"}, "stem"),
        ({"classes": 0}, "classes"),
        ({"input_shape": (0, 28, 1)}, r"input_shape\[0\]"),
        ({"input_shape": (28, 28)}, "input_shape"),
        ({"input_shape": "28x28x1"}, "input_shape"),
        ({"name": ""}, "name"),
        ({"seed": -1}, "seed"),
        # wrong types: strings for ints, bools where numbers are expected, numbers for bools
        ({"stages": [{"blocks": "2", "channels": 16}]}, r"stages\[0\]\.blocks"),
        ({"stages": [{"blocks": 2.0, "channels": 16}]}, r"stages\[0\]\.blocks"),
        ({"stages": [{"blocks": True, "channels": 16}]}, r"stages\[0\]\.blocks"),
        ({"stem": {"filters": "16"}}, "stem.filters"),
        ({"classes": "10"}, "classes"),
        ({"input_shape": ("28", 28, 1)}, r"input_shape\[0\]"),
        ({"bn_momentum": True}, "bn_momentum"),
        ({"bn_momentum": "0.9"}, "bn_momentum"),
        ({"bn_epsilon": 0}, "bn_epsilon"),
        ({"final_survival_probability": True}, "final_survival_probability"),
        ({"final_survival_probability": 0.0}, "final_survival_probability"),
        ({"final_survival_probability": 1.5}, "final_survival_probability"),
        ({"transform_gate_bias": "-2"}, "transform_gate_bias"),
        ({"residual": 1}, "residual"),
        ({"preactivation": "yes"}, "preactivation"),
        ({"stem": {"pool": 0}}, "stem.pool"),
        ({"seed": 1.5}, "seed"),
        # unknown names
        ({"block": "resnext"}, "block"),
        ({"shortcut": "D"}, "shortcut"),
        ({"shortcut": "a"}, "shortcut"),
        ({"activation": "sigmoid"}, "activation"),
        ({"drop_mode": "row"}, "drop_mode"),
        ({"pooling": "mean"}, "pooling"),
        ({"classifier_activation": "sigmoid"}, "classifier_activation"),
        ({"data_format": "NCHW"}, "data_format"),
        ({"dtype_policy": "bfloat16"}, "dtype_policy"),
        # combinations
        ({"activation": "crelu"}, "activation"),
        ({"activation": "crelu", "residual": True, "block": "bottleneck"}, "activation"),
        ({"looks_linear": True}, "looks_linear"),
        ({"activation": "crelu", "residual": False, "looks_linear": True, "stem": {"kind": "none"}},
         "looks_linear"),
        ({"activation": "crelu", "residual": False, "looks_linear": True, "stem": {"activation": False}},
         "looks_linear"),
        ({"residual": False, "final_survival_probability": 0.5}, "final_survival_probability"),
        ({"block": "highway", "final_survival_probability": 0.5}, "final_survival_probability"),
        ({"block": "highway", "stages": [Stage(2, 32)]}, r"stages\[0\]\.channels"),
        ({"block": "highway", "preactivation": True}, "preactivation"),
        ({"block": "highway", "activation": "crelu", "residual": False}, "activation"),
        ({"shortcut": "A", "stem": {"filters": 32}}, r"stages\[0\]\.channels"),
        ({"shortcut": "A", "stages": [Stage(1, 16), Stage(1, 8, 2)]}, r"stages\[1\]\.channels"),
        ({"shortcut": "A", "block": "bottleneck", "stages": [Stage(1, 3)]}, r"stages\[0\]\.channels"),
        ({"shortcut": "A", "activation": "crelu", "preactivation": True}, r"stages\[0\]\.channels"),
        ({"block": "dense"}, "block"),
        ({"stem": {"kind": "dense", "kernel_size": 1}}, "stem.kind"),
        ({"pooling": None}, "pooling"),
        ({**VECTORS, "preactivation": True}, "preactivation"),
        ({**VECTORS, "block": "basic"}, "block"),
        ({**VECTORS, "stem": Stem(kind="conv")}, "stem.kind"),
        ({**VECTORS, "pooling": "avg"}, "pooling"),
        ({**VECTORS, "stages": (Stage(2, 16, strides=2),)}, r"stages\[0\]\.strides"),
        ({**VECTORS, "stem": Stem(kind="dense", kernel_size=3)}, "stem.kind"),
    ],
)
def test_bad_fields_raise_a_value_error_naming_them(fields, name):
    with pytest.raises(ValueError, match=name):
        Architecture(**fields)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"depth": 50}, r"architecture has unknown field\(s\) \['depth'\]"),
        ({"stem": {"filters": 8, "dilation": 2}}, r"stem has unknown field\(s\) \['dilation'\]"),
        ({"stages": [{"blocks": 1, "channels": 8, "groups": 32}]}, r"stages\[0\] has unknown field"),
        ([1, 2], "architecture"),
    ],
)
def test_from_dict_rejects_unknown_keys(data, where):
    with pytest.raises(ValueError, match=where):
        Architecture.from_dict(data)


def test_option_a_may_keep_or_widen_channels():
    Architecture(shortcut="A", stages=(Stage(1, 16), Stage(1, 32, 2)))
    Architecture(shortcut="A", block="bottleneck", stages=(Stage(1, 4), Stage(1, 8, 2)))
    Architecture(shortcut="A", stem={"filters": 32}, residual=False)  # no shortcuts at all
    Architecture(shortcut="B", stem={"filters": 32})


def test_error_messages_say_what_is_allowed():
    with pytest.raises(ValueError) as info:
        Architecture(shortcut="D")
    assert "'D'" in str(info.value) and "('A', 'B', 'C')" in str(info.value)
    with pytest.raises(ValueError) as info:
        Architecture.from_dict({"clases": 10})
    assert "classes" in str(info.value)  # the allowed fields are listed


@pytest.mark.parametrize("depth", [19, 21, 0, 2, -4, "20", 20.0, True])
def test_cifar_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match="depth"):
        presets.cifar_resnet(depth)


@pytest.mark.parametrize("depth", [8, 14, 20, 26, 1202])
def test_cifar_valid_depths(depth):
    assert presets.cifar_resnet(depth).depth == depth


@pytest.mark.parametrize("depth", [0, 20, 200, "50", 50.0])
def test_imagenet_depth_must_be_one_of_the_paper(depth):
    with pytest.raises(ValueError, match="depth"):
        presets.resnet(depth)


def test_unknown_preset():
    with pytest.raises(ValueError, match="preset='resnet200'"):
        get_preset("resnet200")


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: presets.mnist_resnet(nb_blocks=0), "blocks"),
        (lambda: presets.mnist_resnet(nb_channels=-16), "stem.filters"),
        (lambda: presets.mnist_resnet(kernel_size=2), "kernel_size"),
        (lambda: presets.mnist_resnet(classes=0), "classes"),
        (lambda: presets.highway_net(nb_layers="10"), "blocks"),
        (lambda: presets.crelu_net(residual=True), "activation"),
        (lambda: presets.resnet(18, shortcut="E"), "shortcut"),
        (lambda: presets.cifar_resnet(20, colour="red"), "colour"),
    ],
)
def test_preset_arguments_are_validated(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_nothing_vanishes_with_symmetric_padding():
    """With odd kernels padded by (k - 1) // 2 a map of n >= 1 pixels becomes
    (n - 1) // s + 1 >= 1 pixels: no input is too small, the maps end at 1x1 (see test_builders)."""
    for arch in (presets.resnet(50, input_shape=(16, 16, 3)), presets.resnet(152, input_shape=(1, 1, 3)),
                 presets.cifar_resnet(20, input_shape=(1, 1, 3))):
        arch.validate()
