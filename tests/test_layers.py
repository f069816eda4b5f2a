"""The small layers: CReLU, LooksLinear, StochasticDepth + linear_decay, Shortcut, highway layers."""

import functools
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_resnets import LooksLinear
from keras_resnets.layers import (
    CReLU,
    HighwayConv2D,
    HighwayDense,
    PreActBottleneckBlock,
    ResBlock,
    Shortcut,
    StochasticDepth,
    fast,
    linear_decay,
)
from keras_resnets.layers.fast import BatchNormalization, Conv2D, ReLU

BACKEND = keras.backend.backend()


def _to_format(x, data_format):
    """An NHWC NumPy array in ``data_format``."""
    return x if data_format == "channels_last" else np.transpose(x, (0, 3, 1, 2))


def _from_format(x, data_format):
    return x if data_format == "channels_last" else np.transpose(x, (0, 2, 3, 1))


def _values(variable):
    return keras.ops.convert_to_numpy(variable)


def _weights(layer):
    """``{path relative to the layer: NumPy value}``."""
    return {v.path.split("/", 1)[1]: _values(v) for v in layer.weights}


def _binomial_ok(count, n, p, sigmas=4.0):
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# -- CReLU --------------------------------------------------------------------------------------


def _crelu_reference(x, axis):
    pair = np.stack([np.maximum(x, 0), np.maximum(-x, 0)], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] *= 2
    return pair.reshape(shape)


def test_crelu_interleaves_relu_of_x_and_minus_x_on_vectors(run):
    x = np.array([[1.0, -2.0, 0.5], [-1.0, 3.0, 0.0]], "float32")
    y = run(CReLU(), x)
    np.testing.assert_array_equal(
        y, [[1.0, 0.0, 0.0, 2.0, 0.5, 0.0], [0.0, 1.0, 3.0, 0.0, 0.0, 0.0]]
    )


def test_crelu_on_images_follows_the_data_format(data_format, run, rng):
    x = _to_format(rng.standard_normal((2, 5, 6, 3)).astype("float32"), data_format)
    axis = 3 if data_format == "channels_last" else 1
    layer = CReLU()
    y = run(layer, x)
    np.testing.assert_array_equal(y, _crelu_reference(x, axis))
    assert layer.compute_output_shape(x.shape) == y.shape
    assert layer.compute_output_shape((None,) + x.shape[1:])[1:] == y.shape[1:]


def test_crelu_explicit_axis(run, rng):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    np.testing.assert_array_equal(run(CReLU(axis=1), x), _crelu_reference(x, 1))
    np.testing.assert_array_equal(run(CReLU(axis=-1), x), _crelu_reference(x, 2))


def test_crelu_rejects_a_non_integer_axis():
    with pytest.raises(ValueError, match="axis"):
        CReLU(axis="channels")


# -- LooksLinear ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 5), (3, 3, 8, 4)])
def test_looks_linear_rows_come_in_opposite_pairs(shape):
    w = _values(LooksLinear()(shape))
    assert w.shape == shape
    np.testing.assert_array_equal(w[..., 0::2, :], -w[..., 1::2, :])
    assert np.abs(w).min() >= 0 and np.abs(w).max() > 0


def test_looks_linear_after_crelu_is_the_half_width_linear_map(run, rng):
    w = _values(LooksLinear(seed=1)((8, 3)))
    x = rng.standard_normal((5, 4)).astype("float32")
    phi = run(CReLU(), x)
    np.testing.assert_allclose(phi @ w, x @ w[0::2], rtol=1e-5, atol=1e-6)


def test_looks_linear_base_initialiser_and_seed():
    half = _values(keras.initializers.Orthogonal(seed=3)((2, 3)))
    w = _values(LooksLinear(seed=3)((4, 3)))
    np.testing.assert_allclose(w[0::2], half, rtol=1e-6)
    np.testing.assert_array_equal(w, _values(LooksLinear(seed=3)((4, 3))))
    assert not np.array_equal(_values(LooksLinear()((4, 3))), _values(LooksLinear()((4, 3))))
    np.testing.assert_array_equal(_values(LooksLinear(base="ones")((4, 2))), [[1, 1], [-1, -1]] * 2)


def test_looks_linear_seed_needs_a_random_base():
    with pytest.raises(ValueError, match="seed"):
        LooksLinear(base="zeros", seed=1)


