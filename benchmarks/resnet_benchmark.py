"""Side by side, in one run: keras_resnets on TensorFlow, JAX and PyTorch against native PyTorch
and plain JAX.

For each scale (the lecture's MNIST ResNet; CIFAR ResNet-56; ResNet-50 at 224x224) it measures

- ``native``: the lecture's PyTorch code exactly as on the slides, trained with the lecture's
  loop (the reference of every "vs ref" ratio), and what a strong PyTorch user adds to it
  (`NATIVE`): ``channels_last`` tensors, ``torch.autocast("cpu", dtype=torch.bfloat16)`` on
  CPUs with bfloat16 in hardware, ``torch.compile``; and a plain JAX program of the same network
  (benchmarks/native_jax.py). The best of each framework is the "vs best native" reference:
  PyTorch's for the TensorFlow and PyTorch rows, plain JAX's for the JAX rows;
- ``ours``: the keras_resnets model (``keras_resnets.mnist_resnet()``, ...), with
  ``model.fit`` / ``model.predict`` on in-memory NumPy arrays;
- ``hand``: the same network hand-written from plain ``keras.layers`` (benchmarks/keras_hand.py),
  the yardstick for the overhead of our layers;

each Keras model on every backend, with Keras' default settings, with what a user's script
gets (keras_resnets imported before or after Keras) and with the best settings found
(benchmarks/settings.py). Every run is its own process (one backend per process; the peak
memory is that process' peak resident set). Throughput is the median over timed windows after
a warm-up (which includes compilation); synthetic data.

Usage (from the repository root)::

    python benchmarks/resnet_benchmark.py                 # MNIST + CIFAR scales, writes RESULTS.md
    python benchmarks/resnet_benchmark.py --scales all    # + ResNet-50 at 224x224
    python benchmarks/resnet_benchmark.py --tiny --output /tmp/tiny.md   # seconds: smoke test
    python benchmarks/resnet_benchmark.py --gpu           # GPU: ResNet-50 mixed precision, MNIST

The workers are this file too (``--worker SPEC``).
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import ablations as ablations_lib  # noqa: E402  (benchmarks/ is not a package)

# `settings` and keras_resnets are imported where they are used, not here: a native worker is
# this file too, and it imports neither Keras nor keras_resnets (whose import sets a backend's
# flags), as a plain PyTorch or JAX script does.

BACKENDS = ("tensorflow", "jax", "torch")

# Training cost in FLOP per image (forward + backward ~ 3x the forward multiply-adds x 2).
SCALES = {
    "mnist": {
        "title": "MNIST ResNet (lecture: 25 ResBlocks, 16 channels, 28x28x1)",
        "model": "mnist", "size": 28, "channels": 1, "classes": 10,
        "batch": 64, "warmup": 3, "windows": 5, "window_steps": 6,
        "infer_batch": 64, "infer_warmup": 2, "infer_windows": 5, "infer_window_steps": 6,
    },
    "cifar": {
        "title": "CIFAR ResNet-56 (32x32x3)",
        "model": "cifar", "size": 32, "channels": 3, "classes": 10,
        "batch": 64, "warmup": 3, "windows": 5, "window_steps": 5,
        "infer_batch": 64, "infer_warmup": 2, "infer_windows": 5, "infer_window_steps": 5,
    },
    "imagenet": {
        "title": "ResNet-50 (224x224x3, 1000 classes)",
        "model": "imagenet", "size": 224, "channels": 3, "classes": 1000,
        "batch": 16, "warmup": 2, "windows": 3, "window_steps": 2,
        "infer_batch": 16, "infer_warmup": 1, "infer_windows": 3, "infer_window_steps": 2,
    },
}

# The native rows: the same networks without Keras, as a PyTorch or a JAX user writes them.
# "reference" is the lecture's code exactly, the reference of every "vs ref" ratio; the others
# add what a strong user adds, and the best of each framework is the "vs best native" one.
# "bf16" rows run only on CPUs that compute in bfloat16 natively (`cpu_has_bf16`); "compile"
# adds bf16 autocast there too. "jax*" rows: benchmarks/native_jax.py, MNIST and CIFAR only.
NATIVE = {
    "reference": {"framework": "torch"},
    "cl": {"framework": "torch", "channels_last": True},
    "cl-bf16": {"framework": "torch", "channels_last": True, "autocast": True,
                "inference_mode": True, "bf16": True},
    "compile": {"framework": "torch", "channels_last": True, "compile": True,
                "inference_mode": True},
    "amp": {"framework": "torch", "gpu": True},
    "jax": {"framework": "jax"},
    "jax-ynn": {"framework": "jax", "env": "ynn"},
    "jax-max": {"framework": "jax", "relu": "max"},
}
NATIVE_DEFAULT = ("reference", "cl", "cl-bf16", "compile", "jax", "jax-ynn")
JAX_SCALES = ("mnist", "cifar")
# The native framework that a Keras backend's rows are held against ("vs best native").
NATIVE_OF = {"tensorflow": "torch", "torch": "torch", "jax": "jax"}


def cpu_has_bf16(flags=None):
    """Whether the CPU computes bfloat16 products natively (``flags``: `cpu_flags`), where a
    PyTorch user turns on ``torch.autocast("cpu", dtype=torch.bfloat16)``: the flags of
    keras_resnets' own precision default (`precision.BF16_FLAGS`). Without them PyTorch
    emulates bfloat16, slower than float32.

    >>> cpu_has_bf16({"avx512f", "amx_bf16"}), cpu_has_bf16({"avx512f"})
    (True, False)
    """
    from keras_resnets.runtime.precision import BF16_FLAGS, cpu_flags

    return bool(BF16_FLAGS.intersection(cpu_flags() if flags is None else flags))


# Seconds: small enough for the smoke test, every code path still runs.
TINY = {
    "mnist": {"nb_blocks": 2, "batch": 8, "warmup": 1, "windows": 2, "window_steps": 2,
              "infer_batch": 8, "infer_warmup": 1, "infer_windows": 2, "infer_window_steps": 1},
    "cifar": {"depth": 8, "batch": 8, "warmup": 1, "windows": 2, "window_steps": 2,
              "infer_batch": 8, "infer_warmup": 1, "infer_windows": 2, "infer_window_steps": 1},
    "imagenet": {"size": 64, "batch": 2, "warmup": 1, "windows": 2, "window_steps": 1,
                 "infer_batch": 2, "infer_warmup": 1, "infer_windows": 2, "infer_window_steps": 1},
}

# The GPU suite (--gpu): one script that fits in 10 minutes on one large GPU. ResNet-50 in mixed
# precision against torchvision's with AMP and channels_last, and the lecture's network.
GPU_SCALES = {
    "gpu": {
        "title": "ResNet-50 (224x224x3), mixed precision, GPU",
        "model": "imagenet", "size": 224, "channels": 3, "classes": 1000,
        "batch": 128, "warmup": 5, "windows": 5, "window_steps": 10,
        "infer_batch": 256, "infer_warmup": 3, "infer_windows": 5, "infer_window_steps": 10,
        "native": "amp", "mixed_precision": "mixed_float16",
    },
    "gpu_mnist": {
        **SCALES["mnist"], "title": "MNIST ResNet (lecture: 25 ResBlocks, 16 channels), GPU",
        "warmup": 5, "window_steps": 20, "infer_window_steps": 20, "native": "reference",
        "mixed_precision": None,
    },
}
GPU_BACKENDS = ("jax", "torch")
GPU_TIMEOUT = 240  # seconds per run: six runs, start-up and compilation included


# ============================================================================================
# measurement helpers (workers)
# ============================================================================================


def _peak_rss_mib(status="/proc/self/status"):
    """This process' peak resident set in MiB: Linux's ``VmHWM``, else ``ru_maxrss``. Linux
    carries the ``ru_maxrss`` of a parent into a child it starts (across ``exec``), so a
    worker's would be at least the orchestrator's (which has imported Keras and a backend)."""
    try:
        with open(status) as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _windows(marks, start_time, warmup, windows, window_steps, batch):
    """Images/s of each timed window from ``marks``: ``(last step index, time)`` pairs.

    A mark closes a window when it reaches the window's last step; with
    ``steps_per_execution > 1`` a window may span a few more steps (counted exactly).
    """
    times = {}
    for step, t in marks:
        times[step] = t
    ordered = sorted(times.items())
    rates = []
    boundary = warmup - 1
    previous_time = start_time if boundary < 0 else None
    previous_step = boundary
    for step, t in ordered:
        if step == boundary:
            previous_time = t
        if step < boundary:
            continue
        if previous_time is None:
            previous_time, previous_step = t, step
            continue
        if step - previous_step >= window_steps:
            rates.append((step - previous_step) * batch / (t - previous_time))
            previous_time, previous_step = t, step
            if len(rates) == windows:
                break
    return rates


def _now():
    return time.perf_counter(), time.process_time()


def _throughput(marks, start, warmup, windows, window_steps, batch):
    """Wall-clock and CPU-time summaries from ``(step, (wall, cpu))`` marks.

    The CPU-time figure (images per CPU-second of the whole process, all threads) is less
    sensitive to other processes on a shared machine than the wall-clock one, but counts
    threads that spin while waiting; the wall-clock figure is the one that matters.
    """
    wall = _windows([(s, t[0]) for s, t in marks], start[0], warmup, windows, window_steps, batch)
    cpu = _windows([(s, t[1]) for s, t in marks], start[1], warmup, windows, window_steps, batch)
    return _summary(wall), _summary(cpu)


def _summary(rates):
    if not rates:
        return {"median": None, "min": None, "max": None, "windows": []}
    ordered = sorted(rates)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    return {"median": median, "min": ordered[0], "max": ordered[-1], "windows": rates}


def merge_rounds(results):
    """One row per run of the plan (`label` and scale), in the plan's order, from the rows of
    several interleaved rounds: each figure the median of the rounds' medians, its min-max
    their range, peak memory the largest; a run that failed in every round keeps its error.

    Example:
    >>> rows = [{"scale_name": "s", "framework": "native", "variant": "reference",
    ...          "backend": "torch", "result": {"train": _summary([r])}} for r in (3, 1, 2)]
    >>> row, = merge_rounds(rows)
    >>> row["result"]["train"]["median"], row["rounds"]
    (2, 3)
    """
    def combine(done):
        result = dict(done[0]["result"])
        for kind in ("train", "infer", "train_cpu"):
            if kind in result:
                result[kind] = _summary([r["result"][kind]["median"] for r in done
                                         if r["result"][kind]["median"] is not None])
        for key, reduce in (("first_step_s", statistics.median), ("peak_rss_mib", max)):
            if key in result:
                result[key] = reduce(r["result"][key] for r in done)
        return result

    return merge_rows(results, lambda r: (r["scale_name"], label(r)), combine)


def add_rounds_argument(parser):
    """``--rounds N``: the whole plan N times, one round after another, each figure the median
    of a row's rounds; N below 1 is refused with the option named."""
    def count(text):
        n = int(text)
        if n < 1:
            raise argparse.ArgumentTypeError(f"{n} is not a number of rounds (1 or more)")
        return n

    parser.add_argument("--rounds", type=count, default=1,
                        help="run the whole plan this many times, interleaved; each figure is "
                             "the median of the rounds")


