"""Starts ``python -m keras_resnets ... --processes N`` as N processes of one cluster on this
machine, over loopback ports, and ends them all when one fails: what a user would otherwise do
by hand on each host (`keras_resnets.training.processes` is what each process does).

JAX's and TensorFlow's processes are started one by one, each with the variables of its
engine (``KERAS_DISTRIBUTION_*``, ``TF_CONFIG``); PyTorch's by one torchrun.

Example:
>>> len(free_ports(2)), len(set(free_ports(2)))
(2, 2)
>>> [env["KERAS_DISTRIBUTION_PROCESS_ID"] for _, env in local_commands(["train"], 2, "jax", 5000)]
['0', '1']
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

GRACE = 10.0
"""Seconds the launcher gives the other processes to stop once one has ended."""
LOOPBACK = "127.0.0.1"


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
