"""What a run trains on, as data: a `DataSpec` (the dataset, how much of it, what is held out,
where it lives, whether it is augmented), importable without Keras.

Its JSON object is the ``"dataset"`` of a run's ``config.json``.

Example:
>>> spec = DataSpec("mnist_sample", subset=4096)
>>> DataSpec.from_dict(spec.to_dict()) == spec, spec.to_dict()["validation_split"]
(True, 0.1)
>>> spec.sizes(10_000)
(4096, 1000)
>>> DataSpec(subset=0)
Traceback (most recent call last):
...
ValueError: subset=0 is not allowed: an integer >= 1 or None.
"""

import dataclasses
import os
from dataclasses import dataclass

from keras_resnets.design.validation import check_bool, check_choice, check_int, check_number, fail

VALIDATION_SPLIT = 0.1
"""The fraction of the training data held out by default (1,000 digits of the sample)."""


@dataclass(frozen=True)
class DataSpec:
    """The data of a run.

    Attributes:
        name: a key of `keras_resnets.data.datasets.DATASETS`.
        subset: training examples used (after the validation split), or None for all.
        validation_split: the fraction of the training split held out, in [0, 1).
        data_dir: the tensorflow-datasets directory, or None for its default.
        augment: the ResNet paper's crop-and-flip of the training batches.
    """

    name: str = "mnist_sample"
    subset: int | None = None
    validation_split: float = VALIDATION_SPLIT
    data_dir: str | None = None
    augment: bool = False

    def __post_init__(self):
        from keras_resnets.data.datasets import DATASETS  # it will read specs: no import cycle

        check_choice("dataset", self.name, tuple(sorted(DATASETS)))
        object.__setattr__(self, "subset", check_int("subset", self.subset, optional=True))
        object.__setattr__(self, "validation_split",
                           check_number("validation_split", self.validation_split, 0, 1,
                                        high_open=True))
        if isinstance(self.data_dir, os.PathLike):
            object.__setattr__(self, "data_dir", os.fspath(self.data_dir))
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            fail("data_dir", self.data_dir, "a directory path or None")
        check_bool("augment", self.augment)

    def sizes(self, total):
        """``(training, validation)`` examples of a training split of ``total`` (`split_sizes`)."""
        return split_sizes(total, self.validation_split, self.subset)

    def replace(self, **changes):
        """A copy with some fields changed (and validated)."""
        return dataclasses.replace(self, **_known(changes))

    def to_dict(self):
        """The fields as a plain dict (a run's ``config["dataset"]``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`; missing keys take their defaults, unknown keys raise a
        `ValueError`."""
        if not isinstance(data, dict):
            fail("dataset", data, "a dict of DataSpec fields")
        return cls(**_known(data))


def split_sizes(total, validation_split, subset=None):
    """``(training, validation)`` examples when ``validation_split`` of ``total`` is held out and
    ``subset`` of the rest is used (None: all); a `ValueError` names ``subset`` if it asks for
    more than are left.

    Example:
    >>> split_sizes(10_000, 0.1)
    (9000, 1000)
    """
    validation = round(total * validation_split)
    training = total - validation
    if subset is not None and subset > training:
        fail("subset", subset, f"at most {training:,}, the training examples left after "
                               f"validation_split={validation_split}")
    return subset or training, validation


def _known(fields):
    allowed = sorted(f.name for f in dataclasses.fields(DataSpec))
    unknown = sorted(set(fields) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"dataset has unknown field(s) {unknown}; allowed fields are {allowed}.")
    return fields
