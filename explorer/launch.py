"""What the Train page asks for and says before it starts a run (no Streamlit): the request of
its settings, what its data holds, why a design cannot train as asked, and about how long it
will take.

The data is a named dataset, an image folder on this computer or the folder of an uploaded
zip (`explorer.uploads`); a folder is described by the library (`describe_data`: its images
counted, their headers read), so the page shows what a run would find, or the library's own
message for a folder it would refuse.

Example:
>>> request = request_of({"dataset": "mnist_sample", "subset": 0, "validation_split": 0.1, "epochs": 2,
...                       "optimizer": RECIPE, "schedule": "step", "backend": "jax"})
>>> request.subset, request.epochs, request.optimizer, request.schedule, request.backend
(None, 2, None, 'step', 'jax')
>>> data = data_of(request)
>>> data.image_shape, data.classes, data.train_images, data.problem
((28, 28, 1), 10, 9000, None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from explorer import designs
from explorer.runner import BACKENDS, TrainRequest
from keras_resnets.data.datasets import DATASETS, SAMPLE_NAME, is_available
from keras_resnets.training.loop import describe_data

DEFAULTS = TrainRequest()
RECIPE = "recipe"  # selectboxes hold strings: None would read as "nothing selected"
SOURCES = {"named": "A named dataset", "folder": "An image folder on this computer",
           "upload": "Upload a zip of an image folder"}
"""Where the Train page's data comes from."""
SETTINGS = ("source", "dataset", "folder", "validation_folder", "transforms", "subset", "epochs", "batch_size",
            "validation_split", "recipe", "optimizer", "schedule", "learning_rate", "seed", "backend",
            "distribution", "processes")
"""The Train page's settings, each a widget."""
UPLOADED = "uploaded"
"""The setting that holds the folder of the uploaded zip (set when it is extracted, not a widget)."""
MAX_PROCESSES = max(2, os.cpu_count() or 1)
"""The most processes the page offers: one per core, and two on any machine, to try them."""
RATE_PHRASES = {None: "", "constant": " at a constant rate", "step": " with the rate ÷10 at 50% and 75%"}


def request_of(values) -> TrainRequest:
    """The `TrainRequest` of the settings' values ``{name: value}`` (`SETTINGS` and `UPLOADED`; a
    missing or unset one takes its default; ``RECIPE`` leaves the optimizer or schedule to the
    recipe). A validation folder and the input transforms go with a folder (a named dataset has
    its own transforms); a validation folder replaces the validation fraction.

    >>> request = request_of({"source": "folder", "folder": "/data/pets", "validation_folder": "/data/val",
    ...                       "validation_split": 0.1, "processes": 2})
    >>> request.dataset, request.validation_split, request.validation_dataset, request.processes
    ('/data/pets', 0.0, '/data/val', 2)
    """
    value = {name: values.get(name) for name in (*SETTINGS, UPLOADED)}
    source = value["source"] or "named"
    validation = None if source == "named" else folder_path(value["validation_folder"])
    transforms = None if source == "named" or value["transforms"] == "none" else value["transforms"]
    return TrainRequest(dataset=dataset_of(source, value), subset=int(value["subset"] or 0) or None,
                        validation_split=0.0 if validation else float(value["validation_split"] or 0.0),
                        recipe=value["recipe"] or "quick",
                        epochs=int(value["epochs"] or 1), batch_size=int(value["batch_size"] or 1),
                        optimizer=None if value["optimizer"] in (None, RECIPE) else value["optimizer"],
                        schedule=None if value["schedule"] == RECIPE else value["schedule"] or DEFAULTS.schedule,
                        learning_rate=value["learning_rate"] or None, seed=int(value["seed"] or 0),
                        backend=value["backend"] or DEFAULTS.backend,
                        distribution=value["distribution"] or DEFAULTS.distribution,
                        validation_dataset=validation, transforms=transforms,
                        processes=int(value["processes"] or 1))


def dataset_of(source: str, value) -> str:
    """The request's dataset for ``source``: a name, a folder's absolute path, or ``""`` when
    no folder is chosen yet."""
    if source == "named":
        return value["dataset"] or DEFAULTS.dataset
    return folder_path(value[UPLOADED if source == "upload" else "folder"]) or ""


def folder_path(text) -> str | None:
    """The absolute path of a typed folder (the worker starts in another directory), or None
    for none.

    >>> folder_path("  "), folder_path("/data/pets/")
    (None, '/data/pets')
    """
    text = (text or "").strip()
    return os.path.abspath(os.path.expanduser(text)) if text else None


@dataclass(frozen=True)
class DataFacts:
    """What the Train page knows of a request's data before it starts."""

    image_shape: tuple | None
    """``(height, width, channels)`` of the images a run trains on; None when not known."""
    classes: int | None
    train_images: int | None
    """The training images of one epoch; None when not known without loading the dataset."""
    validation_images: int | None = None
    class_names: tuple = ()
    problem: str | None = None
    """Why the data cannot be used (for a folder, the library's message); None when it can."""


def reachable(name: str) -> bool:
    """Whether a dataset can be loaded here (prepared locally, or its host answers in 1.5 s)."""
    try:
        return is_available(name, timeout=1.5)
    except ValueError:
        return False


