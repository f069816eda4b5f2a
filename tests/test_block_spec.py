"""One block spec behind every face: each block's `Anatomy` (its plan's) is what the Keras
model runs, what the diagrams draw and what the PyTorch export runs, layer by layer.

Every preset is checked in a small form: its first two stages of at most two blocks (a first
block, strided or projecting, and a later one: every kind of block it has) on a small input;
presets whose small forms are the same are checked once. The designs below add what no preset
has at its defaults.
"""

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_resnets import PRESETS, Architecture, build_resnet, count_params, presets
from keras_resnets.interop.export_torch import torch_class_name, torch_source
from keras_resnets.layers import CReLU, blocks, highway, shortcut
from keras_resnets.layers.fast import ReLU

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from explorer import diagram  # noqa: E402

SMALL_IMAGE = (32, 32, 3)
DESIGNS = {
    "preact_activating_stem_projection": presets.cifar_resnet(
        20, preactivation=True, shortcut="B", input_shape=(16, 16, 3)),
    "preact_option_a": presets.cifar_resnet(20, preactivation=True, input_shape=(16, 16, 3)),
    "preact_bottleneck_groups_avg_down": presets.resnet_d(
        50, preactivation=True, groups=2, width_per_group=32, input_shape=SMALL_IMAGE),
    "preact_crelu_option_c": presets.cifar_resnet(
        20, activation="crelu", preactivation=True, shortcut="C", input_shape=(16, 16, 3)),
    "plain_twin": presets.cifar_resnet(20, residual=False, input_shape=(16, 16, 3)),
    "dropout_option_c": presets.cifar_wide_resnet(10, 1, dropout=0.3, shortcut="C"),
    "stochastic_depth_no_batch_norm": presets.cifar_resnet(
        20, shortcut="B", batch_norm=False, final_survival_probability=0.5, input_shape=(16, 16, 3)),
    "dropout_basic": presets.cifar_resnet(8, dropout=0.3, shortcut="B", input_shape=(16, 16, 3)),
    **{f"dropout_bottleneck{'_preact' * pre}": presets.cifar_resnet(
        8, block="bottleneck", dropout=0.3, preactivation=pre, input_shape=(16, 16, 3))
       for pre in (False, True)},
    "preact_no_batch_norm_plain_twin": presets.cifar_resnet(
        8, preactivation=True, batch_norm=False, residual=False, input_shape=(16, 16, 3)),
    "highway_plain": presets.highway_net(2, residual=False),
    "highway_vectors": Architecture(
        name="highway_vectors", input_shape=(20,), block="highway", pooling=None, batch_norm=True,
        stem={"kind": "dense", "filters": 12, "kernel_size": 1}, stages=({"blocks": 2, "channels": 12},)),
    **{f"dense_option_{option.lower()}": Architecture(
        name="dense", input_shape=(20,), block="dense", pooling=None, shortcut=option,
        stem={"kind": "dense", "filters": 12, "kernel_size": 1}, stages=({"blocks": 2, "channels": 16},))
       for option in ("A", "C")},
}
KERAS_KINDS = {"conv": (keras.layers.Conv2D, keras.layers.Dense),
               "norm": keras.layers.BatchNormalization, "act": (ReLU, CReLU, keras.layers.Activation),
               "dropout": keras.layers.Dropout, "pool": keras.layers.AveragePooling2D}
DRAWN_KINDS = {"#fde9c9": "conv", "#dbeafe": "norm", "#dcfce7": "act", "#ede9fe": "dropout",
               "#fce7f3": "gate"}
"""The fill colour of a diagram's node: the kind of layer it draws."""


def _small(arch):
    """``arch`` with its first two stages (later ones repeat the second, wider) of at most two
    blocks, on an image of at most 32x32."""
    stages = tuple(dataclasses.replace(stage, blocks=min(stage.blocks, 2)) for stage in arch.stages[:2])
    large = len(arch.input_shape) == 3 and arch.input_shape[0] > SMALL_IMAGE[0]
    return arch.replace(stages=stages, input_shape=SMALL_IMAGE if large else arch.input_shape)


def _cases():
    """Each preset whose small form no earlier one has, and the designs."""
    cases, seen = {}, set()
    for name in PRESETS:
        arch = _small(PRESETS[name]())
        if arch.replace(name="x") not in seen:
            seen.add(arch.replace(name="x"))
            cases[name] = arch
    return {**cases, **{name: _small(arch) for name, arch in DESIGNS.items()}}


CASES = _cases()


