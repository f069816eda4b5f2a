"""The input pipeline on image folders: peak memory against the number of images, and speed
against what ResNet-18 consumes.

Memory: a process trains a small network (the lecture's ResNet with one block of 8 channels)
for one epoch on a folder of N generated 96x96 images (JPEG and PNG, 10 classes) with
`keras_resnets.data.load_data`; its peak resident set (``ru_maxrss``) should not grow with N,
since images stream from the file list. The same with the folder read into NumPy arrays first
(what ``load_data`` did before it streamed) shows what growth looks like.

Speed: images/s of the pipeline alone (read, decode, ``"imagenet"`` transforms: random-resized
crop to 224x224 and flip, normalise, batch; the batches converted to NumPy as Keras' JAX and
PyTorch adapters do) on generated 500x375 JPEGs (ImageNet's typical size), against images/s
of ResNet-18's training step at 224x224 (``train_on_batch``, SGD, synthetic batch), same batch.
Each measurement runs in its own process, one after the other.

    python benchmarks/data_pipeline.py                    # memory 1,000 vs 8,000; speed on this backend
    python benchmarks/data_pipeline.py --backends tensorflow,jax,torch
    python benchmarks/data_pipeline.py --tiny --output -  # seconds: the smoke test

The section "Input pipeline on image folders" of RESULTS.md is replaced by each run.
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = 10
FULL = {"sizes": [1000, 8000], "image": 96, "batch": 32, "speed_images": 384, "speed_shape": [375, 500],
        "speed_batches": 10, "model_size": 224, "model_steps": 4, "warmup": 2}
TINY = {"sizes": [40, 80], "image": 32, "batch": 4, "speed_images": 24, "speed_shape": [40, 30],
        "speed_batches": 3, "model_size": 32, "model_steps": 1, "warmup": 1}


def make_folder(root, count, height, width, seed=0):
    """``count`` smooth random images in ``CLASSES`` class subfolders, alternately JPEG and PNG
    (all JPEG above 128 pixels: ImageNet's format)."""
    import PIL.Image

    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = os.path.join(root, f"class{i % CLASSES}")
        os.makedirs(folder, exist_ok=True)
        coarse = PIL.Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize((width, height), PIL.Image.BILINEAR), dtype=np.int16)
        pixels = np.clip(pixels + rng.integers(-12, 13, pixels.shape), 0, 255).astype(np.uint8)
        png = i % 2 and max(height, width) <= 128
        PIL.Image.fromarray(pixels).save(os.path.join(folder, f"{i:06d}.{'png' if png else 'jpg'}"),
                                         quality=90)
    return root


def memory_worker(spec):
    """Trains one epoch on the folder; returns the peak resident set and the scan time."""
    import resource

    import keras

    from keras_resnets import mnist_resnet
    from keras_resnets.data import load_data
    from keras_resnets.data.folders import scan

    start = time.perf_counter()
    scan(spec["folder"])
    scan_s = time.perf_counter() - start
    keras.utils.set_random_seed(0)
    size = spec["image"]
    model = mnist_resnet(nb_channels=8, nb_blocks=1, input_shape=(size, size, 3), classes=CLASSES)
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = _peak_mib(resource)
    if spec["mode"] == "stream":
        data = load_data(spec["folder"], batch_size=spec["batch"], validation_split=0)
        train, count = data.train, data.num_train
    else:
        train, count = _arrays(spec["folder"], spec["batch"])
    model.fit(train, epochs=1, verbose=0, shuffle=False)
    return {"peak_mib": _peak_mib(resource), "peak_before_data_mib": before, "images": count,
            "scan_s": scan_s}


def _arrays(folder, batch):
    """The folder decoded into NumPy arrays, as one dataset: the contrast (not streaming)."""
    import PIL.Image
    import tensorflow as tf

    from keras_resnets.data.folders import scan

    found = scan(folder)
    images = np.stack([np.asarray(PIL.Image.open(f).convert("RGB")) for f in found.files])
    labels = np.array(found.labels, "int32")
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(images), seed=0)
    return ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y)), len(images)


def _peak_mib(resource):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline_worker(spec):
    """Images/s of the folder's training pipeline alone, after a warm-up."""
    from keras_resnets.data import load_data

    data = load_data(spec["folder"], batch_size=spec["batch"], validation_split=0,
                     transforms="imagenet", data_format="channels_last")
    batches = iter(data.train.repeat())
    for _ in range(spec["warmup"]):
        np.asarray(next(batches)[0])
    start = time.perf_counter()
    for _ in range(spec["speed_batches"]):
        x, y = next(batches)
        np.asarray(x), np.asarray(y)
    return {"images_per_s": spec["speed_batches"] * spec["batch"] / (time.perf_counter() - start)}


def model_worker(spec):
    """Images/s of ResNet-18's training step at 224x224, after a warm-up."""
    import keras

    import keras_resnets

    keras.utils.set_random_seed(0)
    size = spec["model_size"]
    model = keras_resnets.resnet18(input_shape=(size, size, 3), classes=CLASSES)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((spec["batch"], size, size, 3)).astype("float32")
    y = rng.integers(0, CLASSES, spec["batch"]).astype("int32")
    for _ in range(spec["warmup"]):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(spec["model_steps"]):
        model.train_on_batch(x, y)
    return {"images_per_s": spec["model_steps"] * spec["batch"] / (time.perf_counter() - start),
            "dtype_policy": model.dtype_policy.name}


WORKERS = {"memory": memory_worker, "pipeline": pipeline_worker, "model": model_worker}