def data_of(request, reachable=reachable) -> DataFacts:
    """The `DataFacts` of ``request``'s data: a named dataset's published facts (``reachable``
    tells whether it can be loaded here), the embedded sample's and a folder's as the library
    describes them: the `DataSpec` its worker would be handed (`TrainRequest.data_spec`)."""
    if request.dataset in DATASETS and request.dataset != SAMPLE_NAME:
        info = DATASETS[request.dataset]
        offline = request.dataset != "mnist" and not reachable(request.dataset)  # mnist falls back to the sample
        return DataFacts(info.image_shape, info.classes, request.subset,
                         problem=f"{request.dataset} cannot be loaded here (offline)." if offline else None)
    if not request.dataset:
        return DataFacts(None, None, None, problem="no image folder is chosen yet: type its path, or upload a zip.")
    try:
        found = describe_data(request.data_spec())
    except ValueError as error:  # the library's message names the folder and what is wrong
        return DataFacts(None, None, None, problem=str(error))
    return DataFacts(found.info.image_shape, found.info.classes, found.num_train, found.num_validation,
                     found.info.class_names or ())


def data_name(request) -> str:
    """The request's data in a few words: a dataset's name, or "the image folder"."""
    return request.dataset if request.dataset in DATASETS else "the image folder"


def data_text(data: DataFacts) -> str:
    """What a folder holds, in one sentence (Markdown).

    >>> data_text(DataFacts((8, 6, 3), 3, 18, 6, ("cat", "dog", "emu")))
    'Found **3 classes** (cat, dog, emu) of 8×6×3 images: **18** to train on, **6** held out.'
    """
    names = ", ".join(data.class_names[:8]) + (", …" if len(data.class_names) > 8 else "")
    return (f"Found **{data.classes} classes** ({names}) of {designs.shape_text(data.image_shape)} images: "
            f"**{data.train_images:,}** to train on, **{data.validation_images:,}** held out.")


def training_problem(architecture, request, data: DataFacts) -> str | None:
    """Why ``architecture`` cannot train as ``request`` asks, on ``data`` (`data_of`), for the
    user; ``None`` when it can."""
    if len(architecture.input_shape) == 1:
        return (f"the design takes vectors of {architecture.input_shape[0]} features; the datasets here are "
                "images (use a convolutional stem and basic, bottleneck or highway blocks).")
    if not architecture.include_top:
        return "the design has no classifier (include_top is off): training needs one."
    if data.problem:
        return data.problem
    if tuple(architecture.input_shape) != tuple(data.image_shape) or architecture.classes != data.classes:
        return (f"the design takes {designs.shape_text(architecture.input_shape)} images and {architecture.classes} "
                f"classes; {data_name(request)} has {designs.shape_text(data.image_shape)} images and {data.classes} "
                "classes.")
    problem = parallel_problem(request)
    if problem:
        return problem
    try:
        request.training_request(architecture)
    except ValueError as error:  # the library's check of the request its worker would get (its processes too)
        return str(error)
    return None


def parallel_problem(request) -> str | None:
    """Why ``request``'s devices and processes cannot go together on the page's backend, or
    None: data parallelism spans one process' devices (JAX and TensorFlow), and several
    processes span every device already. How many processes can train the data and the batch
    is the library's to say (`TrainRequest.training_request`)."""
    if request.distribution != "none" and request.backend == "torch":
        return ("data parallelism over one process' devices runs on JAX and TensorFlow; with PyTorch, train "
                "with several processes instead (Processes: DistributedDataParallel, started by torchrun).")
    if request.distribution != "none" and request.processes > 1:
        return ("data parallelism over one process' devices and several processes do not go together: with "
                "several, each engine spans the devices of every process already. Choose one device, or 1 process.")
    return None


def fitted(design: dict, data: DataFacts) -> dict:
    """``design`` taking the images and classes of ``data``.

    >>> fitted({"input_shape": [32, 32, 3], "classes": 100}, data_of(TrainRequest(dataset="mnist_sample")))
    {'input_shape': [28, 28, 1], 'classes': 10}
    """
    return {**design, "input_shape": list(data.image_shape), "classes": data.classes}


def estimate(architecture, request, data: DataFacts, runs) -> tuple[float, float] | None:
    """``(seconds of training, images per second)`` for ``request`` on ``data``, at the median
    speed of the newest of ``runs`` (of the 50 newest) that trained the same design with as many
    processes; ``None`` without one, or when the training images are not known."""
    if not data.train_images:
        return None
    wanted = architecture.to_dict()
    for run in runs[:50]:
        if run.config.architecture != wanted or run.config.processes != request.processes:
            continue
        speeds = sorted(e["images_per_second"] for e in run.batches() if e.get("images_per_second"))
        if speeds:
            speed = speeds[len(speeds) // 2]
            return request.epochs * data.train_images / speed, speed
    return None


def plan_text(architecture, request, trainable: int) -> str:
    """What ``request`` will train, in one sentence (Markdown)."""
    images = f"{request.subset:,} training images" if request.subset else "all training images"
    data = f"**{request.dataset}**" if request.dataset in DATASETS else f"the image folder `{request.dataset}`"
    held_out = (f"validation images from `{request.validation_dataset}`" if request.validation_dataset else
                f"{request.validation_split:.0%} held out for validation")
    workers = ("in a background worker process" if request.processes == 1 else
               f"in {request.processes} worker processes that train together")
    return (f"**Will train** `{architecture.name}` ({trainable:,} trainable parameters) "
            f"on {data} ({images}, {held_out}), "
            f"{request.epochs} epoch{'s' * (request.epochs != 1)} of batches of {request.batch_size}, "
            f"{request.recipe} recipe{RATE_PHRASES[request.schedule]}, with **{BACKENDS[request.backend]}** "
            f"{workers}.")
