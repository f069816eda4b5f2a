"""Hand-written Keras functional models, from plain `keras.layers`, of the benchmark networks.

They are the yardstick for the overhead of keras_resnets' own layers: the same network, the
same initialisers and batch-norm settings, built the way a Keras user would write it without
the library. `build` returns the one of a scale; each has the parameter count of its
keras_resnets twin (checked by tests/test_benchmarks.py).
"""

import keras
from keras import layers, ops

BN = {"momentum": 0.9, "epsilon": 1e-5}


def _axis(data_format):
    return 1 if data_format == "channels_first" else -1


def _shape(hw, channels, data_format):
    return (channels, hw, hw) if data_format == "channels_first" else (hw, hw, channels)


def mnist_resnet(nb_blocks=25, nb_channels=16, kernel_size=3, data_format="channels_last"):
    """The lecture's MNIST ResNet: 1x1 conv0 + ReLU, ``nb_blocks`` ResBlocks, avg pool, ReLU, fc."""
    df, axis = data_format, _axis(data_format)
    inputs = keras.Input(_shape(28, 1, df))
    x = layers.Conv2D(nb_channels, 1, data_format=df, kernel_initializer="he_normal")(inputs)
    x = layers.ReLU()(x)
    for _ in range(nb_blocks):
        y = layers.Conv2D(nb_channels, kernel_size, padding="same", data_format=df,
                          kernel_initializer="he_normal")(x)
        y = layers.BatchNormalization(axis=axis, **BN)(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(nb_channels, kernel_size, padding="same", data_format=df,
                          kernel_initializer="he_normal")(y)
        y = layers.BatchNormalization(axis=axis, **BN)(y)
        x = layers.ReLU()(layers.Add()([y, x]))
    x = layers.GlobalAveragePooling2D(data_format=df)(x)
    x = layers.ReLU()(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name="hand_mnist_resnet")


def _option_a(x, channels, stride, data_format):
    """He et al.'s option-A shortcut: subsample, then append zero channels."""
    def shortcut(t):
        if data_format == "channels_first":
            t = t[:, :, ::stride, ::stride]
            extra = channels - t.shape[1]
            return ops.pad(t, [[0, 0], [0, extra], [0, 0], [0, 0]])
        t = t[:, ::stride, ::stride, :]
        extra = channels - t.shape[-1]
        return ops.pad(t, [[0, 0], [0, 0], [0, 0], [0, extra]])

    return layers.Lambda(shortcut)(x)


def cifar_resnet(depth=56, data_format="channels_last"):
    """He et al.'s CIFAR ResNet-``depth`` (option-A shortcuts, 16/32/64 channels)."""
    df, axis = data_format, _axis(data_format)
    n = (depth - 2) // 6
    inputs = keras.Input(_shape(32, 3, df))
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, data_format=df,
                      kernel_initializer="he_normal")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(axis=axis, **BN)(x))
    width = 16
    for stage, channels in enumerate((16, 32, 64)):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            if stride == 1:
                y = layers.Conv2D(channels, 3, padding="same", use_bias=False, data_format=df,
                                  kernel_initializer="he_normal")(x)
            else:
                y = layers.ZeroPadding2D(1, data_format=df)(x)
                y = layers.Conv2D(channels, 3, strides=stride, use_bias=False, data_format=df,
                                  kernel_initializer="he_normal")(y)
            y = layers.ReLU()(layers.BatchNormalization(axis=axis, **BN)(y))
            y = layers.Conv2D(channels, 3, padding="same", use_bias=False, data_format=df,
                              kernel_initializer="he_normal")(y)
            y = layers.BatchNormalization(axis=axis, **BN)(y)
            shortcut = x if stride == 1 and width == channels else _option_a(x, channels, stride, df)
            x = layers.ReLU()(layers.Add()([y, shortcut]))
            width = channels
    x = layers.GlobalAveragePooling2D(data_format=df)(x)
    outputs = layers.Dense(10)(x)
    return keras.Model(inputs, outputs, name=f"hand_cifar_resnet{depth}")


def resnet50(classes=1000, input_size=224, data_format="channels_last"):
    """ResNet-50 v1.5 (torchvision's layout): bottlenecks, stride on the 3x3, projection shortcuts."""
    df, axis = data_format, _axis(data_format)

    def conv(x, filters, kernel, stride=1):
        if stride == 1:
            return layers.Conv2D(filters, kernel, padding="same", use_bias=False, data_format=df,
                                 kernel_initializer="he_normal")(x)
        if kernel > 1:
            x = layers.ZeroPadding2D((kernel - 1) // 2, data_format=df)(x)
        return layers.Conv2D(filters, kernel, strides=stride, use_bias=False, data_format=df,
                             kernel_initializer="he_normal")(x)

    def bn(x):
        return layers.BatchNormalization(axis=axis, **BN)(x)

    inputs = keras.Input(_shape(input_size, 3, df))
    x = layers.ReLU()(bn(conv(inputs, 64, 7, 2)))
    x = layers.ZeroPadding2D(1, data_format=df)(x)
    x = layers.MaxPooling2D(3, strides=2, data_format=df)(x)
    width = 64
    for i, blocks in enumerate((3, 4, 6, 3)):
        channels = 64 * 2**i
        for b in range(blocks):
            stride = 2 if i > 0 and b == 0 else 1
            y = layers.ReLU()(bn(conv(x, channels, 1)))
            y = layers.ReLU()(bn(conv(y, channels, 3, stride)))
            y = bn(conv(y, 4 * channels, 1))
            shortcut = x
            if stride != 1 or width != 4 * channels:
                shortcut = bn(conv(x, 4 * channels, 1, stride))
            x = layers.ReLU()(layers.Add()([y, shortcut]))
            width = 4 * channels
    x = layers.GlobalAveragePooling2D(data_format=df)(x)
    outputs = layers.Dense(classes)(x)
    return keras.Model(inputs, outputs, name="hand_resnet50")


def build(model_name, *, nb_blocks=25, depth=56, data_format="channels_last"):
    """The hand-written model of a benchmark scale: ``"mnist"``, ``"cifar"`` or ``"imagenet"``."""
    if model_name == "mnist":
        return mnist_resnet(nb_blocks, data_format=data_format)
    if model_name == "cifar":
        return cifar_resnet(depth, data_format=data_format)
    if model_name == "imagenet":
        return resnet50(data_format=data_format)
    raise ValueError(f"model_name={model_name!r} is not known; choose 'mnist', 'cifar' or 'imagenet'.")