def run(spec, backend, timeout):
    """Runs one worker in a fresh process; its result, or ``{"error": ...}``."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}


def _load():
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


def measure(args, size):
    """Every row: memory per folder size and mode, then pipeline and model speed."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in size["sizes"]:
            folder = make_folder(os.path.join(tmp, f"n{count}"), count, size["image"], size["image"])
            for mode in ("stream", "arrays"):
                print(f"memory: {count} images, {mode} ...", end=" ", flush=True)
                result = run({**size, "kind": "memory", "mode": mode, "folder": folder},
                             args.memory_backend, args.timeout)
                rows.append({"kind": "memory", "mode": mode, "count": count, **result})
                print(result.get("error") or f"{result['peak_mib']:.0f} MiB", flush=True)
        folder = make_folder(os.path.join(tmp, "speed"), size["speed_images"], *size["speed_shape"])
        print("pipeline alone ...", end=" ", flush=True)
        result = run({**size, "kind": "pipeline", "folder": folder}, args.memory_backend, args.timeout)
        rows.append({"kind": "pipeline", **result})
        print(result.get("error") or f"{result['images_per_s']:.1f} img/s", flush=True)
    for backend in args.backends.split(","):
        print(f"ResNet-18 train step, {backend} ...", end=" ", flush=True)
        result = run({**size, "kind": "model"}, backend, args.timeout)
        rows.append({"kind": "model", "backend": backend, **result})
        print(result.get("error") or f"{result['images_per_s']:.2f} img/s", flush=True)
    return rows


def report(rows, size, meta):
    """The Markdown section."""
    lines = ["## Input pipeline on image folders" + (" (tiny smoke run)" if meta["tiny"] else ""), "",
             f"Run on {meta['date']}; {meta['cpu']}, {os.cpu_count()} cores; load average "
             f"(1, 5, 15 min) before: {meta['load_before']}, after: {meta['load_after']}"
             f"{meta['note']}.",
             f"Command: `{meta['command']}` ({meta['wall_min']:.1f} min).", "",
             f"Memory: one epoch of the lecture's ResNet (1 block, 8 channels) on N generated "
             f"{size['image']}x{size['image']} images (JPEG and PNG, {CLASSES} classes), batch "
             f"{size['batch']}, KERAS_BACKEND={meta['memory_backend']}; peak resident set of the "
             f"process.", "",
             "| images | data | peak RSS (MiB) | before the data (MiB) | vs the smallest | scan (list + header check) |",
             "|---|---|---|---|---|---|"]
    memory = [r for r in rows if r["kind"] == "memory"]
    for mode in ("stream", "arrays"):
        first = next((r for r in memory if r["mode"] == mode and "peak_mib" in r), None)
        for r in (r for r in memory if r["mode"] == mode):
            label = "load_data (streams)" if mode == "stream" else "NumPy arrays (contrast)"
            if "error" in r:
                lines.append(f"| {r['count']:,} | {label} | failed: {r['error']} | | | |")
                continue
            per_file = 1e6 * r["scan_s"] / r["images"]
            lines.append(f"| {r['count']:,} | {label} | {r['peak_mib']:.0f} | "
                         f"{r['peak_before_data_mib']:.0f} | {r['peak_mib'] / first['peak_mib']:.3f}x | "
                         f"{r['scan_s']:.2f} s ({per_file:.0f} us per image) |")
    pipeline = next(r for r in rows if r["kind"] == "pipeline")
    height, width = size["speed_shape"]
    lines += ["", f"Speed: batch {size['batch']}; the pipeline on {size['speed_images']} generated "
                  f"{width}x{height} JPEGs with the \"imagenet\" transforms (parallel decoding and "
                  f"prefetch as by default), {size['speed_batches']} timed batches after "
                  f"{size['warmup']}; ResNet-18 (11.7 M parameters) at {size['model_size']}x"
                  f"{size['model_size']}, {size['model_steps']} timed steps after {size['warmup']}.", "",
              "| backend | pipeline alone (img/s) | ResNet-18 train step (img/s) | pipeline / model |",
              "|---|---|---|---|"]
    for r in (r for r in rows if r["kind"] == "model"):
        if "error" in r or "error" in pipeline:
            lines.append(f"| {r['backend']} | failed: {r.get('error') or pipeline['error']} | | |")
            continue
        policy = "" if r["dtype_policy"] == "float32" else f" ({r['dtype_policy']})"
        lines.append(f"| {r['backend']}{policy} | {pipeline['images_per_s']:.1f} | "
                     f"{r['images_per_s']:.2f} | {pipeline['images_per_s'] / r['images_per_s']:.1f}x |")
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                        help="backends of the ResNet-18 rows (default: KERAS_BACKEND)")
    parser.add_argument("--memory-backend", default=os.environ.get("KERAS_BACKEND", "tensorflow"),
                        help="the backend that trains in the memory rows")
    parser.add_argument("--note", default="", help="said after the load average (e.g. who else ran)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per process")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file whose section to replace ('-': none)")
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print("RESULT " + json.dumps(WORKERS[spec["kind"]](spec)), flush=True)
        return 0
    size = TINY if args.tiny else FULL
    meta = {"load_before": _load(), "date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}",
            "command": shlex.join(["python", "benchmarks/data_pipeline.py", *(argv or sys.argv[1:])]),
            "tiny": args.tiny, "memory_backend": args.memory_backend,
            "note": f"; {args.note}" if args.note else ""}
    start = time.perf_counter()
    rows = measure(args, size)
    sys.path.insert(0, HERE)
    import resnet_benchmark as rb

    meta.update(load_after=_load(), wall_min=(time.perf_counter() - start) / 60,
                cpu=rb.machine_description()["cpu"])
    text = report(rows, size, meta)
    print("\n" + text)
    if args.output != "-":
        rb._write_section(args.output, text, tag="CPU data pipeline")
    return 0 if not any("error" in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