@pytest.mark.parametrize("shape", [(5, 4), (3, 3, 3, 4), (4,)])
def test_looks_linear_needs_an_even_input_dimension(shape):
    with pytest.raises(ValueError, match="even"):
        LooksLinear()(shape)


# -- stochastic depth -----------------------------------------------------------------------------


def test_linear_decay_values():
    assert [linear_decay(l, 4, 0.5) for l in (1, 2, 3, 4)] == [0.875, 0.75, 0.625, 0.5]
    assert linear_decay(54, 54, 0.5) == 0.5
    assert [linear_decay(l, 3, 1.0) for l in (1, 2, 3)] == [1.0, 1.0, 1.0]
    values = [linear_decay(l, 10, 0.2) for l in range(1, 11)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((0, 4), "block_index"),
        ((5, 4), "block_index"),
        ((1, 0), "num_blocks"),
        (("1", 4), "block_index"),
        ((1, 4.0), "num_blocks"),
        ((1, 4, 0.0), "final_survival_probability"),
        ((1, 4, 1.5), "final_survival_probability"),
        ((1, 4, "0.5"), "final_survival_probability"),
        ((1, 4, True), "final_survival_probability"),
    ],
)
def test_linear_decay_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        linear_decay(*args)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"survival_probability": 0.0}, "survival_probability"),
        ({"survival_probability": 1.2}, "survival_probability"),
        ({"survival_probability": "0.5"}, "survival_probability"),
        ({"survival_probability": True}, "survival_probability"),
        ({"mode": "row"}, "mode"),
    ],
)
def test_stochastic_depth_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StochasticDepth(**kwargs)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_stochastic_depth_at_inference_is_deterministic(mode, run, rng):
    x = rng.standard_normal((4, 3, 3, 2)).astype("float32")
    layer = StochasticDepth(0.8, mode, seed=0)
    y1, y2 = run(layer, x), run(layer, x)
    np.testing.assert_array_equal(y1, y2)
    # The paper scales a batch-mode branch by p at test time; drop path is already rescaled.
    np.testing.assert_allclose(y1, x * 0.8 if mode == "batch" else x, rtol=1e-6)
    assert layer.compute_output_shape(x.shape) == x.shape


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_stochastic_depth_with_p_one_is_the_identity(mode, run, rng):
    x = rng.standard_normal((3, 4)).astype("float32")
    np.testing.assert_array_equal(run(StochasticDepth(1.0, mode), x, training=True), x)


def _training_draws(layer, x, n):
    """``n`` successive training-mode outputs of ``layer`` on ``x``, compiled where eager
    random draws are slow (JAX: a jitted stateless call threading the seed state)."""
    x = keras.ops.convert_to_tensor(x)
    layer(x, training=True)
    if BACKEND == "jax":
        import jax

        step = jax.jit(lambda state: layer.stateless_call([], state, x, training=True))
        state, out = [v.value for v in layer.non_trainable_variables], []
        for _ in range(n):
            y, state = step(state)
            out.append(np.asarray(y))
        return np.stack(out)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda: layer(x, training=True))
        return np.stack([step().numpy() for _ in range(n)])
    return np.stack([keras.ops.convert_to_numpy(layer.call(x, training=True)) for _ in range(n)])


def test_stochastic_depth_batch_mode_drops_the_whole_batch_at_rate_1_minus_p():
    p, draws = 0.7, 2000
    y = _training_draws(StochasticDepth(p, "batch", seed=1), np.ones((3, 2), "float32"), draws)
    per_draw = y.reshape(draws, -1)
    assert np.all(per_draw == per_draw[:, :1])  # the whole batch is kept or dropped together
    assert set(np.unique(per_draw)) <= {0.0, 1.0}  # kept branches are not rescaled
    kept = int(per_draw[:, 0].sum())
    assert _binomial_ok(kept, draws, p), kept


def test_stochastic_depth_sample_mode_drops_examples_independently_and_rescales(run):
    p, n = 0.7, 2000
    layer = StochasticDepth(p, "sample", seed=2)
    y = run(layer, np.ones((n, 2, 2, 3), "float32"), training=True)
    per_example = y.reshape(n, -1)
    assert np.all(per_example == per_example[:, :1])  # one draw per example
    values = np.unique(per_example)
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / p)
    kept = int((per_example[:, 0] > 0).sum())
    assert _binomial_ok(kept, n, p), kept
    # The expectation is preserved and the next call draws again.
    assert abs(per_example.mean() - 1.0) < 4 * math.sqrt((1 - p) / p / n)
    assert not np.array_equal(y, run(layer, np.ones((n, 2, 2, 3), "float32"), training=True))


