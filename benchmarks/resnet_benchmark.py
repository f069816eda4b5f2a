"""Side by side, in one run: keras_resnets on TensorFlow, JAX and PyTorch against native PyTorch.

For each scale (the lecture's MNIST ResNet; CIFAR ResNet-56; ResNet-50 at 224x224) it measures

- ``native``: the lecture's PyTorch code exactly as on the slides, trained with the lecture's
  loop (the reference of every ratio), and the same code with ``channels_last`` tensors
  (``native+cl``, what a PyTorch user can get from one line);
- ``ours``: the keras_resnets model (``keras_resnets.mnist_resnet()``, ...), with
  ``model.fit`` / ``model.predict`` on in-memory NumPy arrays;
- ``hand``: the same network hand-written from plain ``keras.layers`` (benchmarks/keras_hand.py),
  the yardstick for the overhead of our layers;

each Keras model on every backend, with Keras' default settings and with the best settings
found (benchmarks/settings.py). Every run is its own process (one backend per process; the
peak memory is that process' peak resident set). Throughput is the median over timed windows
after a warm-up (which includes compilation); synthetic data.

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
import settings as settings_lib  # noqa: E402

from keras_resnets.environment import user_environment  # noqa: E402

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


def _scale_spec(scale, tiny):
    spec = dict(SCALES[scale])
    if tiny:
        spec.update(TINY[scale])
    return spec


# ---- native PyTorch ------------------------------------------------------------------------


def run_native(spec):
    """The lecture's PyTorch code and training loop; ``spec["variant"]``: reference | cl."""
    import torch
    import torch.nn as nn

    import native_torch

    scale = spec["scale"]
    device = "cuda" if spec.get("device") == "gpu" else "cpu"
    torch.manual_seed(0)
    model = native_torch.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                               depth=scale.get("depth", 56))
    if scale["model"] == "imagenet" and scale["classes"] != 1000:
        model.fc = nn.Linear(model.fc.in_features, scale["classes"])
    channels_last = spec["variant"] in ("cl", "amp")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
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
        native_torch.train_steps(model, optimizer, criterion, x, y, batch, steps, on_step=on_step)
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
        native_torch.predict_steps(model, xi, ib, isteps, on_step=on_step)
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
        result = run_native(spec)
    else:
        result = run_keras(spec)
    print("RESULT " + json.dumps(result), flush=True)


# ============================================================================================
# orchestration
# ============================================================================================


def plan(scales, backends, setting_names, models, tiny, native_variants=("reference", "cl"),
         ablations=()):
    """The list of runs: the native reference first, then every Keras combination, then
    keras_resnets with each of its speed changes undone (best settings of its backends), then
    the native reference again, so that the ratios can average out the machine's drift."""
    runs = []
    for scale in scales:
        spec_scale = _scale_spec(scale, tiny)
        first = len(runs)
        for variant in native_variants:
            runs.append({"framework": "native", "backend": "torch", "variant": variant,
                         "scale_name": scale, "scale": spec_scale, "model": "native",
                         "settings": variant})
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


def run_one(run, timeout):
    """Runs one worker process; returns the run with its ``result`` (or ``error``)."""
    env = user_environment()  # not what importing keras_resnets set here, for this backend
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["KERAS_BACKEND"] = run["backend"]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    for key, value in (run.get("setting") or {}).get("env", {}).items():
        env[key] = value
    if run.get("device") != "gpu":
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(run)]
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
        return {"reference": "native PyTorch (lecture code)",
                "cl": "native PyTorch + channels_last",
                "amp": "native PyTorch, AMP + channels_last"}[run["variant"]] + (
                    ", run again last" if run.get("again") else "")
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


def table(results, scale_name):
    """A Markdown table of one scale: absolute figures and ratios to the native reference."""
    rows = [r for r in results if r["scale_name"] == scale_name]
    ref_train, ref_infer, ref_cpu = reference_figures(rows)
    hand = {(r["backend"], r["settings"]): r for r in rows
            if r["framework"] == "keras" and r["model"] == "hand" and "result" in r}
    lines = [
        "| run | train img/s (min-max) | train vs ref | inference img/s | inference vs ref "
        "| ours / hand (train) | train img per CPU-s (vs ref) | first step s | peak MiB "
        "| settings |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "result" not in r:
            lines.append(f"| {label(r)} | failed: {r['error'][:120]} | | | | | | | | |")
            continue
        res = r["result"]
        tr, inf = res["train"], res["infer"]
        ours_hand = "-"
        if r["framework"] == "keras" and r["model"] == "ours":
            twin = hand.get((r["backend"], r["settings"]))
            if twin and twin["result"]["train"]["median"] and tr["median"]:
                ours_hand = f"{tr['median'] / twin['result']['train']['median']:.3f}"
        memory = res["peak_rss_mib"] if res.get("peak_gpu_mib") is None else res["peak_gpu_mib"]
        setting = (settings_lib.describe(r["setting"]) if r["framework"] == "keras"
                   else "torch defaults" if r["variant"] == "reference" else r["settings"])
        if r["framework"] == "keras" and r["settings"] == "default":
            setting += f"; jit_compile resolved to {res.get('jit_compile')}"
        if res.get("dtype_policy", "float32") != "float32":
            setting += f"; computes in {res['dtype_policy']}"
        lines.append(
            f"| {label(r)} | {_fmt(tr['median'])} ({_fmt(tr['min'])}-{_fmt(tr['max'])}) "
            f"| {_ratio(tr['median'], ref_train)} | {_fmt(inf['median'])} "
            f"| {_ratio(inf['median'], ref_infer)} | {ours_hand} "
            f"| {_fmt(res['train_cpu']['median'])} ({_ratio(res['train_cpu']['median'], ref_cpu)}) "
            f"| {_fmt(res['first_step_s'])} "
            f"| {_fmt(memory, 0)} | {setting} |"
        )
    return "\n".join(lines)


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
    refs = _references([r for r in results if r["scale_name"] == scale])
    if len(refs) > 1:
        first, last = (r["result"]["train"]["median"] for r in (refs[0], refs[-1]))
        lines.append(f"Ratios are to the mean of the native reference's runs, first and last "
                     f"(training {_fmt(first)} and {_fmt(last)} img/s: the machine drifted "
                     f"{100 * (last - first) / first:+.1f}% over the run).")
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
    parser.add_argument("--settings", default="default,best")
    parser.add_argument("--models", default="ours,hand")
    parser.add_argument("--native", default="reference,cl",
                        help="native PyTorch variants: reference (the lecture), cl (channels_last)")
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
        runs = plan(scales, backends, [s for s in args.settings.split(",") if s],
                    [m for m in args.models.split(",") if m], args.tiny,
                    [v for v in args.native.split(",") if v], ablations)
        title = " (tiny smoke run)" if args.tiny else ""

    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(), "versions": versions(),
        "command": "python benchmarks/resnet_benchmark.py " + " ".join(argv or sys.argv[1:]),
        "load_before": _load(),
    }
    start = time.perf_counter()
    results = []
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run['scale_name']}: {label(run)} ...", end=" ", flush=True)
        result = run_one(run, args.timeout)
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
    for scale in scales:
        text = report(results, meta, scale, title)
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