def run_rounds(runs, rounds, timeout, script, name):
    """Each run of the plan in its own process (`run_one`), the plan ``rounds`` times over, a
    line of progress each; the rows in the order they ran, for ``merge_rows``."""
    results = []
    for i, run in enumerate(runs * rounds, 1):
        print(f"[{i}/{len(runs) * rounds}] {name(run)} ...", end=" ", flush=True)
        results.append(run_one(run, timeout, script=script))
        print("failed: " + results[-1]["error"] if "error" in results[-1]
              else f"{results[-1]['wall_s']:.0f} s", flush=True)
    return results


def rounds_note(rounds):
    """The report's sentence on a run of several rounds ('' for one)."""
    return (f"The whole plan ran {rounds} times, one round after another: each figure is the "
            "median of a row's rounds, images/s (min-max) their range." if rounds > 1 else "")


def rate_cells(row, rate, spread):
    """A merged row's name suffix and its images/s cell: ' (failed in N of its rounds)' where
    rounds failed, the rounds' ``spread`` (min, max) after the median where there were several.

    >>> rate_cells({"rounds": 3, "failed_rounds": 1}, 2.0, (1.0, 3.0))
    (' (failed in 1 of its rounds)', '2.0 (1.0-3.0)')
    """
    failed = f" (failed in {row['failed_rounds']} of its rounds)" if row.get("failed_rounds") else ""
    shown = _fmt(rate) + (f" ({_fmt(spread[0])}-{_fmt(spread[1])})" if row.get("rounds", 1) > 1 else "")
    return failed, shown