# -- the Keras blocks ----------------------------------------------------------------------------
def _record(monkeypatch):
    """Every sub-layer call of the blocks, shortcuts and highway layers as
    ``(parent, layer, input, output)``, in order."""
    calls = []

    def call_sublayer(parent, layer, inputs, **kwargs):
        out = layer(inputs, **kwargs)
        calls.append((parent, layer, inputs, out))
        return out

    for module in (blocks, shortcut, highway):
        monkeypatch.setattr(module, "call_sublayer", call_sublayer)
    return calls


def _check_types(calls, layers):
    for (_, keras_layer, _, _), layer in zip(calls, layers, strict=True):
        assert isinstance(keras_layer, KERAS_KINDS[layer.kind]), (keras_layer, layer)


def _check_block(block, spec, monkeypatch):
    """The block's calls: its branch (and gate), stochastic depth, its shortcut on x̂ (with
    the shortcut's own layers), its post-activation."""
    anatomy = spec.anatomy
    x = np.random.default_rng(0).normal(size=(1, *block.input.shape[1:])).astype("float32")
    calls = _record(monkeypatch)
    block(x, training=False)
    monkeypatch.undo()
    block_input = next(c for c in calls if c[0] is block)[2]
    calls = [c for c in calls if not isinstance(c[1], keras.layers.ZeroPadding2D)]  # a conv's padding
    own = [c for c in calls if c[0] is block]
    first, post = [*anatomy.branch, *anatomy.gate], list(anatomy.post)
    merge = ["stochastic_depth"] * (spec.survival_probability < 1.0) + ["shortcut"] * bool(anatomy.shortcut)
    assert [c[1].name for c in own] == [layer.name for layer in first] + merge + [layer.name for layer in post]
    _check_types(own[:len(first)], first)
    _check_types(own[len(own) - len(post):], post)
    if anatomy.shortcut:
        projection = [layer for layer in anatomy.shortcut if layer.kind != "zero_pad"]
        inner = [c for c in calls if c[0] is block.shortcut_layer]
        assert [c[1].name for c in inner] == [layer.name for layer in projection]
        _check_types(inner, projection)
        x_hat = own[anatomy.shares - 1][3] if anatomy.shares else block_input
        assert own[len(first) + len(merge) - 1][2] is x_hat


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_blocks_run_their_spec(name, monkeypatch):
    """Each block calls the layers of its anatomy in order (its shortcut on x̂), and has the
    plan's output shape and parameters."""
    arch = CASES[name]
    model = build_resnet(arch)
    channels_first = keras.config.image_data_format() == "channels_first" and len(arch.input_shape) == 3
    for spec in arch.plan().blocks:
        block = model.get_layer(spec.name)
        shape = (*spec.output_size, spec.out_channels)
        assert tuple(block.output.shape[1:]) == (shape[-1:] + shape[:-1] if channels_first else shape)
        assert count_params(block) == {"trainable": spec.cost.trainable, "non_trainable": spec.cost.non_trainable,
                                       "total": spec.cost.trainable + spec.cost.non_trainable}
        _check_block(block, spec, monkeypatch)


# -- the diagrams --------------------------------------------------------------------------------
_NODE = re.compile(r'^  (\w+) \[label="([^"]*)", shape=\w+, style="rounded,filled", fillcolor="(#\w+)"', re.MULTILINE)


def _nodes(dot):
    """``{name: (label, kind)}`` of the filled nodes of a DOT picture."""
    return {name: (label, DRAWN_KINDS.get(color)) for name, label, color in _NODE.findall(dot)}


def _check_block_picture(arch, stage, first):
    blocks_of_stage = arch.plan().stage(stage)
    spec = blocks_of_stage[0 if first else min(1, len(blocks_of_stage) - 1)]
    anatomy, dot = spec.anatomy, diagram.block_dot(arch, stage - 1, first)
    nodes = _nodes(dot)
    branch = [nodes[f"l{i}"] for i in range(len(anatomy.branch))]
    assert f"l{len(anatomy.branch)}" not in nodes
    assert [kind for _, kind in branch] == [layer.kind for layer in anatomy.branch]
    for (label, kind), layer in zip(branch, anatomy.branch):
        if kind in ("conv", "norm") and arch.block != "highway":  # H and T are named so there
            assert label.split("\n")[0] == layer.name
    assert [nodes[f"post{i}"][1] for i in range(len(anatomy.post))] == [layer.kind for layer in anatomy.post]
    drawn = sum(kind in ("conv", "norm", "act") for _, kind in nodes.values())
    counted = sum(layer.kind in ("conv", "norm", "act") for layer in anatomy.branch + anatomy.post)
    assert drawn == counted, dot
    assert ("short" in nodes) == bool(anatomy.shortcut) and ("t" in nodes) == bool(anatomy.gate)
    if anatomy.shortcut:
        source = f"l{anatomy.shares - 1}" if anatomy.shares else "x"
        assert f"  {source} -> short " in dot  # x̂
        assert len(nodes["short"][0].split("\n")) - 1 == sum(layer.kind != "norm" for layer in anatomy.shortcut)


