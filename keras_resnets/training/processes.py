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

`launch` starts ``--processes N`` on this machine (loopback ports) and ends them all when one
fails; `join` is what each of them (or each host's process) calls first.

Example:
>>> cluster_size("jax", {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
...                      "KERAS_DISTRIBUTION_PROCESS_ID": "1"})
(1, 2)
>>> cluster_size("torch", {}) is None
True
"""

import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

ENGINES = {"jax": "jax.distributed", "tensorflow": "MultiWorkerMirroredStrategy",
           "torch": "torch.distributed DDP"}
JOIN_TIMEOUT = 60.0
"""Seconds a process waits for the others to join (``KERAS_RESNETS_JOIN_TIMEOUT``)."""
GRACE = 10.0
"""Seconds the launcher gives the other processes to stop once one has ended."""
LOOPBACK = "127.0.0.1"


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
    ``batch_size`` (global) on ``backend``."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"--processes={processes!r} is not allowed: a whole number, 1 or more.")
    if processes == 1:
        return
    if backend not in ENGINES:
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


def free_ports(count):
    """``count`` distinct loopback ports that nothing listens on now."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.socket())
            sockets[-1].bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def check_port(port):
    """Raises a one-line `ValueError` when ``port`` of the loopback address is taken."""
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError as err:
            raise ValueError(f"--port={port} is not allowed: {LOOPBACK}:{port} is in use "
                             f"({err.strerror}); choose another, or leave --port out to use "
                             "free ports.") from None


def local_commands(argv, count, backend, port=None):
    """The commands and environments of ``count`` local processes that run
    ``python -m keras_resnets argv`` as one cluster: on PyTorch one torchrun."""
    base = dict(os.environ)
    if backend == "torch":
        rendezvous = (["--standalone"] if port is None else
                      ["--nnodes", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                       f"{LOOPBACK}:{port}"])
        command = [sys.executable, "-m", "torch.distributed.run", *rendezvous,
                   "--nproc-per-node", str(count), "-m", "keras_resnets", *argv]
        return [(command, base)]
    module = [sys.executable, "-m", "keras_resnets", *argv]
    if backend == "jax":
        address = f"{LOOPBACK}:{port or free_ports(1)[0]}"
        envs = [{"KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
                 "KERAS_DISTRIBUTION_NUM_PROCESSES": str(count),
                 "KERAS_DISTRIBUTION_PROCESS_ID": str(i)} for i in range(count)]
    else:
        ports = free_ports(count) if port is None else [port + i for i in range(count)]
        workers = [f"{LOOPBACK}:{p}" for p in ports]
        envs = [{"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                          "task": {"type": "worker", "index": i}})}
                for i in range(count)]
    gpus = one_gpu_each(count, base)
    return [(module, {**base, **env, **gpu}) for env, gpu in zip(envs, gpus)]


def one_gpu_each(count, environ, gpus=None):
    """``CUDA_VISIBLE_DEVICES`` per local process: GPU ``i`` for process ``i`` when there are
    at least ``count`` GPUs (``nvidia-smi -L``) and the variable is not set already, so that
    JAX's and TensorFlow's processes do not each claim every GPU (torchrun's processes pick
    theirs by ``LOCAL_RANK``); else nothing.

    Example:
    >>> one_gpu_each(2, {}, gpus=4), one_gpu_each(2, {}, gpus=0)
    ([{'CUDA_VISIBLE_DEVICES': '0'}, {'CUDA_VISIBLE_DEVICES': '1'}], [{}, {}])
    """
    gpus = gpu_count() if gpus is None else gpus
    if gpus < count or "CUDA_VISIBLE_DEVICES" in environ:
        return [{} for _ in range(count)]
    return [{"CUDA_VISIBLE_DEVICES": str(i)} for i in range(count)]


def gpu_count():
    """The GPUs that ``nvidia-smi -L`` lists (0 without the tool)."""
    import shutil

    if shutil.which("nvidia-smi") is None:
        return 0
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return sum(line.startswith("GPU ") for line in listed.splitlines())


def launch(argv, count, backend, port=None, logs=None):
    """Runs ``python -m keras_resnets argv`` as ``count`` local processes of one cluster and
    returns the exit status: process 0's, or the first failure's. When one process fails,
    the others are stopped (SIGTERM, then SIGKILL after `GRACE` seconds); so are they all on
    Ctrl-C or SIGTERM. None is left running. ``logs``: the directory of the processes' logs,
    named when one fails."""
    if port is not None:
        for p in range(port, port + (count if backend == "tensorflow" else 1)):
            check_port(p)
    death_signal = _death_signal()
    children = [subprocess.Popen(command, env=env, preexec_fn=death_signal)
                for command, env in local_commands(argv, count, backend, port)]
    received = []
    handlers = {s: signal.signal(s, lambda signum, _: received.append(signum))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _supervise(children, received, logs)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        _stop(children, grace=0)


LOST_PEER = ("connection reset", "connection closed", "connection refused", "socket closed",
             "broken pipe", "gloo", "nccl", "heartbeat", "unavailable", "peer")
"""Words of the errors an engine raises when another process is gone (`lost_peer`)."""


def lost_peer(error):
    """Whether ``error``, raised while several processes train, says that one of the others
    is gone (its connection dropped), rather than that this one's training went wrong."""
    text = f"{type(error).__name__}: {error}".lower()
    return any(word in text for word in LOST_PEER) or "DistBackendError" in text


def _supervise(children, received, logs=None):
    """Waits for ``children``; stops the rest once one fails or a signal comes, and those
    still running `GRACE` seconds after process 0 ended well. Returns the exit status:
    process 0's when it ended well, else the failure's (1 for a process killed by a signal,
    which is named first when others ended with it)."""
    while True:
        codes = [c.poll() for c in children]
        if received:
            _stop(children)
            return 130
        # A process killed by a signal is the cause; the others' exits follow from it.
        failed = sorted(((i, code) for i, code in enumerate(codes) if code),
                        key=lambda failure: (failure[1] > 0, failure[0]))
        if failed and codes[0] != 0:  # once process 0 ended well, the run is its
            where = f" (logs: {logs})" if logs else ""
            print(f"error: {_ended(*failed[0], len(children))}{where}", file=sys.stderr,
                  flush=True)
            _stop(children)
            return failed[0][1] if failed[0][1] > 0 else 1
        if codes[0] == 0:
            deadline = time.monotonic() + GRACE
            while time.monotonic() < deadline and [c.poll() for c in children].count(None):
                time.sleep(0.2)
            _stop(children)
            return 0
        time.sleep(0.2)


def _ended(index, code, count):
    """What the launcher says of a child that ended with ``code``."""
    what = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
    if count == 1:  # torchrun, which stops its workers and reports which one ended
        return f"torchrun {what} (its report above names the process that ended first)"
    return f"process {index} of {count} {what}; stopping the others"


def _stop(children, signum=signal.SIGTERM, grace=GRACE):
    """Sends ``signum`` to the children still running; SIGKILL to those left after ``grace``."""
    for child in children:
        if child.poll() is None and grace:
            child.send_signal(signum)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _death_signal():
    """``f()`` that a child calls before it runs: SIGTERM to it when the launcher dies (Linux's
    PR_SET_PDEATHSIG), so no process outlives it; None where there is no ``prctl``. Made in the
    launcher, so the child, forked from a process with threads, imports nothing."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)
