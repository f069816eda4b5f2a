"""Data: image-classification datasets as ``tf.data`` pipelines that feed every backend, the
embedded MNIST sample first (offline), then tensorflow-datasets names."""

from keras_resnets.data.datasets import (
    DATASETS,
    Data,
    DatasetInfo,
    DataUnavailableError,
    is_available,
    load_arrays,
    load_data,
    normalize,
)

__all__ = ["DATASETS", "Data", "DataUnavailableError", "DatasetInfo", "is_available",
           "load_arrays", "load_data", "normalize"]
