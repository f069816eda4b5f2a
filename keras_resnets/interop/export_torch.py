"""The design as a plain PyTorch source file: `torch_source` writes an ``nn.Module`` that builds
the same network, and a function that copies a Keras model's weights into it.

The file imports only ``torch``. Its modules carry the Keras layers' names
(``stage1_block1.conv1`` for ``stage1_block1/conv1``), so copying weights is a renaming plus
a transposition of kernels; `keras_weights` gives the arrays to copy. It takes NCHW images
whatever the Keras model's ``data_format``. Highway blocks are not exported.

Example:
>>> from keras_resnets import presets
>>> source = torch_source(presets.mnist_resnet())
>>> "class MnistResnet(nn.Module):" in source and "def load_keras_weights" in source
True
"""

import json

import keras
import numpy as np

from keras_resnets.design.architecture import coerce_architecture

KERAS_TO_TORCH = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
                  "moving_mean": "running_mean", "moving_variance": "running_var"}
"""Keras variable name -> PyTorch parameter or buffer name (one home: the file embeds it)."""

_RUNTIME = '''import torch
import torch.nn.functional as F
from torch import nn

KERAS_TO_TORCH = %(names)s


class CReLU(nn.Module):
    """relu(x) and relu(-x), interleaved along the channels: the width doubles."""

    def forward(self, x):
        return torch.stack([F.relu(x), F.relu(-x)], dim=2).flatten(1, 2)


def activation(name):
    return {"relu": nn.ReLU, "crelu": CReLU, "elu": nn.ELU, "gelu": nn.GELU, "swish": nn.SiLU,
            "tanh": nn.Tanh, "linear": nn.Identity}[name]()


def linear(in_channels, out_channels, kernel_size, stride, bias, vectors):
    """A convolution padded by (k - 1) // 2 on each side, or a Linear layer for vectors."""
    if vectors:
        return nn.Linear(in_channels, out_channels, bias=bias)
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=bias)


def norm(channels, eps, momentum, vectors):
    return (nn.BatchNorm1d if vectors else nn.BatchNorm2d)(channels, eps=eps, momentum=momentum)


class ZeroPad(nn.Module):
    """Option A: subsample by `stride` and append zero channels up to `filters`."""

    def __init__(self, filters, stride):
        super().__init__()
        self.filters, self.stride = filters, stride

    def forward(self, x):
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, [0, 0] * (x.dim() - 2) + [0, self.filters - x.shape[1]])


class Layers(nn.Module):
    """Named modules, run in order (a shortcut's)."""

    def __init__(self, layers):
        super().__init__()
        for name, module in layers:
            self.add_module(name, module)

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x


class StochasticDepth(nn.Module):
    """Keeps the branch with probability p: per batch (scaled by p at test) or per sample."""

    def __init__(self, p, mode):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, h):
        if not self.training:
            return h * self.p if self.mode == "batch" else h
        if self.mode == "batch":
            return h if torch.rand(()) < self.p else h * 0
        keep = torch.rand((h.shape[0],) + (1,) * (h.dim() - 1), device=h.device) < self.p
        return h * keep.to(h.dtype) / self.p


class Block(nn.Module):
    """y = post(shortcut(x_hat) + drop(branch(x))), its (name, module) pairs in the order of
    keras_resnets.design.anatomy; x_hat is x after the first `shares` layers of the branch
    (the pre-activation a projection shares with it). `shortcut`: None for no skip, [] for the
    identity."""

    def __init__(self, branch, shortcut=None, shares=0, post=(), survival_probability=1.0,
                 drop_mode="batch"):
        super().__init__()
        self.order, self.post = [name for name, _ in branch], [name for name, _ in post]
        for name, module in [*branch, *post]:
            self.add_module(name, module)
        self.residual, self.shares = shortcut is not None, shares
        self.shortcut = Layers(shortcut) if shortcut else None
        self.drop = StochasticDepth(survival_probability, drop_mode) if survival_probability < 1 else None

    def forward(self, x):
        h = x_hat = x
        for i, name in enumerate(self.order):
            if i == self.shares:
                x_hat = h
            h = getattr(self, name)(h)
        if self.drop is not None:
            h = self.drop(h)
        if self.residual:
            h = h + (x if self.shortcut is None else self.shortcut(x_hat))
        for name in self.post:
            h = getattr(self, name)(h)
        return h


class MaxPool3x3(nn.Module):
    """Zero padding of 1, then 3x3 max pooling with stride 2 (as the Keras stem pads)."""

    def forward(self, x):
        return F.max_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 2)


class GlobalPool(nn.Module):
    """avg or max over the map, or flatten in Keras' (height, width, channel) order."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "avg":
            return x.mean(dim=(2, 3))
        if self.kind == "max":
            return x.amax(dim=(2, 3))
        return x.permute(0, 2, 3, 1).flatten(1)


def load_keras_weights(module, arrays):
    """Copies Keras weights into `module`.

    `arrays` maps Keras weight paths ("stage1_block1/conv1/kernel") to arrays, e.g.
    keras_resnets.interop.export_torch.keras_weights(model); every parameter and batch-norm
    statistic of `module` must get one, with the right shape.
    """
    state = module.state_dict()
    copied = set()
    for path, array in arrays.items():
        *layers, variable = path.split("/")
        key = ".".join(layers + [KERAS_TO_TORCH[variable]])
        value = torch.tensor(array, dtype=torch.float32)
        if variable == "kernel":
            value = value.permute(3, 2, 0, 1) if value.dim() == 4 else value.T
        if key not in state or state[key].shape != value.shape:
            raise ValueError(f"{path} {tuple(value.shape)} has no PyTorch counterpart of that shape ({key}).")
        state[key] = value
        copied.add(key)
    missing = [key for key in state if key not in copied and not key.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"No Keras weight for {missing[:5]} ({len(missing)} in all).")
    module.load_state_dict(state)
    return module
'''


