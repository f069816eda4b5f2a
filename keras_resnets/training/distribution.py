"""Data parallelism over the visible devices, through each backend's own engine.

- JAX: `keras.distribution.DataParallel` over ``keras.distribution.list_devices()``.
- TensorFlow: `tf.distribute.MirroredStrategy` over the GPUs, or the logical CPUs when there
  is no GPU; `tf.distribute.MultiWorkerMirroredStrategy` across machines (set ``TF_CONFIG``
  on each worker, see the README).
- PyTorch: Keras' distribution API does not cover it; the runner says so. Train with
  several processes instead (``--processes N``: DDP under torchrun, one GPU each,
  `keras_resnets.training.processes`).

The batch size is always global: each of ``n`` devices sees ``batch_size / n`` examples per
step. The learning rate is not rescaled behind your back: with the linear scaling rule of
Goyal et al. (2017), a recipe tuned for batch ``B`` uses ``lr * B' / B`` at batch ``B'``
(`scaled_learning_rate`).

Batch normalisation: JAX computes the statistics over the global batch (one program, a
sharded batch); MirroredStrategy normalises each replica's share, like PyTorch DDP without
SyncBatchNorm.
"""

import contextlib

import keras

from keras_resnets.training.choices import DISTRIBUTIONS


def _tf_devices():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def devices(backend=None):
    """The devices data parallelism would use on ``backend`` (default: the current one).

    Example:
    >>> len(devices()) >= 1
    True
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return keras.distribution.list_devices()
    if backend == "tensorflow":
        return _tf_devices()
    return ["cpu:0"]


def check_distribution(distribution, batch_size, backend=None):
    """Raises a `ValueError` unless ``distribution`` can run with ``batch_size`` here.

    Returns the number of devices it will use.
    """
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution={distribution!r} is not supported; choose one of {DISTRIBUTIONS}."
        )
    if distribution == "none":
        return 1
    backend = backend or keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise ValueError(
            f"distribution='data_parallel' is not supported on the {backend!r} backend: Keras' "
            "distribution API covers JAX and TensorFlow. Use KERAS_BACKEND=jax or tensorflow, "
            "or train with several processes (--processes N: DDP under torchrun, one GPU each)."
        )
    count = len(devices(backend))
    if batch_size % count:
        raise ValueError(
            f"batch_size={batch_size} is the global batch and must be divisible by the "
            f"{count} devices of data parallelism."
        )
    return count


def scaled_learning_rate(learning_rate, batch_size, reference_batch_size):
    """The linear scaling rule: ``learning_rate * batch_size / reference_batch_size``.

    Example:
    >>> scaled_learning_rate(0.1, 1024, 256)
    0.4
    """
    return learning_rate * batch_size / reference_batch_size


@contextlib.contextmanager
def distribution_scope(distribution="none", batch_size=None, cluster=None):
    """Build, compile and fit a model inside this context to train it with ``distribution``.

    Args:
        distribution: ``"none"`` or ``"data_parallel"``.
        batch_size: the global batch size, checked against the device count.
        cluster: the `keras_resnets.training.processes.Cluster` of several processes that
            train together, or None: with one, JAX's `DataParallel` spans every process'
            devices (each process feeds its own share of the batch) and TensorFlow's
            `MultiWorkerMirroredStrategy` scope is entered, whatever ``distribution`` says;
            PyTorch needs no scope (see `keras_resnets.training.ddp`).

    Example:
    >>> with distribution_scope("none"):
    ...     pass
    """
    if cluster is not None:
        with _cluster_scope(cluster) as scope:
            yield scope
        return
    if distribution != "none":
        check_distribution(distribution, batch_size or len(devices()))
    if distribution == "none":
        yield None
    elif keras.backend.backend() == "jax":
        previous = keras.distribution.distribution()
        parallel = keras.distribution.DataParallel(devices=devices("jax"))
        keras.distribution.set_distribution(parallel)
        try:
            yield parallel
        finally:
            keras.distribution.set_distribution(previous)
    else:
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices=_tf_devices())
        with strategy.scope():
            yield strategy


@contextlib.contextmanager
def _cluster_scope(cluster):
    """The engine's scope for a model that several processes train (`distribution_scope`)."""
    if cluster.backend == "jax":
        previous = keras.distribution.distribution()
        parallel = keras.distribution.DataParallel(devices=keras.distribution.list_devices(),
                                                   auto_shard_dataset=False)
        keras.distribution.set_distribution(parallel)
        try:
            yield parallel
        finally:
            keras.distribution.set_distribution(previous)
    elif cluster.strategy is not None:
        with cluster.strategy.scope():
            yield cluster.strategy
    else:
        yield None
