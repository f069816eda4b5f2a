"""The experiments: their registry, their building blocks, and the claims they show.

Claims are checked at the hidden "tiny" size. The experiments that train networks run once,
in the notebooks (tests/test_notebooks.py checks their claims there), to keep the suite
short. Everything runs on the current KERAS_BACKEND.
"""

import inspect
import itertools
import math
import re

import keras
import numpy as np
import pandas as pd
import pytest

from keras_resnets.design.architecture import Architecture, Stage, Stem
from keras_resnets.experiments import (
    EXPERIMENTS,
    Result,
    ensembles,
    gradient_norms,
    input_gradient,
    shattered,
)
from keras_resnets.experiments._common import cross_entropy, forward, predict, split_model
from keras_resnets.models.builder import build_resnet


def test_registry_has_the_seven_experiments_with_claims():
    assert list(EXPERIMENTS) == [
        "plain_vs_residual", "shattered_gradients", "looks_linear", "ensembles",
        "stochastic_depth", "highway", "gradient_norms",
    ]
    for name, experiment in EXPERIMENTS.items():
        assert experiment.name == name and experiment.title
        sentences = re.split(r"(?<!et al)\.\s", experiment.claim.strip())
        assert 2 <= len(sentences) <= 3, experiment.claim
        assert re.search(r"et al\. \(?20\d\d", experiment.claim), "cites its paper"
        parameters = inspect.signature(experiment.run).parameters
        assert list(parameters) == ["size", "seed", "progress"]
        assert parameters["size"].default == "quick" and parameters["seed"].default == 0


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_unknown_size_is_rejected_with_the_allowed_ones(name):
    with pytest.raises(ValueError, match=r"size='huge'.*'quick'.*'full'"):
        EXPERIMENTS[name].run(size="huge")


def test_input_gradient_matches_finite_differences():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(5, activation="tanh"),
                              keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    gradient = input_gradient(model, x)
    eps = 1e-2
    numeric = np.zeros_like(x)
    for i in range(3):
        step = np.zeros_like(x)
        step[:, i] = eps
        plus = predict(model, x + step).sum(axis=1)
        minus = predict(model, x - step).sum(axis=1)
        numeric[:, i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(gradient, numeric, atol=1e-3)


def test_input_gradient_leaves_batch_norm_statistics_alone():
    norm = keras.layers.BatchNormalization(momentum=0.0)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4)).astype("float32")
    norm.build(x.shape)
    gradient = input_gradient(lambda h: norm(h, training=True) ** 2, x)
    assert gradient.shape == x.shape and np.isfinite(gradient).all()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(norm.moving_mean), np.zeros(4))


def test_autocorrelation_of_the_noise_references():
    white = np.random.default_rng(0).normal(size=256)
    assert shattered.autocorrelation(np.cumsum(white)) > 0.9
    assert abs(shattered.autocorrelation(white)) < 0.2
    assert shattered.autocorrelation(np.full(256, 0.5)) == 1.0


@pytest.mark.parametrize("n", [1, 3, 10, 54])
def test_path_lengths_are_binomial_and_count_all_paths(n):
    counts = ensembles.path_length_counts(n)
    assert sum(counts) == 2**n
    assert counts == [math.comb(n, k) for k in range(n + 1)]
    assert max(range(n + 1), key=counts.__getitem__) == n // 2


def _small_resnet():
    keras.utils.set_random_seed(0)
    return build_resnet(Architecture(
        input_shape=(6,), stem=Stem(kind="dense", filters=8, kernel_size=1),
        stages=(Stage(blocks=3, channels=8),), block="dense", pooling=None, classes=3,
    ))


def test_lesion_deletes_blocks_by_their_identity_shortcut():
    model = _small_resnet()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(predict(ensembles.lesion(model, ()), x), predict(model, x), atol=1e-5)
    h = model.get_layer("stem_act")(model.get_layer("stem_bn")(model.get_layer("stem_dense")(x)))
    for name in ("stage1_block1", "stage1_block3"):
        h = model.get_layer(name)(h)
    expected = model.get_layer("classifier")(h)
    np.testing.assert_allclose(
        predict(ensembles.lesion(model, (1,)), x), keras.ops.convert_to_numpy(expected), atol=1e-5
    )


def test_gradients_of_all_paths_add_up_to_the_whole_gradient():
    model = _small_resnet()
    x = np.random.default_rng(1).normal(size=(4, 6)).astype("float32")
    y = np.array([0, 1, 2, 1])
    paths = np.array(list(itertools.product([False, True], repeat=3)))
    grads = ensembles.path_gradients(model, x, y, paths)
    assert grads.shape == (8, 4, 8)
    stem, blocks, head = split_model(model)
    h0 = forward(stem, keras.ops.convert_to_tensor(x))
    labels = keras.ops.convert_to_tensor(y)
    whole = input_gradient(lambda h: cross_entropy(labels, forward(head, forward(blocks, h))), h0)
    np.testing.assert_allclose(grads.sum(axis=0), whole, rtol=1e-4, atol=1e-6)
    random = ensembles.random_paths(3, 2, 5, np.random.default_rng(0))
    assert random.shape == (5, 3) and (random.sum(axis=1) == 2).all()


@pytest.fixture(scope="module")
def shattered_tiny():
    reports = []
    result = shattered.run("tiny", progress=lambda fraction, message: reports.append(fraction))
    return result, reports


def test_shattered_gradients_are_ordered_as_in_the_lecture(shattered_tiny):
    result, _ = shattered_tiny
    s = result.summary
    assert s["lag1_1_layer"] > s["lag1_resnet"] > s["lag1_24_layer"]
    assert s["lag1_brown_noise"] > 0.8 and abs(s["lag1_white_noise"]) < 0.2
    assert abs(s["lag1_24_layer"]) < 0.3
    assert s["lag1_crelu_ll"] == 1.0 > s["lag1_crelu"]


def test_results_are_tidy_and_charted(shattered_tiny):
    result, reports = shattered_tiny
    assert isinstance(result, Result) and isinstance(result.data, pd.DataFrame)
    assert list(result.data.columns) == ["network", "seed", "x", "gradient"]
    assert len(result.data) == 256 * len(shattered.NETWORKS)
    assert result.chart.to_dict()["vconcat"]
    assert reports == sorted(reports) and reports[-1] == 1.0


def test_skips_and_batch_norm_keep_the_gradient_norm_level():
    s = gradient_norms.run("tiny").summary
    assert abs(s["log10_ratio_resnet_bn"]) < abs(s["log10_ratio_plain_bn"])
    assert abs(s["log10_ratio_resnet_bn"]) < abs(s["log10_ratio_resnet"])


def test_gradient_norms_run_on_the_convolutional_network():
    config = gradient_norms.Config(network="conv", pool=4, width=4, num_train=8, blocks=2, seeds=1)
    data = gradient_norms.run(config).data
    assert len(data) == 2 * len(gradient_norms.VARIANTS)
    assert np.isfinite(data.gradient_norm).all() and (data.gradient_norm > 0).all()
