"""What the Train page asks for and says before it starts a run (no Streamlit): the request of
its settings, why a design cannot train as asked, and about how long it will take.

Example:
>>> request = request_of({"dataset": "mnist_sample", "subset": 0, "epochs": 2, "optimizer": RECIPE,
...                       "schedule": "step", "backend": "jax"})
>>> request.subset, request.epochs, request.optimizer, request.schedule, request.backend
(None, 2, None, 'step', 'jax')
"""

from __future__ import annotations

from explorer import designs
from explorer.runner import BACKENDS, TrainRequest
from keras_resnets.data.datasets import DATASETS, is_available

DEFAULTS = TrainRequest()
RECIPE = "recipe"  # selectboxes hold strings: None would read as "nothing selected"
SETTINGS = ("dataset", "subset", "epochs", "batch_size", "validation_split", "recipe", "optimizer",
            "schedule", "learning_rate", "seed", "backend", "distribution")
"""The Train page's settings, each a field of `TrainRequest`."""
RATE_PHRASES = {None: "", "constant": " at a constant rate", "step": " with the rate ÷10 at 50% and 75%"}


def request_of(values) -> TrainRequest:
    """The `TrainRequest` of the settings' values ``{name: value}`` (a missing or unset one
    takes its default; ``RECIPE`` leaves the optimizer or schedule to the recipe)."""
    value = {name: values.get(name) for name in SETTINGS}
    return TrainRequest(dataset=value["dataset"] or DEFAULTS.dataset, subset=int(value["subset"] or 0) or None,
                        validation_split=float(value["validation_split"] or 0.0), recipe=value["recipe"] or "quick",
                        epochs=int(value["epochs"] or 1), batch_size=int(value["batch_size"] or 1),
                        optimizer=None if value["optimizer"] in (None, RECIPE) else value["optimizer"],
                        schedule=None if value["schedule"] == RECIPE else value["schedule"] or DEFAULTS.schedule,
                        learning_rate=value["learning_rate"] or None, seed=int(value["seed"] or 0),
                        backend=value["backend"] or DEFAULTS.backend,
                        distribution=value["distribution"] or DEFAULTS.distribution)


def reachable(name: str) -> bool:
    """Whether a dataset can be loaded here (prepared locally, or its host answers in 1.5 s)."""
    try:
        return is_available(name, timeout=1.5)
    except ValueError:
        return False


def training_problem(architecture, request, dataset, available) -> str | None:
    """Why ``architecture`` cannot train as ``request`` asks, for the user; ``None`` when it can."""
    info = DATASETS[dataset]
    if len(architecture.input_shape) == 1:
        return (f"the design takes vectors of {architecture.input_shape[0]} features; the datasets here are "
                "images (use a convolutional stem and basic, bottleneck or highway blocks).")
    if not architecture.include_top:
        return "the design has no classifier (include_top is off): training needs one."
    if tuple(architecture.input_shape) != tuple(info.image_shape) or architecture.classes != info.classes:
        return (f"the design takes {designs.shape_text(architecture.input_shape)} images and {architecture.classes} "
                f"classes; {dataset} has {designs.shape_text(info.image_shape)} images and {info.classes} classes.")
    if not available and dataset != "mnist":
        return f"{dataset} cannot be loaded here (offline)."
    if request.distribution != "none" and request.backend == "torch":
        return ("data parallelism runs on JAX and TensorFlow here; with PyTorch, launch your own "
                "DistributedDataParallel script with torchrun.")
    try:
        request.training_request(architecture)
    except ValueError as error:  # the library's check of the request its worker would get
        return str(error)
    return None


def fitted(design: dict, dataset: str) -> dict:
    """``design`` taking the images and classes of ``dataset``.

    >>> fitted({"input_shape": [32, 32, 3], "classes": 100}, "mnist_sample")
    {'input_shape': [28, 28, 1], 'classes': 10}
    """
    info = DATASETS[dataset]
    return {**design, "input_shape": list(info.image_shape), "classes": info.classes}


def estimate(architecture, request, runs) -> tuple[float, float] | None:
    """``(seconds of training, images per second)`` for ``request``, at the median speed of the
    newest of ``runs`` (of the 50 newest) that trained the same design; ``None`` without one."""
    wanted = architecture.to_dict()
    for run in runs[:50]:
        if run.config.architecture != wanted:
            continue
        speeds = sorted(e["images_per_second"] for e in run.batches() if e.get("images_per_second"))
        if not speeds:
            continue
        speed = speeds[len(speeds) // 2]
        if request.subset:
            images = request.subset
        elif request.dataset == "mnist_sample":
            images = int(10_000 * (1 - request.validation_split))
        else:
            return None
        return request.epochs * images / speed, speed
    return None


def plan_text(architecture, request, trainable: int) -> str:
    """What ``request`` will train, in one sentence (Markdown)."""
    images = f"{request.subset:,} training images" if request.subset else "all training images"
    return (f"**Will train** `{architecture.name}` ({trainable:,} trainable parameters) "
            f"on **{request.dataset}** ({images}, {request.validation_split:.0%} held out for validation), "
            f"{request.epochs} epoch{'s' * (request.epochs != 1)} of batches of {request.batch_size}, "
            f"{request.recipe} recipe{RATE_PHRASES[request.schedule]}, with **{BACKENDS[request.backend]}** "
            "in a background worker process.")