def torch_class_name(architecture):
    """The name of the exported module's class: the design's name in CamelCase.

    >>> from keras_resnets import presets
    >>> torch_class_name(presets.cifar_resnet(20))
    'Cifar20Resnet'
    """
    words = "".join(ch if ch.isalnum() else " " for ch in architecture.name).split()
    name = "".join(word[:1].upper() + word[1:] for word in words) or "Net"
    return name if name[0].isalpha() else f"Net{name}"


def _not_exported(arch):
    """The fields of ``arch`` whose parts the PyTorch export does not write, with their values."""
    fields = (
        ("block", arch.block, arch.block != "highway"),
        ("stem.kind", arch.stem.kind, arch.stem.kind != "deep"),
        ("groups", arch.groups, arch.groups == 1),
        ("avg_down", arch.avg_down, not arch.avg_down),
        ("dropout", arch.dropout, arch.dropout == 0),
        ("shortcut_batch_norm", arch.shortcut_batch_norm, arch.shortcut_batch_norm or not arch.batch_norm),
    )
    return {name: value for name, value, covered in fields if not covered}


def _layers(arch):
    """``(name, constructor source)`` of the network's modules, in the order they run; every
    width from the design's `keras_resnets.design.plan.Plan`."""
    plan, stem, layers = arch.plan(), arch.stem, []
    if plan.stem is not None:
        vectors = len(arch.input_shape) == 1
        kernel = f"{plan.stem.in_channels}, {stem.filters}, {stem.kernel_size}, {stem.strides}, {stem.use_bias}, {vectors}"
        layers.append(("stem_dense" if vectors else "stem_conv", f"linear({kernel})"))
        if stem.batch_norm:
            layers.append(("stem_bn", f"norm({stem.filters}, **bn)"))
        if stem.activation:
            layers.append(("stem_act", f"activation({arch.activation!r})"))
        if stem.pool:
            layers.append(("stem_pool", "MaxPool3x3()"))
    for block in plan.blocks:
        layers.append((block.name, _block(arch, block)))
    if plan.head.post_norm:
        if arch.batch_norm:
            layers.append(("post_bn", f"norm({plan.head.in_channels}, **bn)"))
        layers.append(("post_act", f"activation({arch.activation!r})"))
    return layers + _head(arch, plan.head)


def _block(arch, block):
    """The constructor source of a block: its anatomy's layers, one list per argument."""
    anatomy, vectors = block.anatomy, len(arch.input_shape) == 1
    x_hat = anatomy.branch[anatomy.shares - 1].filters if anatomy.shares else block.in_channels
    args = [_modules(anatomy.branch, block.in_channels, vectors)]
    if anatomy.shortcut is not None:
        args.append(f"shortcut={_modules(anatomy.shortcut, x_hat, vectors)}")
    if anatomy.shares:
        args.append(f"shares={anatomy.shares}")
    if anatomy.post:
        args.append(f"post={_modules(anatomy.post, anatomy.branch[-1].filters, vectors)}")
    if block.survival_probability < 1.0:
        args.append(f"survival_probability={block.survival_probability!r}, drop_mode={arch.drop_mode!r}")
    return "Block(\n            " + ",\n            ".join(args) + ")"


