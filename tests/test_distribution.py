"""Data parallelism over 2 simulated devices gives the single-device losses (issue 7)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_resnets.design.presets import mnist_resnet
from keras_resnets.training import train
from keras_resnets.training.distribution import check_distribution, scaled_learning_rate

BACKEND = keras.backend.backend()

# Runs in a fresh process: the device count must be set before the backend starts.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_resnets as kr
    from keras_resnets.training.distribution import distribution_scope, devices

    def losses(distribution, batch_norm):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(128, 12, 12, 1)).astype("float32")
        y = rng.integers(0, 10, size=128)
        with distribution_scope(distribution, batch_size=32):
            model = kr.mnist_resnet(nb_channels=4, nb_blocks=2, input_shape=(12, 12, 1),
                                    batch_norm=batch_norm)
            model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            seen = []
            callback = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: seen.append(float(logs["loss"])))
            model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
                      callbacks=[callback])
        return seen

    batch_norm = sys.argv[1] == "bn"
    print(json.dumps({"devices": len(devices()),
                      "single": losses("none", batch_norm),
                      "parallel": losses("data_parallel", batch_norm)}))
    """
)


# The training runner, twice: one device, then data parallelism over 2.
RUNNER_SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    import keras
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_resnets.design.presets import mnist_resnet
    from keras_resnets.training import train

    arch = mnist_resnet(nb_channels=4, nb_blocks=1, batch_norm=sys.argv[1] == "bn")
    epochs = {}
    for distribution in ("none", "data_parallel"):
        run = train(arch, subset=64, validation_split=0.0032, epochs=2, batch_size=16, seed=3,
                    runs_dir=tempfile.mkdtemp(), distribution=distribution)
        assert run.status["state"] == "completed", run.status
        assert run.config["distribution"] == distribution
        epochs[distribution] = [[e["loss"], e["val_loss"], e["val_accuracy"]]
                                for e in run.metrics() if e["event"] == "epoch"]
    print(json.dumps({"single": epochs["none"], "parallel": epochs["data_parallel"]}))
    """
)


def _run(tmp_path, batch_norm, script_text=SCRIPT):
    script = tmp_path / "dp.py"
    script.write_text(script_text)
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(script), "bn" if batch_norm else "no-bn"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(BACKEND == "torch", reason="data parallelism runs on JAX and TensorFlow")
def test_data_parallel_matches_single_device(tmp_path):
    # JAX shards one global program: batch statistics are global, so even with batch norm the
    # two runs differ only by float32 reduction order. MirroredStrategy normalises per replica,
    # so on TensorFlow the exact comparison uses a network without batch norm.
    result = _run(tmp_path, batch_norm=BACKEND == "jax")
    assert result["devices"] == 2
    single, parallel = np.array(result["single"]), np.array(result["parallel"])
    assert len(single) == len(parallel) == 8
    # Keras reports a running mean of the loss; after 8 SGD steps on a 2-block network,
    # float32 reduction-order differences stay far below 1e-4 relative.
    np.testing.assert_allclose(parallel, single, rtol=1e-4)


@pytest.mark.skipif(BACKEND == "torch", reason="data parallelism runs on JAX and TensorFlow")
def test_training_runner_with_data_parallelism_matches_one_device(tmp_path):
    # The same comparison through `train`: its data pipeline, Adam, the step schedule and
    # validation (64 training and 32 validation images: whole batches of 16, 8 per device).
    result = _run(tmp_path, batch_norm=BACKEND == "jax", script_text=RUNNER_SCRIPT)
    single, parallel = np.array(result["single"]), np.array(result["parallel"])
    assert single.shape == parallel.shape == (2, 3)
    np.testing.assert_allclose(parallel, single, rtol=1e-4)


@pytest.mark.skipif(BACKEND == "torch", reason="data parallelism runs on JAX and TensorFlow")
def test_data_parallelism_on_one_device_trains_as_usual(tmp_path):
    # This process sees one device (as one GPU would): data parallelism degrades to it. The
    # last partial batch is dropped, so 40 training images make 2 steps of 16.
    run = train(mnist_resnet(nb_channels=4, nb_blocks=1), subset=40, validation_split=0.002,
                epochs=1, batch_size=16, runs_dir=tmp_path, distribution="data_parallel")
    assert run.status["state"] == "completed" and run.config["distribution"] == "data_parallel"
    epoch, = [e for e in run.metrics() if e["event"] == "epoch"]
    assert epoch["step"] == 2


def test_training_runner_refuses_what_this_backend_cannot_run(tmp_path):
    arch = mnist_resnet(nb_channels=4, nb_blocks=1)
    with pytest.raises(ValueError, match="distribution='pipeline'"):
        train(arch, subset=32, epochs=1, runs_dir=tmp_path, distribution="pipeline")
    if BACKEND == "torch":
        with pytest.raises(ValueError, match="torchrun"):
            train(arch, subset=32, epochs=1, runs_dir=tmp_path, distribution="data_parallel")
    assert not list(tmp_path.iterdir()), "no run is created for a refused setting"


def test_torch_backend_gets_a_clear_error():
    with pytest.raises(ValueError, match="torchrun"):
        check_distribution("data_parallel", 64, backend="torch")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="distribution='model_parallel'"):
        check_distribution("model_parallel", 64)
    if BACKEND != "torch":
        assert check_distribution("data_parallel", 64) >= 1


def test_global_batch_must_divide_over_devices(monkeypatch):
    import keras_resnets.training.distribution as dist

    monkeypatch.setattr(dist, "devices", lambda backend=None: ["cpu:0", "cpu:1"])
    with pytest.raises(ValueError, match="batch_size=33"):
        dist.check_distribution("data_parallel", 33, backend="jax")


def test_linear_scaling_rule():
    assert scaled_learning_rate(0.1, 512, 256) == pytest.approx(0.2)
