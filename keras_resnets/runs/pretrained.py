"""Small pretrained lecture networks shipped in the package, to take apart offline.

``mnist_resnet`` is the lecture's MNIST ResNet (117,802 parameters) and ``mnist_plain`` its
plain twin (the same network without skip connections). Each was trained by
``scripts/make_pretrained.py`` as a run of `keras_resnets.training.train` on the embedded
MNIST sample; ``<name>.json`` keeps that run's config (architecture, digits, recipe, seed:
``validation_split`` and ``seed`` say which digits it never saw, so
`keras_resnets.experiments.lesions.held_out` finds them) and its final metrics, and
``<name>.weights.h5`` its weights, which load on every backend.

Example:
>>> sorted(PRETRAINED)
['mnist_plain', 'mnist_resnet']
>>> all(pretrained_config(name).dataset.name == "mnist_sample" for name in shipped())
True
"""

from pathlib import Path

from keras_resnets.design.validation import check_choice
from keras_resnets.runs.files import read_json
from keras_resnets.runs.records import RunConfig

FOLDER = Path(__file__).resolve().parents[1] / "_data" / "pretrained"
PRETRAINED = {
    "mnist_resnet": "the lecture's MNIST ResNet (25 blocks, 117,802 parameters)",
    "mnist_plain": "its plain twin (the same 25 blocks without skip connections)",
}


def _check(name):
    return check_choice("name", name, sorted(PRETRAINED))


def shipped():
    """The names of `PRETRAINED` whose files are in the package."""
    return [name for name in PRETRAINED if weights_path(name).exists()
            and (FOLDER / f"{name}.json").exists()]


def pretrained_config(name):
    """The `RunConfig` of the run that trained ``name``, with its ``final`` metrics."""
    return RunConfig.from_dict(read_json(FOLDER / f"{_check(name)}.json"))


def weights_path(name):
    """The ``.weights.h5`` file of ``name``."""
    return FOLDER / f"{_check(name)}.weights.h5"


def load_pretrained(name="mnist_resnet"):
    """The pretrained network ``name`` as a `keras.Model` (built in this backend's data format).

    Example:
    >>> model = load_pretrained("mnist_resnet")  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    118154
    """
    from keras_resnets.models.builder import build_resnet

    model = build_resnet(pretrained_config(name).design())
    model.load_weights(weights_path(name))
    return model