def _modules(layers, channels, vectors):
    """``[(name, module), ...]`` of anatomy layers from inputs ``channels`` wide, as source."""
    pairs = []
    for layer in layers:
        pairs.append(f"({layer.name!r}, {_module(layer, channels, vectors)})")
        channels = layer.filters
    return "[" + ", ".join(pairs) + "]"


def _module(layer, in_channels, vectors):
    if layer.kind == "conv":
        return (f"linear({in_channels}, {layer.filters}, {layer.kernel_size}, {layer.strides}, "
                f"{layer.use_bias}, {vectors})")
    if layer.kind == "norm":
        return f"norm({layer.filters}, **bn)"
    if layer.kind == "act":
        return f"activation({layer.activation!r})"
    return f"ZeroPad({layer.filters}, {layer.strides})"  # pools and dropout are not exported


def _head(arch, head):
    layers = []
    if head.pooling is not None:
        name = {"avg": "avg_pool", "max": "max_pool", "flatten": "flatten"}[head.pooling]
        layers.append((name, f"GlobalPool({head.pooling!r})"))
        if arch.pool_activation:
            layers.append(("pool_act", f"activation({arch.activation!r})"))
    if head.classes:
        layers.append(("classifier", f"nn.Linear({head.features}, {head.classes})"))
        if arch.classifier_activation == "softmax":
            layers.append(("softmax", "nn.Softmax(dim=-1)"))
    return layers


def torch_source(architecture=None, /, **fields):
    """The source of a Python file defining the design as a PyTorch ``nn.Module``.

    Args:
        architecture: an `Architecture`, a dict of its fields or its JSON.
        **fields: `Architecture` fields overriding those of ``architecture``.

    Returns:
        The file's text: the module class (named after the design), its building blocks and
        ``load_keras_weights(module, arrays)``. It needs only ``torch``.

    Raises:
        ValueError: the design has a part the export does not write (highway blocks, a
            deep stem, groups, average-pool shortcuts, dropout, projections without batch norm).
    """
    arch = coerce_architecture(architecture, **fields)
    for name, value in _not_exported(arch).items():
        raise ValueError(f"{name}={value!r} is not supported by the PyTorch export: export this "
                         "network as a .keras file instead.")
    layers = _layers(arch)
    name = torch_class_name(arch)
    shape = "(batch, features)" if len(arch.input_shape) == 1 else "(batch, channels, height, width)"
    lines = [
        f'"""{arch.name} as a plain PyTorch module, generated by keras_resnets.interop.export_torch.',
        "",
        f"    model = {name}().eval()",
        "    load_keras_weights(model, arrays)  # arrays: keras_resnets.interop.export_torch.keras_weights(keras_model)",
        f"    logits = model(images)  # images: {shape}",
        "",
        "Initialisation is PyTorch's: copy the weights to get the Keras model's outputs.",
        '"""',
        "",
        _RUNTIME % {"names": json.dumps(KERAS_TO_TORCH)},
        "",
        f"ARCHITECTURE = {arch.to_json()!r}",
        '"""The description this file was generated from (keras_resnets.Architecture.from_json)."""',
        "",
        "",
        f"class {name}(nn.Module):",
        f'    """{arch.name}: {arch.depth} weighted layers, input {shape}."""',
        "",
        "    def __init__(self):",
        "        super().__init__()",
        f"        bn = dict(eps={arch.bn_epsilon!r}, momentum={round(1 - arch.bn_momentum, 9)!r}, "
        f"vectors={len(arch.input_shape) == 1})",
        *(f"        self.{layer} = {source}" for layer, source in layers),
        "",
        "    def forward(self, x):",
        *(f"        x = self.{layer}(x)" for layer, _ in layers),
        "        return x",
        "",
    ]
    return "\n".join(lines)


def keras_weights(model):
    """The weights of a Keras model as ``{path: NumPy array}``, the argument of the exported
    file's ``load_keras_weights``; random-number state (stochastic depth's seeds) is left out.

    Example:
    >>> from keras_resnets import build_resnet, presets
    >>> arrays = keras_weights(build_resnet(presets.mnist_resnet()))
    >>> arrays["stage1_block1/conv1/kernel"].shape
    (3, 3, 16, 16)
    """
    return {w.path: np.asarray(keras.ops.convert_to_numpy(w)) for w in model.weights
            if w.path.rsplit("/", 1)[-1] in KERAS_TO_TORCH}
