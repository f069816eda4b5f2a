"""What a run trains on, as data: a `DataSpec` (the dataset, how much of it, what is held out,
where it lives, how its images are transformed), importable without Keras and checked without
reading a file (`keras_resnets.data.datasets.describe` reads a folder's).

Its JSON object is the ``"dataset"`` of a run's ``config.json``; older configs' ``"augment":
true`` reads as ``transforms="cifar"``.

Example:
>>> spec = DataSpec("mnist_sample", subset=4096)
>>> DataSpec.from_dict(spec.to_dict()) == spec, spec.to_dict()["validation_split"]
(True, 0.1)
>>> spec.sizes(10_000)
(4096, 1000)
>>> DataSpec.from_dict({"name": "cifar10", "augment": True}).transforms
'cifar'
>>> DataSpec(subset=0)
Traceback (most recent call last):
...
ValueError: subset=0 is not allowed: an integer >= 1 or None.
"""

import dataclasses
import os
from dataclasses import dataclass

from keras_resnets.data.catalog import DATASETS
from keras_resnets.data.transforms import check_transforms, output_shape
from keras_resnets.design.validation import check_bool, check_int, check_number, fail

VALIDATION_SPLIT = 0.1
"""The fraction of the training data held out by default (1,000 digits of the sample)."""


@dataclass(frozen=True)
class DataSpec:
    """The data of a run.

    Attributes:
        name: a key of `keras_resnets.data.datasets.DATASETS`, or the path of an image folder
            (made absolute).
        subset: training examples used (after the validation split), or None for all.
        validation_split: the fraction of the training split held out, in [0, 1).
        data_dir: the tensorflow-datasets directory, or None for its default.
        augment: True for the CIFAR transforms: the name older configs give them; it follows
            ``transforms``.
        validation_dataset: the path of an image folder of validation images with the classes
            of the folder ``name`` (then ``validation_split`` is 0), or None.
        transforms: the input transforms' name (`keras_resnets.data.transforms.TRANSFORMS`), or
            None for the dataset's default (``"imagenet"`` for the ImageNet sets, else
            ``"none"``).
    """

    name: str = "mnist_sample"
    subset: int | None = None
    validation_split: float = VALIDATION_SPLIT
    data_dir: str | None = None
    augment: bool = False
    validation_dataset: str | None = None
    transforms: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "name", check_dataset(self.name))
        object.__setattr__(self, "subset", check_int("subset", self.subset, optional=True))
        object.__setattr__(self, "validation_split",
                           check_number("validation_split", self.validation_split, 0, 1,
                                        high_open=True))
        for field in ("data_dir", "validation_dataset"):
            value = getattr(self, field)
            if isinstance(value, os.PathLike):
                object.__setattr__(self, field, value := os.fspath(value))
            if value is not None and not isinstance(value, str):
                fail(field, value, "a directory path or None")
        if self.validation_dataset is not None:
            object.__setattr__(self, "validation_dataset", _absolute(self.validation_dataset))
        check_sources(self.name, self.data_dir, self.validation_dataset, self.validation_split)
        transforms = resolve_transforms(self.transforms, self.augment)
        if self.name in DATASETS:
            output_shape(transforms or DATASETS[self.name].transforms, DATASETS[self.name].stored_shape)
        object.__setattr__(self, "transforms", transforms)
        object.__setattr__(self, "augment", transforms == "cifar")

    def sizes(self, total):
        """``(training, validation)`` examples of a training split of ``total`` (`split_sizes`;
        with a ``validation_dataset``, its images are the validation set: see ``describe``)."""
        return split_sizes(total, self.validation_split, self.subset)

    def replace(self, **changes):
        """A copy with some fields changed (and validated); a new ``augment`` or ``transforms``
        replaces the other."""
        changes = _known(changes)
        if "transforms" in changes:
            changes.setdefault("augment", False)
        elif "augment" in changes:
            changes["transforms"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a plain dict (a run's ``config["dataset"]``). ``validation_dataset``
        and ``transforms`` appear only where they say what ``augment`` cannot, so a run that
        uses neither keeps the keys of older configs."""
        data = dataclasses.asdict(self)
        if data["validation_dataset"] is None:
            del data["validation_dataset"]
        if data["transforms"] in (None, "cifar"):
            del data["transforms"]
        return data

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


def check_dataset(name):
    """``name`` if it is a key of `DATASETS`, a folder's path made absolute if it is a path (it
    names a folder: it has a slash or the folder exists), else a `ValueError`."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or name in DATASETS:
        return name if isinstance(name, str) else fail("dataset", name, "a dataset name or a path")
    if "/" in name or os.sep in name or os.path.isdir(name):
        return _absolute(name)
    fail("dataset", name, f"one of {tuple(sorted(DATASETS))} or the path of an image folder")


def check_sources(name, data_dir, validation_dataset, validation_split):
    """Raises a `ValueError` when the arguments that say where the images come from do not go
    together (``name`` as `check_dataset` returns it)."""
    folder = name not in DATASETS
    if folder and data_dir is not None:
        fail("data_dir", str(data_dir), "None for an image folder (it is for tensorflow-datasets)")
    if validation_dataset is None:
        return
    if not folder:
        fail("validation_dataset", str(validation_dataset),
             f"None for dataset {name!r}: a validation folder goes with a training folder")
    if validation_split:
        fail("validation_split", validation_split,
             "0 when validation_dataset is given (its images are the validation set)")


def resolve_transforms(transforms, augment):
    """The transforms' name that ``transforms`` and ``augment`` ask for together (None: the
    dataset's default), else a `ValueError`."""
    check_bool("augment", augment)
    if transforms is not None:
        check_transforms(transforms)
    if augment and transforms not in (None, "cifar"):
        fail("augment", augment, f"False with transforms={transforms!r} (augment=True means "
                                 f"transforms='cifar')")
    return "cifar" if augment else transforms


def _absolute(path):
    return os.path.abspath(os.path.expanduser(path))


def _known(fields):
    allowed = sorted(f.name for f in dataclasses.fields(DataSpec))
    unknown = sorted(set(fields) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"dataset has unknown field(s) {unknown}; allowed fields are {allowed}.")
    return fields
