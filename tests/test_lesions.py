"""Taking a trained network apart: lesions, branch norms, paths, held-out digits and the
shipped pretrained lecture networks. Runs on the current KERAS_BACKEND."""

import keras
import numpy as np
import pytest

from keras_resnets import build_resnet, presets
from keras_resnets.experiments import lesions
from keras_resnets.experiments._common import predict


@pytest.fixture(scope="module")
def small():
    """A small lecture ResNet with moved batch-norm statistics, and a few digits."""
    keras.utils.set_random_seed(0)
    model = build_resnet(presets.mnist_resnet(nb_channels=4, nb_blocks=4))
    rng = np.random.default_rng(0)
    for variable in model.non_trainable_weights:  # moving means and variances
        values = keras.ops.convert_to_numpy(variable)
        variable.assign(values + rng.uniform(0.1, 0.5, values.shape).astype("float32"))
    x = rng.normal(size=(6, 28, 28, 1)).astype("float32")
    if keras.config.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    return model, x, np.arange(6) % 10


def _zero_branch(model, index):
    """A copy of ``model`` whose block ``index`` has a residual branch of exactly zero: the
    last batch norm's scale and shift (the branch's output) set to zero."""
    copy = build_resnet(presets.mnist_resnet(nb_channels=4, nb_blocks=4))
    copy.set_weights(model.get_weights())
    block = lesions.blocks_of(copy)[index]
    for weight in block.units[-1]["bn"].weights:
        if weight.name in ("gamma", "beta"):
            weight.assign(np.zeros(weight.shape, "float32"))
    return copy


@pytest.mark.parametrize("index", [0, 2])
def test_deleting_a_block_equals_zeroing_its_branch(small, index):
    model, x, _ = small
    lesioned = predict(lesions.lesion(model, (index,)), x)
    zeroed = predict(_zero_branch(model, index), x)
    np.testing.assert_allclose(lesioned, zeroed, rtol=1e-4, atol=1e-5)
    assert not np.allclose(lesioned, predict(model, x), atol=1e-3), "the block mattered"


def test_delete_each_and_random_report_accuracies(small):
    model, x, y = small
    intact = lesions.lesion_accuracy(model, x, y)
    each = lesions.delete_each(model, x, y)
    assert each.block.tolist() == [1, 2, 3, 4]
    expected = [lesions.lesion_accuracy(model, x, y, (i,)) for i in range(4)]
    np.testing.assert_allclose(each.accuracy, expected)
    np.testing.assert_allclose(each["drop"], intact - each.accuracy)
    curve = lesions.delete_random(model, x, y, samples=2)
    assert curve.k.tolist() == [0, 1, 2, 3]
    assert curve.accuracy.iloc[0] == pytest.approx(intact) and curve["std"].iloc[0] == 0


@pytest.mark.parametrize("deleted, message", [
    ((0, 1, 2, 3), r"keep at least one of the 4 blocks"),
    ((4,), r"deleted=\[4\] is not allowed: block indices in \[0, 4\)"),
    ((-1,), r"block indices"),
])
def test_bad_deletions_are_rejected(small, deleted, message):
    model, x, y = small
    with pytest.raises(ValueError, match=message):
        lesions.lesion_accuracy(model, x, y, deleted)


def test_blocks_that_change_shape_cannot_be_deleted():
    model = build_resnet(presets.get_preset("cifar_resnet20", input_shape=(8, 8, 3)))
    with pytest.raises(ValueError, match=r"stage2_block1 maps .* only blocks that keep"):
        lesions.blocks_of(model)


def test_path_length_shares_are_binomial_and_sum_to_one():
    table = lesions.path_length_shares(25)
    assert table.paths.sum() == 2**25 and table.share.sum() == pytest.approx(1.0)
    assert table.share.idxmax() in (12, 13)
    assert table.paths.tolist()[:3] == [1, 25, 300]


def test_branch_ratios_measure_what_a_lesion_removes(small):
    model, x, _ = small
    ratios = lesions.branch_ratios(model, x)
    assert ratios.block.tolist() == [1, 2, 3, 4] and (ratios.ratio > 0).all()
    zeroed = lesions.branch_ratios(_zero_branch(model, 1), x)
    assert zeroed.ratio.iloc[1] == pytest.approx(0.0, abs=1e-6)
    assert zeroed.ratio.iloc[0] == pytest.approx(ratios.ratio.iloc[0], rel=1e-4)


def test_gradient_by_length_shares_sum_to_one(small):
    model, x, y = small
    table = lesions.gradient_by_length(model, x[:2], y[:2], samples=1, ks=[0, 1, 4])
    assert table.k.tolist() == [0, 1, 4]
    assert table.share.sum() == pytest.approx(1.0) and (table.per_path > 0).all()
    np.testing.assert_allclose(table.carried, table.per_path * np.array([1, 4, 1]))


def test_held_out_digits_are_the_runs_validation_split():
    config = {"dataset": {"name": "mnist_sample", "validation_split": 0.1, "subset": 100},
              "seed": 3, "architecture": {}}
    x, y = lesions.held_out(config, limit=300)
    assert x.shape[0] == 300 and y.shape == (300,)
    again, _ = lesions.held_out(config, limit=300)
    np.testing.assert_array_equal(x, again)
    with pytest.raises(ValueError, match="held no digits out"):
        lesions.held_out({**config, "dataset": {**config["dataset"], "validation_split": 0.0}})


def test_a_pretrained_network_loads_its_weights_and_its_digits(small, tmp_path, monkeypatch):
    import json

    from keras_resnets.runs import pretrained

    model, x, _ = small
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    assert pretrained.shipped() == []
    model.save_weights(pretrained.weights_path("mnist_resnet"))
    config = {"architecture": presets.mnist_resnet(nb_channels=4, nb_blocks=4).to_dict(),
              "dataset": {"name": "mnist_sample", "validation_split": 0.1}, "seed": 0}
    (tmp_path / "mnist_resnet.json").write_text(json.dumps(config))
    assert pretrained.shipped() == ["mnist_resnet"]
    np.testing.assert_allclose(predict(pretrained.load_pretrained("mnist_resnet"), x),
                               predict(model, x), rtol=1e-5, atol=1e-6)
    assert len(lesions.held_out(pretrained.pretrained_config("mnist_resnet"))[1]) == 1000
    with pytest.raises(ValueError, match="name='resnet' is not allowed"):
        pretrained.load_pretrained("resnet")
