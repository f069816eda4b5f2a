"""Several processes that train one run together, each backend on its own engine.

- JAX: the multi-controller runtime. `jax.distributed.initialize` joins the processes (the
  coordinator's address, their number and this one's id come from the variables that
  `keras.distribution.initialize` reads: ``KERAS_DISTRIBUTION_JOB_ADDRESSES``,
  ``KERAS_DISTRIBUTION_NUM_PROCESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``); CPUs exchange
  over gloo; `keras.distribution.DataParallel` spans every process' devices, so batch norm
  sees the global batch.
- TensorFlow: `tf.distribute.MultiWorkerMirroredStrategy`, from ``TF_CONFIG``.
- PyTorch: `torch.distributed` (gloo on CPU, NCCL on GPU) from torchrun's ``RANK``,
  ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and DistributedDataParallel around
  the Keras model (`keras_resnets.training.ddp`).

The batch is global: each of ``n`` processes reads its own ``1/n`` of every batch
(`keras_resnets.data.datasets.load_data`'s ``shard``) and no other image. Process 0 writes
the run; every process writes its output to ``logs/process-<i>.log`` in the run directory.
On TensorFlow and PyTorch batch norm normalises each process' share, and the moving
statistics are averaged over the processes at the end of every epoch
(`average_statistics`),
so that all processes hold the same weights.

`join` is what each process calls first, whoever started it: a user on each host, torchrun,
or `keras_resnets.training.launcher`, which starts ``--processes N`` on this machine.

Example:
>>> cluster_size("jax", {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
...                      "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
(1, 2)
>>> cluster_size("torch", {}) is None
True
"""

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys

ENGINES = {"jax": "jax.distributed", "tensorflow": "MultiWorkerMirroredStrategy",
           "torch": "torch.distributed DDP"}
JOIN_TIMEOUT = 60.0
"""Seconds a process waits for the others to join (``KERAS_RESNETS_JOIN_TIMEOUT``)."""


@dataclasses.dataclass
class Cluster:
    """This process' place among ``count`` that train one run: ``index`` 0 writes it.

    Attributes:
        index: this process' id, from 0.
        count: the number of processes.
        backend: the Keras backend.
        strategy: TensorFlow's `MultiWorkerMirroredStrategy` (None on the other backends).
    """

    index: int
    count: int
    backend: str
    strategy: object = None

    @property
    def engine(self):
        """The engine's name, as the run's config records it."""
        return ENGINES[self.backend]

    def barrier(self, what):
        """Waits until every process gets here (at most the join timeout)."""
        with _deadline(f"process {self.index} of {self.count}: the other processes did not "
                       f"reach '{what}' within {join_timeout():g} s"):
            _BARRIERS[self.backend](self)


def join_timeout():
    """The join timeout in seconds (`JOIN_TIMEOUT` unless ``KERAS_RESNETS_JOIN_TIMEOUT``)."""
    return float(os.environ.get("KERAS_RESNETS_JOIN_TIMEOUT", JOIN_TIMEOUT))


def cluster_size(backend, environ=None):
    """``(index, count)`` of this process from its engine's variables, or None when they
    name no cluster."""
    env = os.environ if environ is None else environ
    if backend == "jax" and "KERAS_DISTRIBUTION_NUM_PROCESSES" in env:
        return (int(env.get("KERAS_DISTRIBUTION_PROCESS_ID", 0)),
                int(env["KERAS_DISTRIBUTION_NUM_PROCESSES"]))
    if backend == "tensorflow" and env.get("TF_CONFIG"):
        config = json.loads(env["TF_CONFIG"])
        cluster, task = config.get("cluster", {}), config.get("task", {})
        chiefs = len(cluster.get("chief", []))
        index = int(task.get("index", 0)) + (chiefs if task.get("type") == "worker" else 0)
        return index, chiefs + len(cluster.get("worker", []))
    if backend == "torch" and "WORLD_SIZE" in env:
        return int(env.get("RANK", 0)), int(env["WORLD_SIZE"])
    return None