# -- shortcut -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "strides", "filters"), [(7, 2, 8), (8, 2, 8), (6, 1, 10), (9, 3, 4)])
def test_option_a_is_subsampling_plus_zero_channels(data_format, run, rng, size, strides, filters):
    x_nhwc = rng.standard_normal((2, size, size, 4)).astype("float32")
    layer = Shortcut("A", filters, strides)
    y = _from_format(run(layer, _to_format(x_nhwc, data_format)), data_format)
    expected = np.zeros((2, -(-size // strides), -(-size // strides), filters), "float32")
    expected[..., :4] = x_nhwc[:, ::strides, ::strides, :]
    np.testing.assert_array_equal(y, expected)
    assert layer.weights == [] and layer.count_params() == 0
    x_shape = _to_format(x_nhwc, data_format).shape
    assert layer.compute_output_shape(x_shape) == _to_format(expected, data_format).shape


def test_option_a_on_vectors_appends_zero_features(run, rng):
    x = rng.standard_normal((3, 5)).astype("float32")
    y = run(Shortcut("A", 7), x)
    np.testing.assert_array_equal(y, np.concatenate([x, np.zeros((3, 2), "float32")], axis=1))


def test_option_a_cannot_remove_channels(run):
    with pytest.raises(ValueError, match="only add channels"):
        run(Shortcut("A", 2), np.ones((1, 4, 4, 4), "float32"))


def _random_bn_stats(rng, width):
    """Random gamma, beta and moving statistics, so batch norm is not a no-op."""
    return {
        "gamma": rng.uniform(0.5, 1.5, width),
        "beta": rng.standard_normal(width),
        "moving_mean": rng.standard_normal(width),
        "moving_variance": rng.uniform(0.5, 2.0, width),
    }


@pytest.mark.parametrize("option", ["B", "C"])
def test_projection_shortcut_is_strided_1x1_conv_and_batch_norm(data_format, run, rng, option):
    x_nhwc = rng.standard_normal((2, 7, 7, 3)).astype("float32")
    layer = Shortcut(option, 5, 2, bn_epsilon=1e-3)
    run(layer, _to_format(x_nhwc, data_format))
    stats = _random_bn_stats(rng, 5)
    for v in layer.weights:
        key = v.path.rsplit("/", 1)[1]
        if key in stats:
            v.assign(stats[key].astype("float32"))
    w = _weights(layer)
    assert w["projection/kernel"].shape == (1, 1, 3, 5)
    assert layer.count_params() == 3 * 5 + 4 * 5
    y = _from_format(run(layer, _to_format(x_nhwc, data_format)), data_format)
    z = x_nhwc[:, ::2, ::2, :] @ w["projection/kernel"][0, 0]
    z = (z - stats["moving_mean"]) / np.sqrt(stats["moving_variance"] + 1e-3)
    z = z * stats["gamma"] + stats["beta"]
    np.testing.assert_allclose(y, z, rtol=1e-4, atol=1e-5)


def test_projection_shortcut_on_vectors_is_dense_without_batch_norm(run, rng):
    layer = Shortcut("B", 6, batch_norm=False)
    x = rng.standard_normal((3, 4)).astype("float32")
    y = run(layer, x)
    np.testing.assert_allclose(y, x @ _weights(layer)["projection/kernel"], rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 24


@pytest.mark.parametrize("option", ["A", "B"])
def test_shortcut_compute_output_shape_matches(data_format, run, option):
    layer = Shortcut(option, 8, 2)
    x = np.ones((1, 4, 5, 5) if data_format == "channels_first" else (1, 5, 5, 4), "float32")
    assert run(layer, x).shape == layer.compute_output_shape(x.shape)
    unknown = (None, 4, None, 9) if data_format == "channels_first" else (None, None, 9, 4)
    expected = (None, 8, None, 5) if data_format == "channels_first" else (None, None, 5, 8)
    assert layer.compute_output_shape(unknown) == expected


def test_shortcut_on_vectors_refuses_strides(run):
    with pytest.raises(ValueError, match="strides"):
        run(Shortcut("B", 4, 2), np.ones((2, 4), "float32"))


@pytest.mark.parametrize(
    ("args", "name"),
    [(("D", 4), "shortcut"), (("A", 0), "filters"), (("B", "4"), "filters"), (("B", 4, 0), "strides")],
)
def test_shortcut_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        Shortcut(*args)


# -- highway --------------------------------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("bias", [-2.0, -3.5, 1.0])
def test_highway_gate_bias_starts_at_the_configured_value(run, bias):
    dense = HighwayDense(transform_gate_bias=bias)
    run(dense, np.ones((1, 6), "float32"))
    np.testing.assert_array_equal(_weights(dense)["transform_gate/bias"], np.full(6, bias, "float32"))
    conv = HighwayConv2D(3, transform_gate_bias=bias, data_format="channels_last")
    run(conv, np.ones((1, 5, 5, 4), "float32"))
    np.testing.assert_array_equal(_weights(conv)["transform_gate/bias"], np.full(4, bias, "float32"))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_highway_dense_is_t_h_plus_one_minus_t_x(run, rng, activation):
    layer = HighwayDense(activation=activation)
    x = rng.standard_normal((4, 6)).astype("float32")
    run(layer, x)
    for v in layer.weights:  # a gate that is neither shut nor open
        v.assign(rng.standard_normal(v.shape).astype("float32"))
    w = _weights(layer)
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}[activation]
    h = act(x @ w["transform/kernel"] + w["transform/bias"])
    t = _sigmoid(x @ w["transform_gate/kernel"] + w["transform_gate/bias"])
    np.testing.assert_allclose(run(layer, x), t * h + (1 - t) * x, rtol=1e-4, atol=1e-5)


def test_highway_conv_combines_its_own_h_and_t(data_format, run, rng):
    layer = HighwayConv2D(3)
    x = _to_format(rng.standard_normal((2, 6, 6, 4)).astype("float32"), data_format)
    y = run(layer, x)
    assert y.shape == x.shape == layer.compute_output_shape(x.shape)
    h = np.maximum(run(layer.transform, x), 0)
    t = _sigmoid(run(layer.gate, x))
    np.testing.assert_allclose(y, t * h + (1 - t) * x, rtol=1e-4, atol=1e-5)
    # Gate bias -2: the layer starts closer to carrying its input than to transforming it.
    assert float(np.mean(t)) < 0.5


def test_highway_without_residual_is_h_alone(run, rng):
    layer = HighwayDense(residual=False, use_bias=False)
    x = rng.standard_normal((3, 5)).astype("float32")
    y = run(layer, x)
    assert set(_weights(layer)) == {"transform/kernel"}
    h = np.maximum(x @ _weights(layer)["transform/kernel"], 0)
    np.testing.assert_allclose(y, h, rtol=1e-5, atol=1e-6)


def test_highway_with_batch_norm(data_format, run, rng):
    layer = HighwayConv2D(3, batch_norm=True)
    x = _to_format(rng.standard_normal((2, 5, 5, 4)).astype("float32"), data_format)
    assert run(layer, x, training=True).shape == x.shape
    assert {"bn/gamma", "bn/moving_mean"} <= set(_weights(layer))


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: HighwayDense(activation="crelu"), "activation"),
        (lambda: HighwayDense(activation="sigmoid"), "activation"),
        (lambda: HighwayConv2D(4), "kernel_size"),
        (lambda: HighwayConv2D("3"), "kernel_size"),
        (lambda: HighwayDense(transform_gate_bias="-2"), "transform_gate_bias"),
        (lambda: HighwayDense(data_format="NHWC"), "data_format"),
    ],
)
def test_highway_rejects_bad_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