def merge_rows(results, key, combine):
    """One row per ``key(row)``, in the order of first appearance, from the rows of several
    interleaved rounds: its result ``combine(done)`` of the rounds that finished, with
    ``rounds`` and ``failed_rounds`` counted; a run that failed in every round keeps its
    first row (and its error).

    Example:
    >>> rows = [{"name": "a", "result": 1}, {"name": "a", "error": "timed out"},
    ...         {"name": "a", "result": 3}, {"name": "b", "error": "exit code 1"}]
    >>> a, b = merge_rows(rows, lambda r: r["name"], lambda done: [r["result"] for r in done])
    >>> a["result"], a["rounds"], a["failed_rounds"], b["error"]
    ([1, 3], 2, 1, 'exit code 1')
    """
    groups = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    merged = []
    for runs in groups.values():
        done = [r for r in runs if "result" in r]
        merged.append({**done[0], "result": combine(done), "rounds": len(done),
                       "failed_rounds": len(runs) - len(done)} if done else runs[0])
    return merged


def _scale_spec(scale, tiny):
    spec = dict(SCALES[scale])
    if tiny:
        spec.update(TINY[scale])
    return spec


# ---- native PyTorch and JAX -----------------------------------------------------------------


def native_label(spec):
    """The row name of a native run, from what its variant does."""
    variant = NATIVE[spec["variant"]]
    if variant["framework"] == "jax":
        return "plain JAX" + "".join(f", {part}" for part, on in (
            ("jax.nn.relu", variant.get("relu") == "max"),
            ("YNN reductions", bool(variant.get("env")))) if on)
    if spec["variant"] == "reference":
        return "native PyTorch (lecture code)"
    if spec["variant"] == "amp":
        return "native PyTorch, AMP + channels_last"
    options = native_options(spec)
    return "native PyTorch" + "".join(f" + {part}" for part, on in (
        ("channels_last", options["channels_last"]), ("bf16 autocast", options["autocast"]),
        ("torch.compile", options["compile"])) if on)


def native_options(spec):
    """What a native PyTorch run does: ``channels_last`` tensors, ``autocast`` (bfloat16, on
    the CPU), ``compile`` (``torch.compile``), and its inference under ``inference_mode``
    (else ``no_grad``, the lecture's)."""
    variant = NATIVE[spec["variant"]]
    return {key: bool(spec.get(key, variant.get(key, False)))
            for key in ("channels_last", "autocast", "compile", "inference_mode")}


