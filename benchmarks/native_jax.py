"""The benchmark networks as a plain JAX program: what a JAX user writes without Keras or Flax.

- `mnist_resnet`: the lecture's network (slides 10-11: a 1x1 convolution and ReLU, 25
  ResBlocks of conv-BN-ReLU-conv-BN, the sum with the input and ReLU, then average pooling,
  ReLU and a linear layer), 117,802 parameters as on the slides.
- `cifar_resnet`: He et al.'s CIFAR ResNet-``6n+2`` with option-A shortcuts, as
  `native_torch.CifarResNet`.

Written as a strong JAX user writes it for a CPU: images channels last (XLA:CPU's own layout),
``lax.conv_general_dilated``, batch normalisation in training mode with running statistics
kept as ``torch.nn.BatchNorm2d`` keeps them (momentum 0.1, the unbiased batch variance), ReLU
as a select (``relu="max"``: ``jax.nn.relu``, which XLA:CPU duplicates into every consumer
along the residual stream; keras_resnets.layers.fast says why), and one jitted SGD step
(PyTorch's momentum rule when ``momentum`` > 0) whose buffers are donated.

Nothing here imports Keras or keras_resnets.

Example:
>>> import jax
>>> net = mnist_resnet(nb_blocks=1)
>>> params, stats = net.init(jax.random.key(0))
>>> count(params)
4906
>>> net.apply(params, stats, jax.numpy.zeros((2, 28, 28, 1)), train=False)[0].shape
(2, 10)
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

BN_MOMENTUM = 0.1  # torch.nn.BatchNorm2d's: the weight of the new batch
BN_EPSILON = 1e-5


class Network(NamedTuple):
    """``init(key) -> (params, stats)``; ``apply(params, stats, x, train) -> (logits, stats)``."""

    init: Callable
    apply: Callable


def count(params):
    """The number of trainable parameters in ``params``."""
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


# ---- layers ---------------------------------------------------------------------------------


def relu_select(x):
    """``max(x, 0)`` as a select, which XLA computes once."""
    return jnp.where(x <= 0, jnp.zeros((), x.dtype), x)


def conv_init(key, kernel_size, in_channels, out_channels, bias):
    fan_in = kernel_size * kernel_size * in_channels
    params = {"kernel": jax.random.normal(key, (kernel_size, kernel_size, in_channels,
                                                out_channels)) * math.sqrt(2.0 / fan_in)}
    if bias:
        params["bias"] = jnp.zeros((out_channels,))
    return params


def conv(params, x, stride=1, padding="SAME"):
    y = lax.conv_general_dilated(x, params["kernel"], (stride, stride), padding,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + params["bias"] if "bias" in params else y


def bn_init(channels):
    return ({"scale": jnp.ones((channels,)), "bias": jnp.zeros((channels,))},
            {"mean": jnp.zeros((channels,)), "var": jnp.ones((channels,))})


def batch_norm(params, stats, x, train):
    """Batch normalisation over all axes but the last; in training, the batch's statistics,
    and the running ones updated with its mean and unbiased variance."""
    if train:
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
        n = x.size // x.shape[-1]
        stats = {"mean": (1 - BN_MOMENTUM) * stats["mean"] + BN_MOMENTUM * mean,
                 "var": (1 - BN_MOMENTUM) * stats["var"] + BN_MOMENTUM * var * (n / (n - 1))}
    else:
        mean, var = stats["mean"], stats["var"]
    scale = lax.rsqrt(var + BN_EPSILON) * params["scale"]
    return (x - mean) * scale + params["bias"], stats


def dense_init(key, in_features, out_features):
    bound = 1.0 / math.sqrt(in_features)
    return {"kernel": jax.random.uniform(key, (in_features, out_features), minval=-bound,
                                         maxval=bound),
            "bias": jnp.zeros((out_features,))}


def _relu(kind):
    if kind not in ("select", "max"):
        raise ValueError(f"relu={kind!r} is not known; choose 'select' or 'max'.")
    return relu_select if kind == "select" else jax.nn.relu


# ---- the lecture's network --------------------------------------------------------------------


def mnist_resnet(nb_blocks=25, nb_channels=16, kernel_size=3, relu="select"):
    """The lecture's `ResNet(nb_channels, kernel_size, nb_blocks)` on 28x28x1 images."""
    act = _relu(relu)

    def init(key):
        keys = jax.random.split(key, 2 * nb_blocks + 2)
        params = {"conv0": conv_init(keys[0], 1, 1, nb_channels, bias=True),
                  "fc": dense_init(keys[1], nb_channels, 10), "blocks": []}
        stats = {"blocks": []}
        for b in range(nb_blocks):
            (bn1, s1), (bn2, s2) = bn_init(nb_channels), bn_init(nb_channels)
            params["blocks"].append({
                "conv1": conv_init(keys[2 + 2 * b], kernel_size, nb_channels, nb_channels, True),
                "bn1": bn1,
                "conv2": conv_init(keys[3 + 2 * b], kernel_size, nb_channels, nb_channels, True),
                "bn2": bn2})
            stats["blocks"].append({"bn1": s1, "bn2": s2})
        return params, stats

    def apply(params, stats, x, train):
        x = act(conv(params["conv0"], x))
        new_stats = []
        for p, s in zip(params["blocks"], stats["blocks"]):
            y, s1 = batch_norm(p["bn1"], s["bn1"], conv(p["conv1"], x), train)
            y, s2 = batch_norm(p["bn2"], s["bn2"], conv(p["conv2"], act(y)), train)
            x = act(y + x)
            new_stats.append({"bn1": s1, "bn2": s2})
        x = act(jnp.mean(x, axis=(1, 2)))
        return x @ params["fc"]["kernel"] + params["fc"]["bias"], {"blocks": new_stats}

    return Network(init, apply)