# -- the fast paths: select ReLU (JAX), fused batch norm (TensorFlow, PyTorch), conv and direct
#    sub-layer calls (PyTorch) ------------------------------------------------------------------


def test_fast_relu_is_relu(run):
    x = np.array([[-2.0, -0.0, 0.0, 1e-30, 3.0]], "float32")
    np.testing.assert_array_equal(run(ReLU(), x), np.maximum(x, 0))


def _twin_models(bn, input_shape, axis, affine=True, jit_compile="auto"):
    inputs = keras.Input(input_shape)
    if len(input_shape) == 1:
        h = keras.layers.Dense(3)(inputs)
    else:  # channels first through a transpose: TensorFlow's CPU convolutions are NHWC only
        h = keras.layers.Conv2D(3, 3, data_format="channels_last")(inputs)
        h = h if axis == -1 else keras.layers.Permute((3, 1, 2))(h)
    h = bn(axis=axis, momentum=0.8, epsilon=1e-5, center=affine, scale=affine)(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(ReLU()(h))))
    model.compile(optimizer=keras.optimizers.SGD(0.5), jit_compile=jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.mark.parametrize(("input_shape", "axis", "affine", "jit_compile"), [
    ((6, 6, 2), -1, True, "auto"),
    ((6, 6, 2), 1, True, "auto"),
    ((6, 6, 2), -1, False, "auto"),
    ((6, 6, 2), -1, True, True),
    ((4,), -1, True, "auto"),
])
def test_fast_batch_norm_trains_as_keras_does(input_shape, axis, affine, jit_compile, rng):
    """With Keras' variance rule: same outputs, gradients and moving statistics as
    `keras.layers.BatchNormalization`, over
    a few SGD steps (on PyTorch and, for images, TensorFlow through the fused kernel; elsewhere
    through Keras' own)."""
    if jit_compile is True and BACKEND == "torch":
        pytest.skip("torch.compile of a training step takes minutes on this CPU")
    keras.utils.set_random_seed(0)
    reference = _twin_models(keras.layers.BatchNormalization, input_shape, axis, affine,
                             jit_compile)
    keras_rule = functools.partial(BatchNormalization, unbiased_variance=False)
    fast = _twin_models(keras_rule, input_shape, axis, affine, jit_compile)
    fast.set_weights(reference.get_weights())
    x = (3 * rng.standard_normal((16, *input_shape)) + 1).astype("float32")
    y = np.arange(16) % 2
    bn = next(layer for layer in fast.layers if isinstance(layer, BatchNormalization))
    assert not bn.unbiased_variance
    fused = BACKEND == "torch" or (BACKEND == "tensorflow" and len(input_shape) == 3)
    assert bn.fuses(keras.ops.convert_to_tensor(x[:1])) == fused
    for model in (reference, fast):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(reference.weights, fast.weights):
        np.testing.assert_allclose(_values(b), _values(a), rtol=1e-4, atol=1e-5, err_msg=a.path)
    np.testing.assert_allclose(fast.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("policy", "tolerance"), [("mixed_bfloat16", 1e-2), ("mixed_float16", 1e-3)])
def test_fast_batch_norm_fuses_mixed_precision_and_trains_as_keras_does(policy, tolerance, rng):
    """Under a mixed policy (half-precision inputs, float32 statistics) the fused kernels take
    the layer too: the same outputs and moving statistics as Keras' own layer, and the same
    weights after two epochs of SGD, to the half precision's rounding."""
    from keras_resnets.runtime.precision import dtype_policy_scope

    keras.utils.set_random_seed(0)
    with dtype_policy_scope(policy):
        reference = _twin_models(keras.layers.BatchNormalization, (6, 6, 2), -1)
        fast = _twin_models(functools.partial(BatchNormalization, unbiased_variance=False),
                            (6, 6, 2), -1)
    fast.set_weights(reference.get_weights())
    bn = next(layer for layer in fast.layers if isinstance(layer, BatchNormalization))
    x = (3 * rng.standard_normal((16, 6, 6, 2)) + 1).astype("float32")
    h = keras.ops.cast(keras.ops.ones((1, 4, 4, 3)), policy.removeprefix("mixed_"))
    assert bn.fuses(h) == (BACKEND in ("torch", "tensorflow"))
    assert bn.moving_mean.dtype == "float32"
    y = np.arange(16) % 2
    for model in (reference, fast):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(reference.weights, fast.weights):
        np.testing.assert_allclose(_values(b), _values(a), rtol=tolerance, atol=tolerance,
                                   err_msg=a.path)
    np.testing.assert_allclose(fast.predict(x, verbose=0), reference.predict(x, verbose=0),
                               rtol=10 * tolerance, atol=10 * tolerance)


@pytest.mark.parametrize(("shape", "axis"), [((4, 5, 3, 3), 1), ((4, 3, 3, 5), -1), ((6, 5), -1)])
def test_batch_norm_moves_its_statistics_as_pytorch_does(shape, axis, run, rng):
    """One training-mode call moves the moving mean and variance as ``torch.nn.BatchNorm``
    (momentum 0.1, the unbiased batch variance), on the fused paths and Keras' own."""
    import torch

    x = (3 * rng.standard_normal(shape) + 1).astype("float32")
    mean, variance = rng.uniform(-1, 1, 5), rng.uniform(0.5, 2, 5)
    bn = BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5)
    bn.build(shape)
    bn.set_weights([np.full(5, 1.5), np.full(5, 0.1), mean, variance])
    y = run(bn, x, training=True)
    reference = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(5)
    with torch.no_grad():
        reference.weight.fill_(1.5)
        reference.bias.fill_(0.1)
        reference.running_mean.copy_(torch.from_numpy(mean))
        reference.running_var.copy_(torch.from_numpy(variance))
        expected = reference.train()(torch.from_numpy(np.moveaxis(x, axis, 1))).numpy()
    np.testing.assert_allclose(y, np.moveaxis(expected, 1, axis), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_values(bn.moving_mean), reference.running_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(_values(bn.moving_variance), reference.running_var.numpy(), rtol=1e-5)


def test_batch_norm_stateless_call_leaves_its_variables_and_returns_the_moved_statistics(rng):
    """A stateless call (``stateless_call``, JAX's way of training) returns the statistics a
    stateful call moves to, and changes no variable, though PyTorch's kernel moves them in
    place in a stateful call."""
    x = keras.ops.convert_to_tensor((3 * rng.standard_normal((4, 3, 3, 5)) + 1).astype("float32"))
    stateful, stateless = (BatchNormalization(momentum=0.9, epsilon=1e-5) for _ in range(2))
    for bn in (stateful, stateless):
        bn.build(x.shape)
    before = [_values(v) for v in stateless.non_trainable_variables]
    expected_y = stateful(x, training=True)
    y, moved = stateless.stateless_call(
        [v.value for v in stateless.trainable_variables],
        [v.value for v in stateless.non_trainable_variables], x, training=True)
    for variable, value in zip(stateless.non_trainable_variables, before):
        np.testing.assert_array_equal(_values(variable), value)
    for value, expected in zip(moved, stateful.non_trainable_variables):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(value), _values(expected),
                                   rtol=1e-6)
    np.testing.assert_allclose(_values(y), _values(expected_y), rtol=1e-6, atol=1e-6)


