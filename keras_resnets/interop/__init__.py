"""Interop with PyTorch: our variables under torchvision's state-dict keys (`torchvision`),
torchvision's published ImageNet weights (`weights`), ImageNet inputs and outputs
(`imagenet`), state-dict files read without torch (`torchfile`), and a design written as a
plain PyTorch module (`export_torch`).

Example:
>>> from keras_resnets import interop, presets, build_resnet
>>> state = interop.to_torchvision(build_resnet(presets.resnet(18, input_shape=(32, 32, 3))))
>>> state["fc.weight"].shape
(1000, 512)
"""

from keras_resnets.interop.torchvision import (
    from_torchvision,
    read_state_dict,
    to_torchvision,
    torchvision_key,
    without_classifier,
)

__all__ = ["from_torchvision", "read_state_dict", "to_torchvision", "torchvision_key",
           "without_classifier"]
