"""Models: `build_resnet` (an `Architecture` to a `keras.Model`), the papers' networks as
functions (`networks`: ``mnist_resnet()``, ``resnet50(weights=...)``, ...), their counts and
tables (`summary`) and their multi-scale features (`features`).

Example:
>>> from keras_resnets.models import mnist_resnet
>>> mnist_resnet().count_params()
119402
"""

from keras_resnets.models.builder import build_resnet
from keras_resnets.models.networks import *  # noqa: F403 (the papers' networks, one function each)
from keras_resnets.models.networks import __all__ as _NETWORKS

__all__ = ["build_resnet", *_NETWORKS]