def test_batch_norm_moves_float32_statistics_under_a_mixed_policy(rng):
    """Under ``mixed_bfloat16`` (the default on CPUs with AMX or AVX-512 BF16) the moving statistics stay
    float32 and move as in float32, to bfloat16's rounding of the inputs."""
    from keras_resnets.runtime.precision import dtype_policy_scope

    x = (3 * rng.standard_normal((8, 4, 4, 3)) + 1).astype("float32")
    layers = []
    for policy in ("float32", "mixed_bfloat16"):
        with dtype_policy_scope(policy):
            layers.append(BatchNormalization(momentum=0.5, epsilon=1e-5))
        layers[-1](keras.ops.cast(x, layers[-1].compute_dtype), training=True)
    assert layers[1].moving_mean.dtype == "float32"
    for name in ("moving_mean", "moving_variance"):
        expected, moved = (_values(getattr(layer, name)) for layer in layers)
        assert not np.allclose(moved, 1.0 if name == "moving_variance" else 0.0)  # it moved
        np.testing.assert_allclose(moved, expected, rtol=2e-2, atol=2e-2)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="oneDNN kernels are TensorFlow's")
def test_fast_batch_norm_trains_as_keras_does_with_onednn():
    """The same comparison through oneDNN's batch norm, which keras_resnets' workers turn on
    (``TF_ENABLE_ONEDNN_OPTS=1`` is read when TensorFlow is imported: a new process)."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "test_fast_batch_norm_trains_as_keras_does and not onednn"],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("5 passed"), proc.stdout[-3000:]


@pytest.mark.parametrize("kwargs", [{"renorm": True}] + (  # Keras synchronises on TF only
    [{"synchronized": True}] if BACKEND == "tensorflow" else []))
def test_fast_batch_norm_leaves_what_it_does_not_fuse_to_keras(kwargs):
    assert not BatchNormalization(**kwargs).fuses(keras.ops.zeros((2, 4, 4, 3)))


def test_fast_batch_norm_frozen_uses_the_moving_statistics_as_keras_does(rng):
    """A frozen layer (``trainable=False``) normalises with its moving statistics even when
    called with ``training=True``, and does not update them (Keras 3)."""
    x = (3 * rng.standard_normal((8, 4, 4, 3)) + 1).astype("float32")
    layers = [cls(momentum=0.5) for cls in (keras.layers.BatchNormalization, BatchNormalization)]
    for layer in layers:
        layer.build(x.shape)
        layer.set_weights([np.full(3, 2.0), np.full(3, 0.5), np.full(3, 1.0), np.full(3, 4.0)])
        layer.trainable = False
    outputs = [_values(layer(keras.ops.convert_to_tensor(x), training=True)) for layer in layers]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[1], 2.0 * (x - 1.0) / np.sqrt(4.0 + 1e-3) + 0.5, rtol=1e-5)
    np.testing.assert_array_equal(_values(layers[1].moving_mean), np.full(3, 1.0))


_CONV_CASES = [  # (kernel_size, strides, padding, dilation_rate, groups, use_bias, size, channels)
    (3, 1, "same", 1, 1, True, 8, 4),
    (3, 2, "valid", 1, 1, False, 9, 4),
    (1, 2, "valid", 1, 1, False, 8, 3),  # PyTorch 2.13's own strided 1x1 gradient is wrong here
    (1, 2, "same", 1, 1, True, 9, 16),
    (3, 2, "same", 1, 1, True, 9, 4),  # symmetric 'same' with a stride: fused
    (3, 2, "same", 1, 1, True, 8, 4),  # asymmetric 'same': Keras' own path
    (3, 1, "same", 2, 1, True, 8, 4),
    (3, 1, "same", 1, 2, True, 8, 4),
]


def _conv_formats():
    # TensorFlow's CPU convolutions are NHWC only.
    return ["channels_last"] + ([] if BACKEND == "tensorflow" else ["channels_first"])


def _numpy_conv_patches(x, kernel_size, strides, padding, dilation):
    """``patches[b, i, j, p, q, c]``: the input under kernel tap ``(p, q)`` of output ``(i, j)``,
    padded as Keras pads (the extra pixel of an odd 'same' padding at the end)."""
    span = (kernel_size - 1) * dilation + 1
    pads = []
    for n in x.shape[1:3]:
        total = max((-(-n // strides) - 1) * strides + span - n, 0) if padding == "same" else 0
        pads.append((total // 2, total - total // 2))
    xp = np.pad(x, ((0, 0), *pads, (0, 0)))
    out = [(xp.shape[a] - span) // strides + 1 for a in (1, 2)]
    taps = range(kernel_size)
    return np.stack([np.stack([
        xp[:, p * dilation:p * dilation + strides * out[0]:strides,
           q * dilation:q * dilation + strides * out[1]:strides] for q in taps], 3) for p in taps], 3)


@pytest.mark.parametrize("data_format", _conv_formats())
@pytest.mark.parametrize(("kernel_size", "strides", "padding", "dilation", "groups", "use_bias",
                          "size", "channels"), _CONV_CASES)
def test_fast_conv_computes_the_convolution_and_its_gradient(
        data_format, kernel_size, strides, padding, dilation, groups, use_bias, size, channels,
        rng):
    """Outputs and one SGD step's kernel and bias equal a NumPy convolution and its gradient;
    on PyTorch through one ``conv2d`` call wherever Keras' padding is symmetric."""
    x = rng.standard_normal((4, size, size, channels)).astype("float32")
    conv = Conv2D(6, kernel_size, strides=strides, padding=padding, dilation_rate=dilation,
                  groups=groups, use_bias=use_bias, bias_initializer="random_normal",
                  data_format=data_format)
    model = keras.Sequential([keras.Input(_to_format(x, data_format).shape[1:]), conv])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    kernel = _values(conv.kernel)
    bias = _values(conv.bias) if use_bias else np.zeros(6, "float32")

    patches = _numpy_conv_patches(x, kernel_size, strides, padding, dilation)
    c_in, c_out = channels // groups, 6 // groups
    groups_in = [slice(g * c_in, (g + 1) * c_in) for g in range(groups)]
    groups_out = [slice(g * c_out, (g + 1) * c_out) for g in range(groups)]
    y = np.concatenate([np.einsum("bijpqc,pqco->bijo", patches[..., gi], kernel[..., go])
                        for gi, go in zip(groups_in, groups_out)], -1) + bias
    dy = 2 * y / y.size  # the gradient of the mean squared output
    dkernel = np.concatenate([np.einsum("bijpqc,bijo->pqco", patches[..., gi], dy[..., go])
                              for gi, go in zip(groups_in, groups_out)], -1)

    got = model.predict(_to_format(x, data_format), verbose=0)
    np.testing.assert_allclose(_from_format(got, data_format), y, rtol=1e-4, atol=1e-5)
    model.fit(_to_format(x, data_format), np.zeros_like(got), batch_size=4, epochs=1, verbose=0)
    np.testing.assert_allclose(_values(conv.kernel), kernel - 0.1 * dkernel, rtol=1e-4, atol=1e-6)
    if use_bias:
        np.testing.assert_allclose(_values(conv.bias), bias - 0.1 * dy.sum((0, 1, 2)),
                                   rtol=1e-4, atol=1e-6)
    symmetric = not (padding == "same" and strides > 1 and size % 2 == 0 and kernel_size > 1)
    first = keras.ops.convert_to_tensor(_to_format(x[:1], data_format))
    fused = conv.torch_padding(first) is not None
    assert fused == (BACKEND == "torch" and symmetric)