def check_processes(processes, backend, dataset=None, batch_size=None):
    """Raises a one-line `ValueError` unless ``processes`` can train ``dataset`` with
    ``batch_size`` (global) on ``backend`` (None: on any backend that has an engine)."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"--processes={processes!r} is not allowed: a whole number, 1 or more.")
    if processes == 1:
        return
    if backend is not None and backend not in ENGINES:
        raise ValueError(f"--processes={processes} is not supported on the {backend!r} backend; "
                         f"use KERAS_BACKEND={', '.join(ENGINES)}.")
    from keras_resnets.data.catalog import DATASETS

    if dataset in DATASETS and DATASETS[dataset].tfds_name is not None:
        raise ValueError(f"--processes={processes} cannot share dataset {dataset!r}: each process "
                         "reads only its share by position, which the mnist_sample and image "
                         "folders allow, not a tensorflow-datasets stream.")
    if batch_size is not None and batch_size % processes:
        raise ValueError(f"--batch-size={batch_size} is the global batch and must be a multiple "
                         f"of --processes={processes}.")


def join(backend, expected=None):
    """Starts this process' engine from its variables (`cluster_size`) and waits for the
    others; the `Cluster`, or None outside a cluster. A process that finds no peer within
    the join timeout prints one line and is killed (`_deadline`)."""
    found = cluster_size(backend)
    if found is None:
        return None
    index, count = found
    if expected not in (None, count) and count > 1:
        raise ValueError(f"--processes={expected} is not allowed here: the engine's variables "
                         f"name {count} processes.")
    if count == 1:
        return None
    cluster = Cluster(index, count, backend)
    with _deadline(f"process {index} of {count}: the other processes did not join within "
                   f"{join_timeout():g} s ({_address(backend)})"):
        _JOINS[backend](cluster)
        _BARRIERS[backend](cluster)
    return cluster


def _address(backend):
    env = os.environ
    if backend == "jax":
        return "coordinator " + env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "?").split(",")[0]
    if backend == "torch":
        return f"rendezvous {env.get('MASTER_ADDR', '?')}:{env.get('MASTER_PORT', '?')}"
    return "TF_CONFIG " + ",".join(json.loads(env["TF_CONFIG"])["cluster"].get("worker", []))


def _join_jax(cluster):
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address = os.environ["KERAS_DISTRIBUTION_JOB_ADDRESSES"].split(",")[0]
    jax.distributed.initialize(coordinator_address=address, num_processes=cluster.count,
                               process_id=cluster.index,
                               initialization_timeout=int(join_timeout()) + 30,
                               heartbeat_timeout_seconds=30)


def _join_tensorflow(cluster):
    cluster.strategy = _strategy_class()()


def _join_torch(cluster):
    import datetime

    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():  # one GPU per process, as torchrun numbers them
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo",
                            timeout=datetime.timedelta(seconds=join_timeout() + 30))


def _barrier_jax(cluster):
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("keras_resnets")


def _barrier_tensorflow(cluster):
    import tensorflow as tf

    strategy = cluster.strategy
    tf.function(lambda: strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)),
                                        axis=None))()


def _barrier_torch(cluster):
    import torch.distributed as dist

    dist.barrier()


_JOINS = {"jax": _join_jax, "tensorflow": _join_tensorflow, "torch": _join_torch}
_BARRIERS = {"jax": _barrier_jax, "tensorflow": _barrier_tensorflow, "torch": _barrier_torch}


_WATCHDOG = """
import os, sys, time
parent, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.monotonic() + seconds
while time.monotonic() < end:
    if os.getppid() != parent:
        sys.exit(0)
    time.sleep(min(0.5, max(0.0, end - time.monotonic())))
os.write(2, ("error: " + message + "\\n").encode())
os.kill(parent, 9)
"""


@contextlib.contextmanager
def _deadline(message):
    """Ends this process with ``message`` (one line on standard error, exit by SIGKILL)
    unless the block ends within the join timeout. The watchdog is a process of its own: an
    engine waiting for its peers in C++ may hold the interpreter, and no thread or signal
    handler of this one would run."""
    watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()),
                                 str(join_timeout()), message])
    try:
        yield
    finally:
        watchdog.kill()
        watchdog.wait()


_STRATEGY = []


def _strategy_class():
    """`tf.distribute.MultiWorkerMirroredStrategy` whose ``reduce`` takes the structures and
    per-replica scalars that Keras 3's ``fit`` gives it (keras-team/keras#20585)."""
    if _STRATEGY:
        return _STRATEGY[0]
    import tensorflow as tf

    class Strategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            one = super().reduce

            def each(v):
                local = self.experimental_local_results(v)[0]
                return one(reduce_op, v, None if len(local.shape) == 0 else axis)

            return tf.nest.map_structure(each, value)

    _STRATEGY.append(Strategy)
    return Strategy


def keep_log(run, cluster):
    """Sends this process' output to ``logs/process-<i>.log`` of ``run``: standard error
    for every process, standard output too for all but process 0 (whose progress stays on
    the terminal)."""
    path = run.log_path(cluster.index)
    path.parent.mkdir(exist_ok=True)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 2)
    if cluster.index:
        os.dup2(log, 1)
    os.close(log)
    print(f"process {cluster.index} of {cluster.count}: pid {os.getpid()} on "
          f"{socket.gethostname()}, {cluster.engine}, run {run.id}", file=sys.stderr, flush=True)


def average_statistics(cluster):
    """A Keras callback that sets the moving statistics of batch norm (the model's float
    non-trainable weights) to their mean over the processes at the end of every epoch
    (TensorFlow and PyTorch, where each process normalises its own share)."""
    import keras

    class AverageStatistics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            variables = [v for v in self.model.non_trainable_weights
                         if "float" in str(v.dtype)]
            values = _MEANS[cluster.backend](cluster, [v.value for v in variables])
            for variable, value in zip(variables, values):
                variable.assign(value)

    return AverageStatistics()


def _mean_tensorflow(cluster, values):
    import tensorflow as tf

    strategy = cluster.strategy
    values = tuple(tf.convert_to_tensor(v) for v in values)
    means = strategy.run(lambda *vs: tf.distribute.get_replica_context().all_reduce("MEAN", vs),
                         args=values)
    return [strategy.experimental_local_results(m)[0] for m in means]


def _mean_torch(cluster, values):
    import torch.distributed as dist

    means = [v.detach().clone() for v in values]
    for mean in means:
        dist.all_reduce(mean)
        mean /= cluster.count
    return means


_MEANS = {"tensorflow": _mean_tensorflow, "torch": _mean_torch}


def weights_digest(model):
    """The SHA-256 of ``model``'s weights, in order, as float32 bytes: equal digests mean
    bitwise-equal weights."""
    import hashlib

    import keras
    import numpy as np

    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


LOST_PEER = ("connection reset", "connection closed", "connection refused", "socket closed",
             "broken pipe", "gloo", "nccl", "heartbeat", "unavailable", "peer")
"""Words of the errors an engine raises when another process is gone (`lost_peer`)."""


def lost_peer(error):
    """Whether ``error``, raised while several processes train, says that one of the others
    is gone (its connection dropped), rather than that this one's training went wrong."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(word in text for word in LOST_PEER) or "DistBackendError" in text
