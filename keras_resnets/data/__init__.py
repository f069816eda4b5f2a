"""Data: what a run trains on (`DataSpec`), and image-classification datasets as ``tf.data``
pipelines that feed every backend, the embedded MNIST sample first (offline), then
tensorflow-datasets names."""

from keras_resnets.data.datasets import (
    DATASETS,
    Data,
    DatasetInfo,
    DataUnavailableError,
    is_available,
    load_arrays,
    load_data,
    normalize,
    num_examples,
)
from keras_resnets.data.spec import VALIDATION_SPLIT, DataSpec

__all__ = ["DATASETS", "Data", "DataSpec", "DataUnavailableError", "DatasetInfo",
           "VALIDATION_SPLIT", "is_available", "load_arrays", "load_data", "normalize",
           "num_examples"]
