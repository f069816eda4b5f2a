"""Keras layers of residual networks, portable across TensorFlow, JAX and PyTorch."""

from keras_resnets.layers.activations import ACTIVATIONS, CReLU
from keras_resnets.layers.blocks import (
    BottleneckBlock,
    DenseResBlock,
    PreActBottleneckBlock,
    PreActResBlock,
    ResBlock,
)
from keras_resnets.layers.highway import HighwayConv2D, HighwayDense
from keras_resnets.layers.shortcut import SHORTCUT_OPTIONS, Shortcut
from keras_resnets.layers.stochastic_depth import DROP_MODES, StochasticDepth, linear_decay

__all__ = [
    "ACTIVATIONS",
    "DROP_MODES",
    "SHORTCUT_OPTIONS",
    "BottleneckBlock",
    "CReLU",
    "DenseResBlock",
    "HighwayConv2D",
    "HighwayDense",
    "PreActBottleneckBlock",
    "PreActResBlock",
    "ResBlock",
    "Shortcut",
    "StochasticDepth",
    "linear_decay",
]