def run_native(spec):
    """The lecture's PyTorch code and training loop, as its variant has it (`NATIVE`)."""
    import torch
    import torch.nn as nn

    import native_torch

    scale = spec["scale"]
    device = "cuda" if spec.get("device") == "gpu" else "cpu"
    options = native_options(spec)
    torch.manual_seed(0)
    model = native_torch.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                               depth=scale.get("depth", 56))
    if scale["model"] == "imagenet" and scale["classes"] != 1000:
        model.fc = nn.Linear(model.fc.in_features, scale["classes"])
    channels_last = options["channels_last"] or spec["variant"] == "amp"
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    trained = torch.compile(model) if options["compile"] else model
    steps = scale["warmup"] + scale["windows"] * scale["window_steps"]
    batch = scale["batch"]
    size, c = scale["size"], scale["channels"]
    n_batches = min(steps, 8)
    x = torch.randn(n_batches * batch, c, size, size, device=device)
    y = torch.randint(0, scale["classes"], (n_batches * batch,), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    amp = spec["variant"] == "amp"

    def sync():
        if device != "cpu":
            torch.cuda.synchronize()

    marks = []

    def on_step(i):
        sync()
        marks.append((i, _now()))

    rss_before = _peak_rss_mib()
    start = _now()
    if amp:
        scaler = torch.amp.GradScaler("cuda")
        n = x.size(0) // batch
        for i in range(steps):
            b = (i % n) * batch
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                output = model(x.narrow(0, b, batch))
                loss = criterion(output, y.narrow(0, b, batch))
            optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            on_step(i)
    else:
        native_torch.train_steps(trained, optimizer, criterion, x, y, batch, steps,
                                 on_step=on_step, autocast=options["autocast"])
    train, train_cpu = _throughput(marks, start, scale["warmup"], scale["windows"],
                                   scale["window_steps"], batch)
    first_step = marks[0][1][0] - start[0]

    ib = scale["infer_batch"]
    isteps = scale["infer_warmup"] + scale["infer_windows"] * scale["infer_window_steps"]
    xi = torch.randn(min(isteps, 8) * ib, c, size, size, device=device)
    if channels_last:
        xi = xi.contiguous(memory_format=torch.channels_last)
    marks = []
    start = _now()
    if amp:
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            native_torch.predict_steps(model, xi, ib, isteps, on_step=on_step)
    else:
        native_torch.predict_steps(trained, xi, ib, isteps, on_step=on_step,
                                   autocast=options["autocast"],
                                   inference_mode=options["inference_mode"])
    infer, _ = _throughput(marks, start, scale["infer_warmup"], scale["infer_windows"],
                           scale["infer_window_steps"], ib)
    peak_gpu = None
    if device != "cpu":
        peak_gpu = torch.cuda.max_memory_allocated() / 2**20
    return {
        "train": train, "train_cpu": train_cpu, "infer": infer, "first_step_s": first_step,
        "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss_before, "peak_gpu_mib": peak_gpu,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "threads": torch.get_num_threads(),
    }


def run_native_jax(spec):
    """The plain JAX program of the scale's network (benchmarks/native_jax.py): one jitted
    SGD step per mini-batch, then jitted inference."""
    import jax
    import numpy as np

    import native_jax

    scale = spec["scale"]
    net = native_jax.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                           depth=scale.get("depth", 56),
                           relu=NATIVE[spec["variant"]].get("relu", "select"))
    params, stats = net.init(jax.random.key(0))
    step = native_jax.sgd_step(net, learning_rate=0.01)
    velocity = native_jax.velocity(params, momentum=0.0)
    rng = np.random.default_rng(0)
    size, c, batch = scale["size"], scale["channels"], scale["batch"]
    steps = scale["warmup"] + scale["windows"] * scale["window_steps"]
    batches = [(jax.device_put(rng.standard_normal((batch, size, size, c), dtype=np.float32)),
                jax.device_put(rng.integers(0, scale["classes"], batch)))
               for _ in range(min(steps, 8))]
    marks = []
    rss_before = _peak_rss_mib()
    start = _now()
    for i in range(steps):
        params, stats, velocity, loss = step(params, stats, velocity, *batches[i % len(batches)])
        loss.block_until_ready()  # as the Keras rows' marks wait for each step
        marks.append((i, _now()))
    train, train_cpu = _throughput(marks, start, scale["warmup"], scale["windows"],
                                   scale["window_steps"], batch)
    first_step = marks[0][1][0] - start[0]

    predict = native_jax.predictor(net)
    ib = scale["infer_batch"]
    isteps = scale["infer_warmup"] + scale["infer_windows"] * scale["infer_window_steps"]
    inputs = [jax.device_put(rng.standard_normal((ib, size, size, c), dtype=np.float32))
              for _ in range(min(isteps, 8))]
    marks = []
    start = _now()
    for i in range(isteps):
        predict(params, stats, inputs[i % len(inputs)]).block_until_ready()
        marks.append((i, _now()))
    infer, _ = _throughput(marks, start, scale["infer_warmup"], scale["infer_windows"],
                           scale["infer_window_steps"], ib)
    return {
        "train": train, "train_cpu": train_cpu, "infer": infer, "first_step_s": first_step,
        "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss_before, "peak_gpu_mib": None,
        "params": int(native_jax.count(params)),
    }


# ---- Keras ---------------------------------------------------------------------------------


def build_keras_model(which, scale, data_format):
    """``which``: ``"ours"`` (keras_resnets) or ``"hand"`` (plain keras.layers)."""
    if which == "ours":
        import keras_resnets

        model_name = scale["model"]
        if model_name == "mnist":
            return keras_resnets.mnist_resnet(nb_blocks=scale.get("nb_blocks", 25),
                                              data_format=data_format)
        if model_name == "cifar":
            return keras_resnets.cifar_resnet(scale.get("depth", 56), data_format=data_format)
        return keras_resnets.resnet50(input_shape=(scale["size"], scale["size"], 3),
                                      classes=scale["classes"], data_format=data_format)
    if which == "hand":
        import keras_hand

        from keras_resnets.runtime.precision import dtype_policy_scope

        with dtype_policy_scope(None):  # the policy ours computes in, for a like comparison
            if scale["model"] == "imagenet":
                return keras_hand.resnet50(scale["classes"], scale["size"], data_format=data_format)
            return keras_hand.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                                    depth=scale.get("depth", 56), data_format=data_format)
    raise ValueError(f"model={which!r} is not known; choose 'ours' or 'hand'.")


