"""Small helpers shared by the layers: data format, channel axis, paper-style padding and
the dtype policy of sub-layers."""

import functools

import keras

from keras_resnets.design.validation import check_int, fail
from keras_resnets.layers.fast import BatchNormalization, Conv2D
from keras_resnets.runtime.precision import dtype_policy_scope


def resolve_data_format(data_format):
    """``data_format`` or, when ``None``, ``keras.config.image_data_format()``."""
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format={data_format!r} is not supported; "
            "choose 'channels_last' or 'channels_first'."
        )
    return data_format


def builds_in_its_dtype_policy(build):
    """Decorates a composite layer's ``build``: the sub-layers it makes compute in the layer's
    dtype policy, also where Keras rebuilds the layer from a `.keras` file, outside the policy
    its model was built in."""

    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        with dtype_policy_scope(self.dtype_policy):
            return build(self, *args, **kwargs)

    return wrapper


def channel_axis(rank, data_format):
    """The channel axis of a tensor of ``rank`` (vectors always use the last axis)."""
    if rank > 2 and resolve_data_format(data_format) == "channels_first":
        return 1
    return rank - 1


def check_odd_kernel(kernel_size, name="kernel_size"):
    """Raises a `ValueError` unless ``kernel_size`` is a positive odd integer."""
    check_int(name, kernel_size)
    if kernel_size % 2 == 0:
        fail(name, kernel_size, "an odd integer: with an even kernel the padded convolution "
                                "changes the map size and the residual sum would not line up")


def conv_layers(filters, kernel_size, strides, *, use_bias, kernel_initializer, data_format, name,
                groups=1):
    """The layers of one convolution padded as in the paper and torchvision.

    Stride 1 uses 'same' padding, which is symmetric for odd kernels. A strided convolution
    gets explicit symmetric zero padding of ``(kernel_size - 1) // 2`` and a 'valid'
    convolution, not Keras' asymmetric 'same', so torchvision weights map one to one.
    ``groups > 1`` makes a grouped convolution (ResNeXt's cardinality): each of ``groups``
    slices of the input channels has its own ``filters / groups`` filters.
    """
    conv = Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same" if strides == 1 else "valid",
        groups=groups,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        data_format=data_format,
        name=name,
    )
    pad = (kernel_size - 1) // 2
    if strides == 1 or pad == 0:
        return [conv]
    return [keras.layers.ZeroPadding2D(pad, data_format=data_format, name=f"{name}_pad"), conv]


def batch_norm(axis, momentum, epsilon, name, zero_gamma=False):
    """A `BatchNormalization` with the given statistics settings."""
    return BatchNormalization(
        axis=axis,
        momentum=momentum,
        epsilon=epsilon,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )
