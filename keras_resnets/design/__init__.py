"""The design: what to build, as plain data, before any layer and without Keras.

- `architecture`: the `Architecture` description (stem, stages, block kind, shortcut
  option, pre-activation, stochastic depth, head) and its validation;
- `plan`: an architecture resolved into one spec per block, with every derived number
  (widths, strides, sizes, parameters, multiply-adds);
- `anatomy`: what a block is: its layers in order, its shortcut's, where they meet;
- `presets`: the papers' networks as descriptions; `limits`: the size limits of a design;
- `names`: the blocks' names (``stage{s}_block{b}``), made and parsed;
- `choices`: the names each field accepts; `validation`: the one home of the message that
  names a field, its value and what is allowed.

Example:
>>> from keras_resnets.design import presets
>>> presets.mnist_resnet().plan().count_params()["trainable"]
117802
"""

from keras_resnets.design.architecture import Architecture, Stage, Stem, coerce_architecture
from keras_resnets.design.presets import PRESETS, get_preset

__all__ = ["PRESETS", "Architecture", "Stage", "Stem", "coerce_architecture", "get_preset"]