# ---- He et al.'s CIFAR ResNet -------------------------------------------------------------------


def cifar_resnet(depth=56, classes=10, relu="select"):
    """ResNet-``depth`` for 32x32x3 images: 16/32/64 channels, ``(depth - 2) / 6`` blocks a
    stage, a stride of 2 and option-A shortcuts (subsample, zero channels) between stages."""
    act = _relu(relu)
    n = (depth - 2) // 6
    shapes = []  # (in_channels, channels, stride) of each block
    width = 16
    for stage, channels in enumerate((16, 32, 64)):
        for b in range(n):
            shapes.append((width, channels, 2 if stage > 0 and b == 0 else 1))
            width = channels

    def init(key):
        keys = jax.random.split(key, 2 * len(shapes) + 2)
        bn0, s0 = bn_init(16)
        params = {"conv0": conv_init(keys[0], 3, 3, 16, bias=False), "bn0": bn0,
                  "fc": dense_init(keys[1], 64, classes), "blocks": []}
        stats = {"bn0": s0, "blocks": []}
        for b, (cin, c, _) in enumerate(shapes):
            (bn1, s1), (bn2, s2) = bn_init(c), bn_init(c)
            params["blocks"].append({"conv1": conv_init(keys[2 + 2 * b], 3, cin, c, False),
                                     "bn1": bn1,
                                     "conv2": conv_init(keys[3 + 2 * b], 3, c, c, False),
                                     "bn2": bn2})
            stats["blocks"].append({"bn1": s1, "bn2": s2})
        return params, stats

    def apply(params, stats, x, train):
        x, s0 = batch_norm(params["bn0"], stats["bn0"], conv(params["conv0"], x), train)
        x = act(x)
        new_stats = {"bn0": s0, "blocks": []}
        for p, s, (cin, c, stride) in zip(params["blocks"], stats["blocks"], shapes):
            padding = ((1, 1), (1, 1))  # PyTorch's: the same on both sides, also at stride 2
            y, s1 = batch_norm(p["bn1"], s["bn1"], conv(p["conv1"], x, stride, padding), train)
            y, s2 = batch_norm(p["bn2"], s["bn2"], conv(p["conv2"], act(y)), train)
            shortcut = x[:, ::stride, ::stride, :] if stride > 1 else x
            if c > cin:
                shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, c - cin)))
            x = act(y + shortcut)
            new_stats["blocks"].append({"bn1": s1, "bn2": s2})
        x = jnp.mean(x, axis=(1, 2))
        return x @ params["fc"]["kernel"] + params["fc"]["bias"], new_stats

    return Network(init, apply)


def build(model_name, *, nb_blocks=25, nb_channels=16, depth=56, relu="select"):
    """The network of a benchmark scale: ``"mnist"`` or ``"cifar"``."""
    if model_name == "mnist":
        return mnist_resnet(nb_blocks, nb_channels, relu=relu)
    if model_name == "cifar":
        return cifar_resnet(depth, relu=relu)
    raise ValueError(f"model_name={model_name!r} is not known here; choose 'mnist' or 'cifar'.")


# ---- training and inference -----------------------------------------------------------------


def cross_entropy(logits, labels):
    """The mean softmax cross-entropy of integer ``labels``."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=1))


def sgd_step(net, learning_rate=0.01, momentum=0.0):
    """``step(params, stats, velocity, x, y) -> (params, stats, velocity, loss)``: one jitted
    SGD step (``velocity``: PyTorch's momentum buffers, ``None`` without momentum), its state
    donated so that XLA updates it in place."""

    def loss_fn(params, stats, x, y):
        logits, stats = net.apply(params, stats, x, train=True)
        return cross_entropy(logits, y), stats

    def step(params, stats, velocity, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats, x, y)
        if momentum:
            velocity = jax.tree_util.tree_map(lambda v, g: momentum * v + g, velocity, grads)
            grads = velocity
        params = jax.tree_util.tree_map(lambda p, g: p - learning_rate * g, params, grads)
        return params, stats, velocity, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


def velocity(params, momentum):
    """The momentum buffers `sgd_step` starts from: zeros, or ``None`` without momentum."""
    return jax.tree_util.tree_map(jnp.zeros_like, params) if momentum else None


def predictor(net):
    """``predict(params, stats, x) -> logits``, jitted, in evaluation mode."""
    return jax.jit(lambda params, stats, x: net.apply(params, stats, x, train=False)[0])
