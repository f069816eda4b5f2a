"""Tests of keras_resnets.training.request: the typed request of one run, its JSON (the request's
keys of config.json), its checks and its errors (no training)."""

import dataclasses
import json

import pytest

from keras_resnets import presets
from keras_resnets.data.spec import DataSpec
from keras_resnets.runs.records import DataConfig, RunConfig
from keras_resnets.training import Recipe, TrainingRequest

ARCH = presets.mnist_resnet(nb_channels=4, nb_blocks=1)
REQUESTS = [
    TrainingRequest(ARCH),
    TrainingRequest(ARCH, DataSpec("mnist_sample", subset=256, validation_split=0.2, augment=True),
                    Recipe.paper(epochs=3, warmup_epochs=1), seed=7, distribution="data_parallel"),
    TrainingRequest(ARCH.replace(input_shape=(8, 6, 3), classes=3),
                    DataSpec("/data/pets", validation_split=0.0, validation_dataset="/data/pets-val",
                             transforms="imagenet"),
                    Recipe.goyal(batch_size=64), processes=2),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_a_request_round_trips_through_its_json(request_):
    data = json.loads(json.dumps(request_.to_dict()))
    assert TrainingRequest.from_dict(data) == request_
    assert TrainingRequest.from_config({**data, "backend": "jax", "versions": {}, "created": "t",
                                        "engine": "jax.distributed"}) == request_


def test_its_json_is_the_request_part_of_config_json():
    """A run of one process keeps the keys of older configs: no ``processes``."""
    assert sorted(REQUESTS[0].to_dict()) == ["architecture", "dataset", "distribution", "recipe", "seed"]
    assert REQUESTS[2].to_dict()["processes"] == 2
    assert REQUESTS[1].to_dict()["dataset"] == REQUESTS[1].dataset.to_dict()
    assert REQUESTS[1].to_dict()["recipe"] == REQUESTS[1].recipe.to_dict()


def test_parts_are_read_from_their_json_and_checked_on_construction():
    request = TrainingRequest(ARCH.to_json(), {"name": "mnist_sample", "subset": 64}, {"epochs": 2})
    assert request == TrainingRequest(ARCH, DataSpec(subset=64), Recipe(epochs=2))
    assert TrainingRequest(ARCH, "cifar10").dataset == DataSpec("cifar10")
    with pytest.raises(ValueError, match="seed=-1"):
        request.replace(seed=-1)
    with pytest.raises(ValueError, match="unknown field"):
        request.replace(backend="jax")


def test_build_fits_a_preset_to_the_data_and_changes_recipe_fields():
    request = TrainingRequest.build("cifar_resnet20", "mnist_sample", Recipe.paper(), subset=64, epochs=2)
    assert (request.architecture.input_shape, request.architecture.classes) == ((28, 28, 1), 10)
    assert request.recipe == Recipe.paper(epochs=2) and request.dataset == DataSpec(subset=64)


@pytest.mark.parametrize("change, message", [
    ({"recipe": {"epochs": 0}}, "recipe: epochs=0 is not allowed"),
    ({"recipe": {"lr": 0.1}}, "recipe: recipe has unknown field(s) ['lr']"),
    ({"dataset": {"subset": 0}}, "dataset: subset=0 is not allowed"),
    ({"dataset": "cifar10"}, "dataset: dataset='cifar10' is not allowed"),
    ({"architecture": {"name": "x", "classes": "ten"}}, "architecture: classes='ten' is not allowed"),
    ({"architecture": None}, "architecture: architecture=None is not allowed: a dict"),
    ({"seed": "3"}, "seed='3' is not allowed"),
    ({"distribution": "model_parallel"}, "distribution='model_parallel' is not allowed"),
    ({"processes": 0}, "--processes=0 is not allowed"),
    ({"processes": 2, "recipe": {"batch_size": 15}}, "must be a multiple of --processes=2"),
    ({"processes": 2, "dataset": {"name": "cifar10"}}, "cannot share dataset 'cifar10'"),
    ({"backend": "jax"}, "request has unknown field(s) ['backend']"),
])
def test_a_wrong_request_is_one_line_that_names_the_field(change, message):
    with pytest.raises(ValueError) as error:
        TrainingRequest.from_dict({**REQUESTS[0].to_dict(), **change})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_request_needs_its_three_parts_and_is_an_object():
    for part in ("architecture", "dataset", "recipe"):
        with pytest.raises(ValueError, match=f"^{part}=None is not allowed: the request's {part}"):
            TrainingRequest.from_dict({k: v for k, v in REQUESTS[0].to_dict().items() if k != part})
    older = {k: v for k, v in REQUESTS[1].to_dict().items() if k not in ("seed", "distribution")}
    assert TrainingRequest.from_dict(older) == REQUESTS[1].replace(seed=0, distribution="none")
    with pytest.raises(ValueError, match="request=.* is not allowed"):
        TrainingRequest.from_dict([1])


def test_a_run_of_a_deleted_folder_still_reads(tmp_path):
    """A DataSpec checks no folder's existence: the request of a run whose images are gone reads."""
    gone = tmp_path / "gone"
    config = {**REQUESTS[2].to_dict(), "dataset": {"name": str(gone), "validation_split": 0.0,
                                                  "validation_dataset": str(gone / "val")}}
    request = TrainingRequest.from_config(RunConfig.from_dict(config))
    assert request.dataset.name == str(gone) and not gone.exists()


def test_data_config_reads_the_fields_of_data_spec():
    """The run store's tolerant reading and the checked spec keep one list of fields."""
    assert {f.name for f in dataclasses.fields(DataConfig)} == {f.name for f in dataclasses.fields(DataSpec)}
