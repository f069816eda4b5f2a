"""What one run is asked to train, as data: a `TrainingRequest` (the architecture, the data, the
recipe, the seed, the devices and the processes), checked once, when it is made.

Its JSON object (`TrainingRequest.to_dict`) is those fields of a run's ``config.json``, which
adds its bookkeeping (backend, versions, creation time, engine): `train` writes it, the command
line reads it from ``--request FILE.json`` and `TrainingRequest.from_config` reads it back from
a run. Construction checks the values and how they go together, without reading a file or
starting a backend, so a run whose image folder was deleted still reads; whether the request
can run here (its data found, the design fitting the images, memory, devices) is
`keras_resnets.training.loop.check_train`'s to say.

Example:
>>> from keras_resnets.design.presets import mnist_resnet
>>> request = TrainingRequest(mnist_resnet(4, 1), DataSpec(subset=256), Recipe(epochs=2))
>>> TrainingRequest.from_dict(request.to_dict()) == request
True
>>> sorted(request.to_dict()), request.replace(seed=3).seed
(['architecture', 'dataset', 'distribution', 'recipe', 'seed'], 3)
>>> TrainingRequest.from_dict({**request.to_dict(), "recipe": {"epochs": 0}})
Traceback (most recent call last):
...
ValueError: recipe: epochs=0 is not allowed: an integer in [1, 2,147,483,647].
"""

import contextlib
import dataclasses
from dataclasses import dataclass, field

from keras_resnets.data.datasets import describe
from keras_resnets.data.spec import VALIDATION_SPLIT, DataSpec
from keras_resnets.design.architecture import Architecture, coerce_architecture
from keras_resnets.design.presets import PRESETS, get_preset
from keras_resnets.design.validation import check_choice, check_seed, fail
from keras_resnets.training.choices import DISTRIBUTIONS
from keras_resnets.training.processes import check_processes
from keras_resnets.training.recipe import Recipe


