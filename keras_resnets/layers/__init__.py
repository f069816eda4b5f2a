"""Keras layers of residual networks, portable across TensorFlow, JAX and PyTorch."""

from keras_resnets.design.choices import ACTIVATIONS, DROP_MODES, SHORTCUT_OPTIONS
from keras_resnets.design.plan import linear_decay
from keras_resnets.layers.activations import CReLU
from keras_resnets.layers.blocks import (
    BottleneckBlock,
    DenseResBlock,
    PreActBottleneckBlock,
    PreActResBlock,
    ResBlock,
)
from keras_resnets.layers.highway import HighwayConv2D, HighwayDense
from keras_resnets.layers.shortcut import Shortcut
from keras_resnets.layers.stochastic_depth import StochasticDepth

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