def _sublayers(block):
    return [layer for layer in block._flatten_layers(include_self=False, recursive=True)
            if not layer._layers]


_BLOCKS = {
    "ResBlock": lambda: ResBlock(4, seed=1),
    "PreActBottleneckBlock, strided projection": lambda: PreActBottleneckBlock(
        2, strides=2, shortcut="B", seed=1),
    "ResBlock, stochastic depth": lambda: ResBlock(4, survival_probability=0.5, seed=1),
}


@pytest.mark.parametrize("make", _BLOCKS.values(), ids=_BLOCKS.keys())
def test_direct_sublayer_calls_train_as_keras_calls_do(make, rng, monkeypatch):
    """A block trains to the same weights and statistics whether its sub-layers run through
    ``Layer.__call__`` or (on PyTorch) through ``call`` directly."""
    x = rng.standard_normal((16, 6, 6, 4)).astype("float32")
    y = np.arange(16) % 3

    def trained(direct):
        if not direct:
            monkeypatch.setattr(fast, "calls_directly", lambda *args: False)
        keras.utils.set_random_seed(0)
        inputs = keras.Input((6, 6, 4))
        block = make()
        h = keras.layers.GlobalAveragePooling2D()(block(inputs))
        model = keras.Model(inputs, keras.layers.Dense(3)(h))
        model.compile(optimizer=keras.optimizers.SGD(0.1),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        first = keras.ops.convert_to_tensor(x[:2])
        assert (all(fast.calls_directly(block, layer, first) for layer in _sublayers(block))
                == (direct and BACKEND == "torch"))
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        monkeypatch.undo()
        return model, model.predict(x, verbose=0)

    (reference, expected), (model, got) = trained(False), trained(True)
    for a, b in zip(reference.weights, model.weights):
        np.testing.assert_allclose(_values(b), _values(a), rtol=1e-5, atol=1e-6, err_msg=a.path)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(BACKEND != "torch", reason="sub-layers are called directly on PyTorch only")
def test_direct_sublayer_calls_leave_to_keras_what_keras_call_does(rng, monkeypatch):
    """Module hooks run, mixed precision autocasts and inputs of another dtype are converted,
    with the same results as through ``Layer.__call__``."""
    x = keras.ops.convert_to_tensor(rng.standard_normal((2, 6, 6, 4)).astype("float32"))
    block = ResBlock(4)
    block(x)
    conv = block.conv1
    assert fast.calls_directly(block, conv, x)
    seen = []
    handle = conv.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    assert not fast.calls_directly(block, conv, x)
    block(x)
    handle.remove()
    assert seen == [(2, 6, 6, 4)] and fast.calls_directly(block, conv, x)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = ResBlock(4)
        mixed(x)
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(fast.calls_directly(mixed, layer, keras.ops.cast(x, "bfloat16"))
               for layer in _sublayers(mixed))
    assert not any(fast.calls_directly(mixed, layer, x) for layer in _sublayers(mixed))
    wide = ResBlock(4, dtype="float64")  # its sub-layers compute in its policy
    x64 = keras.ops.cast(x, "float64")
    wide(x64)
    assert {layer.compute_dtype for layer in _sublayers(wide)} == {"float64"}

    direct = [mixed(x), wide(x64)]
    monkeypatch.setattr(fast, "calls_directly", lambda *args: False)
    for got, expected in zip(direct, [mixed(x), wide(x64)]):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(_values(got.float()), _values(expected.float()))
    assert [keras.backend.standardize_dtype(y.dtype) for y in direct] == ["bfloat16", "float64"]
