"""Data: what a run trains on (`DataSpec`), and image-classification datasets as streaming
``tf.data`` pipelines that feed every backend: the embedded MNIST sample (offline),
tensorflow-datasets names and image folders, with the standard recipes' input transforms."""

from keras_resnets.data.datasets import (
    DATASETS,
    Data,
    DatasetInfo,
    DataUnavailableError,
    Description,
    describe,
    is_available,
    load_arrays,
    load_data,
    normalize,
    num_examples,
)
from keras_resnets.data.spec import VALIDATION_SPLIT, DataSpec
from keras_resnets.data.transforms import TRANSFORMS

__all__ = ["DATASETS", "TRANSFORMS", "VALIDATION_SPLIT", "Data", "DataSpec", "DataUnavailableError",
           "DatasetInfo", "Description", "describe", "is_available", "load_arrays", "load_data",
           "normalize", "num_examples"]