def _check_network_picture(arch):
    """One box per convolution of each block (per highway layer), and a skip arc around each
    residual block's boxes."""
    dot, plan = diagram.network_dot(arch, expand=True), arch.plan()
    nodes = _nodes(dot)
    if arch.block == "highway":
        assert sum("highway" in label for label, _ in nodes.values()) == len(plan.blocks)
        return
    first = int(re.search(r"-> n(\d+) \[label=", dot).group(1))  # the first block's input shape
    boxes = [name for name, (_, kind) in nodes.items() if kind == "conv" and int(name[1:]) >= first]
    convs = [len(block.anatomy.convs) for block in plan.blocks]
    assert len(boxes) == sum(convs)
    arcs = re.findall(r"  n(\d+):e -> n(\d+):e", dot.replace("input:e", "n0:e"))
    residual = [n for n, block in zip(convs, plan.blocks) if block.anatomy.shortcut is not None]
    assert [int(b) - int(a) for a, b in arcs] == residual


@pytest.mark.parametrize("name", sorted(CASES))
def test_diagrams_draw_their_spec(name):
    arch = CASES[name]
    for stage in range(1, len(arch.stages) + 1):
        for first in (True, False):
            _check_block_picture(arch, stage, first)
    _check_network_picture(arch)


def test_a_preactivation_block_after_an_activating_stem_is_drawn_without_a_bn_relu():
    """The stem's BN-ReLU is the first block's (He et al. 2016, appendix): the model has no
    bn1 or act1 there, and the picture neither."""
    dot = diagram.block_dot(DESIGNS["preact_activating_stem_projection"], 0, True)
    assert '"bn1"' not in dot and 'l0 [label="conv1' in dot


# -- the PyTorch export --------------------------------------------------------------------------
def _exported(arch):
    try:
        torch_source(arch)
    except ValueError as error:  # a part the export refuses, with a reason
        assert "is not supported by the PyTorch export" in str(error)
        return False
    return True


@pytest.mark.parametrize("name", sorted(name for name in CASES if _exported(CASES[name])))
def test_the_pytorch_export_runs_their_spec(name, tmp_path):
    """Each exported block runs the modules of its anatomy in order, its shortcut on x̂, with
    the plan's parameters."""
    torch = pytest.importorskip("torch")
    arch = CASES[name]
    path = tmp_path / "exported.py"
    path.write_text(torch_source(arch))
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = getattr(module, torch_class_name(arch))().eval()
    calls = []
    for block_spec in arch.plan().blocks:
        for sub_name, sub in getattr(net, block_spec.name).named_modules():
            if sub_name and not list(sub.children()):
                sub.register_forward_hook(lambda m, args, out, key=f"{block_spec.name}.{sub_name}":
                                          calls.append((key, m, args[0], out)))
    shape = arch.input_shape if len(arch.input_shape) == 1 else (arch.input_shape[2], *arch.input_shape[:2])
    with torch.no_grad():
        net(torch.zeros((1, *shape)))
    nn = torch.nn
    torch_kinds = {"conv": (nn.Conv2d, nn.Linear), "norm": (nn.BatchNorm1d, nn.BatchNorm2d),
                   "act": (nn.ReLU, module.CReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Identity),
                   "zero_pad": module.ZeroPad}
    for block_spec in arch.plan().blocks:
        anatomy, prefix = block_spec.anatomy, block_spec.name + "."
        own = [c for c in calls if c[0].startswith(prefix)]
        layers = [*anatomy.branch, *(anatomy.shortcut or ()), *anatomy.post]
        names = [prefix + layer.name for layer in anatomy.branch]
        names += [prefix + "drop"] * (block_spec.survival_probability < 1.0)
        names += [f"{prefix}shortcut.{layer.name}" for layer in anatomy.shortcut or ()]
        assert [c[0] for c in own] == names + [prefix + layer.name for layer in anatomy.post]
        steps = [c for c in own if c[0] != prefix + "drop"]
        for (_, m, _, _), layer in zip(steps, layers, strict=True):
            assert isinstance(m, torch_kinds[layer.kind]), (m, layer)
        if anatomy.shortcut:
            x_hat = own[anatomy.shares - 1][3] if anatomy.shares else own[0][2]
            assert steps[len(anatomy.branch)][2] is x_hat
        block = getattr(net, block_spec.name)
        assert sum(p.numel() for p in block.parameters()) == block_spec.cost.trainable
