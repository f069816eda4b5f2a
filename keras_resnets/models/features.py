"""Multi-scale features for dense tasks: the stage outputs of a model, by pyramid level.

Level ``Pk`` is the output of the last block whose output is ``2**k`` times smaller than the
input, keras-hub's names: ``P2``..``P5`` for the ImageNet nets (strides 4 to 32), ``P0``..``P2``
for the CIFAR nets (strides 1, 2, 4) and ``P0`` for the lecture's MNIST net (one stage at
stride 1). Each stage ends at a new level, so every stage of every preset has its name; in a
description where two stages share a stride, the later one gives the level. The outputs are
those of the blocks, as torchvision's ``layer1``..``layer4`` (before the final batch norm of
pre-activation nets).
"""

import keras

from keras_resnets.design.names import parse_block_name


def _stride(layer):
    strides = getattr(layer, "strides", 1)
    return strides[0] if isinstance(strides, (tuple, list)) else strides


def feature_extractor(model):
    """A `keras.Model` on ``model``'s input (sharing its weights) whose outputs are
    ``{"P<k>": stage output}`` (see the module).

    Args:
        model: a model built by `build_resnet` (any preset).

    Raises:
        ValueError: ``model`` has no ``stage<s>_block<b>`` blocks, or a stride that is not a
            power of two.

    Example:
    >>> import keras_resnets
    >>> features = feature_extractor(keras_resnets.cifar_resnet(20))
    >>> {k: tuple(v.shape) for k, v in features.output.items()}
    {'P0': (None, 32, 32, 16), 'P1': (None, 16, 16, 32), 'P2': (None, 8, 8, 64)}
    """
    levels = {}
    stride = 1
    for layer in model.layers:
        stride *= _stride(layer)
        if parse_block_name(layer.name):
            levels[stride] = layer  # the last block at each stride
    if not levels:
        raise ValueError(f"model {model.name!r} has no blocks named stage<s>_block<b>: build it "
                         "with keras_resnets.build_resnet or a preset.")
    outputs = {}
    for stride, layer in levels.items():
        level = stride.bit_length() - 1
        if stride != 1 << level:
            raise ValueError(f"{layer.name} has stride {stride}, not a power of two: it has no "
                             "pyramid level P<k> (stride 2**k).")
        outputs[f"P{level}"] = layer.output
    return keras.Model(model.inputs, outputs, name=f"{model.name}_features")