@dataclass(frozen=True)
class TrainingRequest:
    """What one run trains: everything that shapes its result except the backend, which is the
    training process' own (``KERAS_BACKEND``; ``config.json`` records it).

    Attributes:
        architecture: an `Architecture` (its dict or JSON is read as one).
        dataset: a `DataSpec` (its dict, or a dataset's name or folder, is read as one).
        recipe: a `Recipe` (its dict, or None for the default, is read as one).
        seed: seeds the weights, the validation split and the data order.
        distribution: ``"none"`` or ``"data_parallel"`` over one process' devices
            (`keras_resnets.training.distribution`).
        processes: how many processes train the run together
            (`keras_resnets.training.processes`): the batch must divide among them and they
            must be able to share the data.
    """

    architecture: Architecture
    dataset: DataSpec = field(default_factory=DataSpec)
    recipe: Recipe = field(default_factory=Recipe)
    seed: int = 0
    distribution: str = "none"
    processes: int = 1

    def __post_init__(self):
        if not isinstance(self.dataset, DataSpec):
            dataset = self.dataset
            object.__setattr__(self, "dataset", DataSpec.from_dict(dataset) if isinstance(dataset, dict)
                               else DataSpec(dataset))
        object.__setattr__(self, "architecture", coerce_architecture(self.architecture))
        object.__setattr__(self, "recipe", Recipe.coerce(self.recipe))
        object.__setattr__(self, "seed", check_seed("seed", self.seed))
        check_choice("distribution", self.distribution, DISTRIBUTIONS)
        check_processes(self.processes, None, self.dataset.name, self.recipe.batch_size)

    @classmethod
    def build(cls, architecture, dataset="mnist_sample", recipe=None, *, subset=None,
              validation_split=VALIDATION_SPLIT, data_dir=None, augment=False, transforms=None,
              validation_dataset=None, seed=0, distribution="none", processes=1, **recipe_fields):
        """The request of `train`'s keyword arguments: ``architecture`` may be a preset's name,
        fitted to the images and classes of the data (a folder's are described: its files
        listed, their headers read); the data's arguments make the `DataSpec`; ``recipe`` (a
        `Recipe`, its dict or None) is changed by ``recipe_fields`` (``epochs=2``).

        Example:
        >>> TrainingRequest.build("mnist_resnet", subset=256, epochs=2).recipe.epochs
        2
        """
        data = DataSpec(dataset, subset=subset, validation_split=validation_split,
                        data_dir=data_dir, augment=augment, transforms=transforms,
                        validation_dataset=validation_dataset)
        return cls(_fitted(architecture, data), data, Recipe.coerce(recipe, **recipe_fields),
                   seed=seed, distribution=distribution, processes=processes)

    def replace(self, **changes):
        """A copy with some fields changed (and checked)."""
        return dataclasses.replace(self, **_known(changes))

    def to_dict(self):
        """Plain JSON values, keyed as in ``config.json``; ``processes`` only above 1, so that a
        run of one process has the keys of older configs."""
        data = {"architecture": self.architecture.to_dict(), "dataset": self.dataset.to_dict(),
                "recipe": self.recipe.to_dict(), "seed": self.seed,
                "distribution": self.distribution}
        if self.processes > 1:
            data["processes"] = self.processes
        return data

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`: ``architecture``, ``dataset`` and ``recipe`` are needed
        (every config has them), ``seed``, ``distribution`` and ``processes`` take their
        defaults; a missing part, an unknown key or a wrong value raises a one-line
        `ValueError` that names it (``"recipe: epochs=0 is not allowed: ..."``)."""
        if not isinstance(data, dict):
            fail("request", data, "a JSON object of TrainingRequest fields")
        _known(data)
        parts = {}
        for key, read in (("architecture", Architecture.from_dict), ("dataset", DataSpec.from_dict),
                          ("recipe", Recipe.from_dict)):
            if key not in data:
                fail(key, None, f"the request's {key} (its JSON object, as to_dict() writes it)")
            with _naming(key):
                parts[key] = read(data[key])
        scalars = {key: data[key] for key in ("seed", "distribution", "processes") if key in data}
        return cls(**parts, **scalars)

    @classmethod
    def from_config(cls, config):
        """The request of a run's ``config.json`` (a `RunConfig` or its JSON object), without
        its bookkeeping; a `ValueError` names the first field that cannot be read.

        Example:
        >>> from keras_resnets.design.presets import mnist_resnet
        >>> config = {"architecture": mnist_resnet(4, 1).to_dict(), "recipe": {"epochs": 2},
        ...           "dataset": {"name": "/data/deleted/folder", "validation_split": 0.0},
        ...           "seed": 2, "backend": "jax", "versions": {}}
        >>> TrainingRequest.from_config(config).dataset.name
        '/data/deleted/folder'
        """
        return cls.from_dict({key: config[key] for key in _KEYS if key in config})


_KEYS = tuple(f.name for f in dataclasses.fields(TrainingRequest))
"""The request's keys in ``config.json``: its fields' names."""


def _fitted(architecture, data):
    """An `Architecture` from an instance, dict, JSON string or preset name; a preset is fitted
    to the images (after the transforms) and classes of ``data``, a `DataSpec`."""
    if not (isinstance(architecture, str) and architecture in PRESETS):
        return coerce_architecture(architecture)
    info = describe(data.name, validation_split=0, data_dir=data.data_dir,
                    transforms=data.transforms).info
    return get_preset(architecture, input_shape=tuple(info.image_shape), classes=info.classes)


@contextlib.contextmanager
def _naming(part):
    """Prefixes the message of a `ValueError` raised inside with the part of the request it is
    about (``recipe: ...``)."""
    try:
        yield
    except ValueError as err:
        raise ValueError(f"{part}: {err}") from None


def _known(fields):
    allowed = sorted(_KEYS)
    unknown = sorted(set(fields) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"request has unknown field(s) {unknown}; allowed fields are {allowed}.")
    return fields