def _apply_threads(backend, threads):
    if threads is None:
        return
    if backend == "torch":
        import torch

        torch.set_num_threads(threads)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)


def run_keras(spec):
    """``model.fit`` and ``model.predict`` of one Keras model on the process' backend."""
    import numpy as np

    import keras

    backend = keras.backend.backend()
    setting = spec["setting"]
    scale = spec["scale"]
    device = spec.get("device", "cpu")
    _apply_threads(backend, setting.get("threads"))
    data_format = setting.get("data_format", "channels_last")
    if spec.get("mixed_precision"):
        keras.mixed_precision.set_global_policy(spec["mixed_precision"])
    if spec.get("ablation"):
        ablations_lib.apply(spec["ablation"])
    keras.utils.set_random_seed(0)
    model = build_keras_model(spec["model"], scale, data_format)
    compile_kwargs = {"jit_compile": setting.get("jit_compile", "auto")}
    if setting.get("steps_per_execution", 1) != 1:
        compile_kwargs["steps_per_execution"] = setting["steps_per_execution"]
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    size, c, batch = scale["size"], scale["channels"], scale["batch"]
    shape = (c, size, size) if data_format == "channels_first" else (size, size, c)
    steps = scale["warmup"] + scale["windows"] * scale["window_steps"]
    spe = setting.get("steps_per_execution", 1)
    steps = -(-steps // spe) * spe
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * batch, *shape), dtype=np.float32)
    y = rng.integers(0, scale["classes"], steps * batch)

    class Marks(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train, self.predict = [], []

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])  # waits for the step (JAX and TF dispatch asynchronously)
            self.train.append((batch, _now()))

        def on_predict_batch_end(self, batch, logs=None):
            self.predict.append((batch, _now()))

    marks = Marks()
    rss_before = _peak_rss_mib()
    start = _now()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[marks])
    train, train_cpu = _throughput(marks.train, start, scale["warmup"], scale["windows"],
                                   scale["window_steps"], batch)
    first_step = marks.train[0][1][0] - start[0]
    del x, y

    ib = scale["infer_batch"]
    isteps = scale["infer_warmup"] + scale["infer_windows"] * scale["infer_window_steps"]
    isteps = -(-isteps // spe) * spe
    xi = rng.standard_normal((isteps * ib, *shape), dtype=np.float32)
    start = _now()
    model.predict(xi, batch_size=ib, verbose=0, callbacks=[marks])
    infer, _ = _throughput(marks.predict, start, scale["infer_warmup"], scale["infer_windows"],
                           scale["infer_window_steps"], ib)
    peak_gpu = None
    if device == "gpu":
        peak_gpu = _keras_peak_gpu_mib(backend)
    return {
        "train": train, "train_cpu": train_cpu, "infer": infer, "first_step_s": first_step,
        "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss_before, "peak_gpu_mib": peak_gpu,
        "params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "jit_compile": bool(model.jit_compile), "dtype_policy": model.dtype_policy.name,
    }


def _keras_peak_gpu_mib(backend):
    try:
        if backend == "torch":
            import torch

            return torch.cuda.max_memory_allocated() / 2**20
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            return stats.get("peak_bytes_in_use", 0) / 2**20 or None
    except Exception:  # noqa: BLE001  (memory statistics are best effort)
        return None
    return None


def worker_main(spec_json):
    spec = json.loads(spec_json)
    sys.path.insert(0, ROOT)
    if spec["framework"] == "native":
        result = run_native_jax(spec) if spec["backend"] == "jax" else run_native(spec)
    else:
        if spec["setting"].get("keras_first"):
            import keras  # noqa: F401  (before keras_resnets, as some users' scripts do)
        import keras_resnets  # noqa: F401  (before Keras, as a user's script imports it)

        result = run_keras(spec)
    print("RESULT " + json.dumps(result), flush=True)


# ============================================================================================
# orchestration
# ============================================================================================


def native_runs(scale, spec_scale, variants, bf16):
    """The native runs of one scale, in the order of ``variants`` (names of `NATIVE`), less
    those that cannot run here: bfloat16 rows without ``bf16`` (`cpu_has_bf16`), GPU rows,
    plain JAX beyond `JAX_SCALES`, YNN reductions on a jaxlib without them."""
    from keras_resnets.runtime.environment import fast_cpu_variables

    runs = []
    for variant in variants:
        options = NATIVE[variant]
        if options.get("gpu") or (options.get("bf16") and not bf16):
            continue
        if options["framework"] == "jax" and scale not in JAX_SCALES:
            continue
        run = {"framework": "native", "backend": options["framework"], "variant": variant,
               "scale_name": scale, "scale": spec_scale, "model": "native", "settings": variant}
        if variant == "compile":
            run["autocast"] = bf16
        if options.get("env") == "ynn":
            env = fast_cpu_variables("jax", environ={})
            if not env:
                continue
            run["setting"] = {"env": env}
        runs.append(run)
    return runs


def plan(scales, backends, setting_names, models, tiny, native_variants=NATIVE_DEFAULT,
         ablations=(), bf16=None):
    """The list of runs: the native rows first (`native_runs`; ``bf16``: `cpu_has_bf16` by
    default), then every Keras combination, then keras_resnets with each of its speed changes
    undone (best settings of its backends), then the native reference again, so that the
    ratios can average out the machine's drift."""
    import settings as settings_lib

    bf16 = cpu_has_bf16() if bf16 is None else bf16
    runs = []
    for scale in scales:
        spec_scale = _scale_spec(scale, tiny)
        first = len(runs)
        runs += native_runs(scale, spec_scale, native_variants, bf16)
        for backend in backends:
            for setting_name in setting_names:
                for model in models:
                    runs.append({
                        "framework": "keras", "backend": backend, "scale_name": scale,
                        "scale": spec_scale, "model": model, "settings": setting_name,
                        "setting": settings_lib.resolve(setting_name, backend),
                    })
        for ablation in ablations:
            for backend in backends:
                if backend in ablations_lib.ABLATIONS[ablation]["backends"]:
                    runs.append({
                        "framework": "keras", "backend": backend, "scale_name": scale,
                        "scale": spec_scale, "model": "ours", "settings": "best",
                        "ablation": ablation, "setting": settings_lib.resolve("best", backend),
                    })
        if "reference" in native_variants and len(runs) - first > 1:
            runs.append({"framework": "native", "backend": "torch", "variant": "reference",
                         "scale_name": scale, "scale": spec_scale, "model": "native",
                         "settings": "reference", "again": True})
    return runs


def gpu_plan(backends, tiny):
    """Per GPU scale: the native reference, then keras_resnets on each backend as a user's
    script runs it (``"plain"``: imported first, Keras' ``jit_compile="auto"``)."""
    import settings as settings_lib

    runs = []
    for name, scale in GPU_SCALES.items():
        scale = {**scale, **(TINY[scale["model"]] if tiny else {})}
        variant = scale["native"]
        runs.append({"framework": "native", "backend": "torch", "variant": variant,
                     "scale_name": name, "scale": scale, "model": "native",
                     "settings": "amp+channels_last" if variant == "amp" else variant,
                     "device": "gpu"})
        for backend in backends:
            runs.append({
                "framework": "keras", "backend": backend, "scale_name": name, "scale": scale,
                "model": "ours", "settings": "plain", "device": "gpu",
                "mixed_precision": scale["mixed_precision"],
                "setting": settings_lib.resolve("plain", backend, device="gpu"),
            })
    return runs


def run_one(run, timeout, script=__file__):
    """Runs one worker process (``script --worker RUN``, this file by default); returns the
    run with its ``result`` (or ``error``)."""
    from keras_resnets.runtime.environment import user_environment

    env = user_environment()  # not what importing keras_resnets set here, for this backend
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["KERAS_BACKEND"] = run["backend"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    for key, value in (run.get("setting") or {}).get("env", {}).items():
        env[key] = value
    if run.get("device") != "gpu":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    cmd = [sys.executable, os.path.abspath(script), "--worker", json.dumps(run)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**run, "error": f"timed out after {timeout} s", "wall_s": timeout}
    wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**run, "result": json.loads(line[len("RESULT "):]), "wall_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {**run, "error": f"exit code {proc.returncode}: " + " | ".join(tail), "wall_s": wall}


def label(run):
    if run["framework"] == "native":
        return native_label(run) + (", run again last" if run.get("again") else "")
    if run.get("ablation"):
        return f"{run['backend']} ours, undone: {run['ablation']} ({run['settings']})"
    return f"{run['backend']} {run['model']} ({run['settings']})"


def _fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value, reference):
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def _references(rows):
    """The native reference's runs among ``rows`` (first and, where it ran twice, last)."""
    return [r for r in rows if r["framework"] == "native"
            and r.get("variant") in ("reference", "amp") and "result" in r]


def reference_figures(rows):
    """The reference's train, inference and train-per-CPU-second figures: the mean over its
    runs, so that a ratio is taken against the machine's speed across the whole run."""
    refs = _references(rows)
    if not refs:
        return None, None, None
    return tuple(statistics.fmean(r["result"][kind]["median"] for r in refs)
                 for kind in ("train", "infer", "train_cpu"))


def best_native(rows):
    """Per native framework (``"torch"``, ``"jax"``) and figure (``"train"``, ``"infer"``), its
    best native row among ``rows``: ``(images/s, label)``, a variant's figure being the mean
    over its runs (the reference's first and last)."""
    figures = {}
    for r in rows:
        if r["framework"] == "native" and "result" in r:
            figures.setdefault((r["backend"], r["variant"]), []).append(r)
    best = {}
    for (framework, _), runs in figures.items():
        for kind in ("train", "infer"):
            values = [r["result"][kind]["median"] for r in runs]
            if None in values:
                continue
            figure = statistics.fmean(values)
            if figure > best.get(framework, {}).get(kind, (0, None))[0]:
                best.setdefault(framework, {})[kind] = (figure, native_label(runs[0]))
    return best


def _native_setting(run, result):
    if run["backend"] == "jax":
        env = (run.get("setting") or {}).get("env", {})
        return ", ".join(f"{k}={v}" for k, v in env.items()) or "JAX defaults"
    options = native_options(run)
    setting = "torch defaults" if run["variant"] == "reference" else run["settings"]
    if options["compile"]:
        setting += f"; first step (compilation) {_fmt(result['first_step_s'])} s"
    return setting + ("; inference_mode" if options["inference_mode"] else "")


def table(results, scale_name):
    """A Markdown table of one scale: absolute figures, ratios to the native reference and to
    the best native row of the framework each row is held against (`NATIVE_OF`)."""
    import settings as settings_lib

    rows = [r for r in results if r["scale_name"] == scale_name]
    ref_train, ref_infer, ref_cpu = reference_figures(rows)
    best = best_native(rows)
    hand = {(r["backend"], r["settings"]): r for r in rows
            if r["framework"] == "keras" and r["model"] == "hand" and "result" in r}
    lines = [
        "| run | train img/s (min-max) | train vs ref | inference img/s | inference vs ref "
        "| train vs best native | inference vs best native "
        "| ours / hand (train) | train img per CPU-s (vs ref) | first step s | peak MiB "
        "| settings |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "result" not in r:
            lines.append(f"| {label(r)} | failed: {r['error'][:120]} | | | | | | | | | | |")
            continue
        res = r["result"]
        tr, inf = res["train"], res["infer"]
        ours_hand = "-"
        if r["framework"] == "keras" and r["model"] == "ours":
            twin = hand.get((r["backend"], r["settings"]))
            if twin and twin["result"]["train"]["median"] and tr["median"]:
                ours_hand = f"{tr['median'] / twin['result']['train']['median']:.3f}"
        memory = res["peak_rss_mib"] if res.get("peak_gpu_mib") is None else res["peak_gpu_mib"]
        if r["framework"] == "keras":
            setting = settings_lib.describe(r["setting"])
            versus = best.get(NATIVE_OF[r["backend"]], {})
        else:
            setting = _native_setting(r, res)
            versus = best.get(r["backend"], {})
        if r["framework"] == "keras" and r["settings"] == "default":
            setting += f"; jit_compile resolved to {res.get('jit_compile')}"
        if res.get("dtype_policy", "float32") != "float32":
            setting += f"; computes in {res['dtype_policy']}"
        if r.get("failed_rounds"):
            setting += f"; failed in {r['failed_rounds']} of its rounds"
        lines.append(
            f"| {label(r)} | {_fmt(tr['median'])} ({_fmt(tr['min'])}-{_fmt(tr['max'])}) "
            f"| {_ratio(tr['median'], ref_train)} | {_fmt(inf['median'])} "
            f"| {_ratio(inf['median'], ref_infer)} "
            f"| {_ratio(tr['median'], versus.get('train', (None,))[0])} "
            f"| {_ratio(inf['median'], versus.get('infer', (None,))[0])} | {ours_hand} "
            f"| {_fmt(res['train_cpu']['median'])} ({_ratio(res['train_cpu']['median'], ref_cpu)}) "
            f"| {_fmt(res['first_step_s'])} "
            f"| {_fmt(memory, 0)} | {setting} |"
        )
    return "\n".join(lines)


def best_native_line(results, scale_name):
    """A sentence naming each framework's best native rows (the "vs best native" ratios')."""
    best = best_native([r for r in results if r["scale_name"] == scale_name])
    names = {"torch": "PyTorch (held against by TensorFlow and PyTorch)", "jax": "JAX"}
    parts = []
    for framework, figures in best.items():
        kinds = [f"{what} {figures[kind][1]} ({_fmt(figures[kind][0])} img/s)"
                 for kind, what in (("train", "training"), ("infer", "inference"))
                 if kind in figures]
        parts.append(f"{names[framework]}: " + ", ".join(kinds))
    return "Best native rows: " + "; ".join(parts) + "." if parts else ""


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = None
    try:
        load = os.getloadavg()
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load": load}


def versions():
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for p in ('keras', 'tensorflow', 'jax', 'jaxlib', 'torch', 'numpy'):\n"
        "    try: out[p] = m.version(p)\n"
        "    except Exception: out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {}


def report(results, meta, scale, title):
    """The Markdown section of one scale: how it was run, then the table."""
    spec = next((r["scale"] for r in results if r["scale_name"] == scale), {})
    lines = [f"## {spec.get('title', scale)}{title}", ""]
    lines.append(f"Run on {meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} "
                 f"cores; load average (1, 5, 15 min) before: {meta['load_before']}, after: "
                 f"{meta['load_after']}.")
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v) + ".")
    lines.append(f"Command: `{meta['command']}` ({meta['wall_min']:.1f} min for all its scales).")
    if spec:
        lines.append(
            f"Training: batch {spec['batch']}, {spec['warmup']} warm-up steps (compilation "
            f"included), median (min-max) of {spec['windows']} windows of {spec['window_steps']} "
            f"steps. Inference: batch {spec['infer_batch']}, median of {spec['infer_windows']} "
            f"windows of {spec['infer_window_steps']} steps. Peak memory: the peak resident set "
            "of the run's process (GPU runs: peak device memory)."
        )
    if meta.get("rounds", 1) > 1:
        lines.append(
            f"The whole plan ran {meta['rounds']} times, one round after another: each figure "
            "is the median of a row's rounds (each the median of its windows), min-max their "
            "range; the first and last references are the rounds' first and last runs.")
    refs = _references([r for r in results if r["scale_name"] == scale])
    if len(refs) > 1:
        first, last = (r["result"]["train"]["median"] for r in (refs[0], refs[-1]))
        lines.append(f"Ratios are to the mean of the native reference's runs, first and last "
                     f"(training {_fmt(first)} and {_fmt(last)} img/s: the machine drifted "
                     f"{100 * (last - first) / first:+.1f}% over the run).")
    if best_native_line(results, scale):
        lines.append(best_native_line(results, scale))
    lines.append("")
    lines.append(table(results, scale))
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scales", default="mnist,cifar",
                        help="comma-separated: mnist, cifar, imagenet, or 'all' (default: mnist,cifar)")
    parser.add_argument("--backends", help=f"default: {','.join(BACKENDS)}; "
                                           f"with --gpu: {','.join(GPU_BACKENDS)}")
    parser.add_argument("--settings", default="default,best",
                        help="Keras rows' settings: default, plain, plain-float32, keras-first, "
                             "best (benchmarks/settings.py)")
    parser.add_argument("--models", default="ours,hand")
    parser.add_argument("--native", default=",".join(NATIVE_DEFAULT),
                        help="native rows: reference (the lecture's code), cl (channels_last), "
                             "cl-bf16 (+ bfloat16 autocast, CPUs with bf16 only), compile "
                             "(+ torch.compile), jax (plain JAX), jax-ynn (+ YNN reductions), "
                             "jax-max (plain JAX with jax.nn.relu); '' for none "
                             f"(default: {','.join(NATIVE_DEFAULT)})")
    parser.add_argument("--ablations", default=",".join(ablations_lib.ABLATIONS),
                        help="library changes to measure undone too ('' for none); "
                             "see benchmarks/ablations.py")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument("--gpu", action="store_true",
                        help="the GPU suite: ResNet-50 at 224x224, mixed precision")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file to write ('-': none)")
    parser.add_argument("--json", help="also write the raw results to this JSON file")
    add_rounds_argument(parser)
    args = parser.parse_args(argv)

    if args.worker:
        worker_main(args.worker)
        return 0

    backends = (args.backends.split(",") if args.backends is not None
                else GPU_BACKENDS if args.gpu else BACKENDS)
    backends = [b for b in backends if b]
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"--backends: {b!r} is not one of {BACKENDS}")
    if args.gpu:
        runs = gpu_plan(backends, args.tiny)
        scales = list(GPU_SCALES)
        title = ""
        args.timeout = min(args.timeout, GPU_TIMEOUT)
        if not _gpu_available():
            print("--gpu: no CUDA GPU is visible to PyTorch on this machine; the GPU suite "
                  "needs one (nothing was run).", file=sys.stderr)
            return 2
    else:
        scales = list(SCALES) if args.scales == "all" else [s for s in args.scales.split(",") if s]
        for s in scales:
            if s not in SCALES:
                parser.error(f"--scales: {s!r} is not one of {sorted(SCALES)} or 'all'")
        ablations = [a for a in args.ablations.split(",") if a]
        for a in ablations:
            if a not in ablations_lib.ABLATIONS:
                parser.error(f"--ablations: {a!r} is not one of {sorted(ablations_lib.ABLATIONS)}")
        natives = [v for v in args.native.split(",") if v]
        for v in natives:
            if v not in NATIVE or NATIVE[v].get("gpu"):
                parser.error(f"--native: {v!r} is not one of {sorted(set(NATIVE) - {'amp'})}")
        runs = plan(scales, backends, [s for s in args.settings.split(",") if s],
                    [m for m in args.models.split(",") if m], args.tiny, natives, ablations)
        title = " (tiny smoke run)" if args.tiny else ""

    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(), "versions": versions(),
        "command": "python benchmarks/resnet_benchmark.py " + " ".join(argv or sys.argv[1:]),
        "load_before": _load(), "rounds": args.rounds,
    }
    start = time.perf_counter()
    results = []
    total = len(runs) * args.rounds
    for i, run in enumerate(runs * args.rounds, 1):
        print(f"[{i}/{total}] {run['scale_name']}: {label(run)} ...", end=" ", flush=True)
        result = {**run_one(run, args.timeout), "round": (i - 1) // len(runs)}
        results.append(result)
        if "result" in result:
            tr = result["result"]["train"]["median"]
            inf = result["result"]["infer"]["median"]
            print(f"train {_fmt(tr)} img/s, inference {_fmt(inf)} img/s "
                  f"({result['wall_s']:.0f} s)", flush=True)
        else:
            print("FAILED: " + result["error"], flush=True)
    meta["wall_min"] = (time.perf_counter() - start) / 60
    meta["load_after"] = _load()
    merged = merge_rounds(results)
    for scale in scales:
        text = report(merged, meta, scale, title)
        print()
        print(text)
        if args.output and args.output != "-":
            _write_section(args.output, text, tag=(
                {"gpu": "GPU", "gpu_mnist": "GPU mnist"}[scale] if args.gpu else f"CPU {scale}"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)
    return 0 if all("result" in r for r in results) else 1


def _load():
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


def _gpu_available():
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def _write_section(path, text, tag):
    """Writes ``text`` between the ``tag`` markers of ``path``, keeping the rest."""
    begin, end = f"<!-- BEGIN {tag} RESULTS -->", f"<!-- END {tag} RESULTS -->"
    block = f"{begin}\n{text}\n{end}"
    existing = ""
    if os.path.exists(path):
        with open(path) as f:
            existing = f.read()
    if begin in existing and end in existing:
        head, rest = existing.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + block + tail
    else:
        new = (existing.rstrip() + "\n\n" if existing else "") + block + "\n"
    with open(path, "w") as f:
        f.write(new)


if __name__ == "__main__":
    sys.exit(main())
