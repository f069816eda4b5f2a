"""ResNet-50 trained from an image folder on GPUs, as a user starts it: the streaming input
pipeline against the model, in mixed precision, with one process and with one process per GPU.

For each backend, each row in its own process(es):
- ``pipeline``: images/s of the folder's training pipeline alone (read, decode, ``"imagenet"``
  transforms: random-resized crop 224 and flip, normalise, batch), on the host's CPUs;
- ``1 process``: ``python -m keras_resnets train --preset resnet50 --dataset FOLDER
  --transforms imagenet`` in mixed precision (``KERAS_RESNETS_DTYPE_POLICY=mixed_float16``);
  images/s is the median of the run's recorded batch speeds after the first 30% of them
  (compilation);
- ``N processes``: the same with ``--processes N``, N the GPUs visible (one per process;
  skipped with fewer than two).
The table gives per-GPU images/s, the scaling efficiency of N processes (per-GPU images/s over
the one-process figure) and how many times the pipeline outruns what one GPU consumes.

    python benchmarks/gpu_scale.py                       # on a GPU machine: writes RESULTS.md
    python benchmarks/gpu_scale.py --tiny --output -     # seconds, on a CPU: the smoke test

Its section of RESULTS.md (between the "GPU image folder" markers) is replaced by each run.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import resnet_benchmark as rb  # noqa: E402
from data_pipeline import make_folder, run as run_worker  # noqa: E402

from keras_resnets.training.launcher import gpu_count  # noqa: E402

BACKENDS = ("jax", "tensorflow", "torch")
TITLE = "## ResNet-50 from an image folder, GPU"
TAG = "GPU image folder"  # its section's markers in RESULTS.md
FULL = {"images": 4096, "shape": [375, 500], "batch": 256, "epochs": 1, "skip": 0.3,
        "preset": ["--preset", "resnet50"], "policy": "mixed_float16", "timeout": 420,
        "speed_batches": 20, "warmup": 3}
TINY = {"images": 48, "shape": [40, 30], "batch": 8, "epochs": 1, "skip": 0.0,
        "preset": ["--preset", "mnist_resnet", "--set", "nb_blocks=1", "--set", "nb_channels=4"],
        "policy": "float32", "timeout": 300, "speed_batches": 2, "warmup": 1}


def train_speed(size, backend, folder, processes, runs_dir):
    """Median images/s of one training run (``--processes processes``), or ``{"error": ...}``."""
    run_id = f"{backend}-{processes}"
    command = [sys.executable, "-m", "keras_resnets", "train", *size["preset"], "--dataset", folder,
               "--transforms", "imagenet", "--validation-split", "0", "--epochs", str(size["epochs"]),
               "--batch-size", str(size["batch"]), "--optimizer", "sgd", "--learning-rate", "0.1",
               "--runs-dir", runs_dir, "--run-id", run_id, "--quiet"]
    if processes > 1:
        command += ["--processes", str(processes)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "KERAS_RESNETS_DTYPE_POLICY": size["policy"],
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=size["timeout"])
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {size['timeout']} s"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return {"images_per_s": _median_speed(os.path.join(runs_dir, run_id), size["skip"])}


def _median_speed(run_path, skip):
    with open(os.path.join(run_path, "metrics.jsonl")) as lines:
        speeds = [e["images_per_second"] for e in map(json.loads, lines) if e.get("event") == "batch"]
    return statistics.median(speeds[int(len(speeds) * skip):])


def measure(size, backends, gpus):
    """The pipeline row, then per backend one process and (with 2 GPUs or more) one per GPU."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(os.path.join(tmp, "images"), size["images"], *size["shape"])
        spec = {"kind": "pipeline", "folder": folder, "batch": size["batch"],
                "speed_batches": size["speed_batches"], "warmup": size["warmup"]}
        rows.append({"kind": "pipeline", **run_worker(spec, "tensorflow", size["timeout"])})
        for backend in backends:
            for processes in sorted({1, gpus} - {0} if gpus > 1 else {1}):
                print(f"{backend}, {processes} process(es) ...", flush=True)
                result = train_speed(size, backend, folder, processes, os.path.join(tmp, "runs"))
                rows.append({"kind": "train", "backend": backend, "processes": processes, **result})
    return rows


def report(rows, size, meta):
    """The Markdown section."""
    pipeline = rows[0].get("images_per_s")
    lines = [TITLE + (" (tiny smoke run)" if meta["tiny"] else ""), "",
             f"Run on {meta['date']}; {meta['device']}. Command: `{meta['command']}`.",
             f"{size['images']:,} generated {size['shape'][1]}x{size['shape'][0]} JPEGs; batch "
             f"{size['batch']} (global); {size['policy']}; the pipeline alone: "
             + (f"{pipeline:.0f} images/s." if pipeline else f"failed: {rows[0].get('error')}."), "",
             "| backend | processes | images/s | per GPU | scaling efficiency | pipeline / one GPU's consumption |",
             "|---|---|---|---|---|---|"]
    single = {r["backend"]: r.get("images_per_s") for r in rows if r.get("processes") == 1}
    for r in (r for r in rows if r["kind"] == "train"):
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['processes']} | failed: {r['error']} | | | |")
            continue
        per = r["images_per_s"] / r["processes"]
        base = single.get(r["backend"])
        efficiency = f"{per / base:.2f}" if base else "-"
        ratio = f"{pipeline / per:.1f}x" if pipeline else "-"
        lines.append(f"| {r['backend']} | {r['processes']} | {r['images_per_s']:.1f} | {per:.1f} | "
                     f"{efficiency} | {ratio} |")
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on any device: the smoke test")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file whose section to replace ('-': print only)")
    args = parser.parse_args(argv)
    gpus = gpu_count()
    if not gpus and not args.tiny:
        print("no GPU is visible (nvidia-smi lists none); run with --tiny to smoke-test on a CPU",
              file=sys.stderr)
        return 2
    size = TINY if args.tiny else FULL
    rows = measure(size, [b for b in args.backends.split(",") if b], gpus)
    meta = {"date": f"{datetime.datetime.now():%Y-%m-%d %H:%M}", "tiny": args.tiny,
            "device": f"{gpus} GPU(s)" if gpus else f"CPU only, {os.cpu_count()} cores",
            "command": " ".join(["python", "benchmarks/gpu_scale.py", *(argv or sys.argv[1:])])}
    text = report(rows, size, meta)
    print(text)
    if args.output != "-":
        rb._write_section(args.output, text, tag=TAG)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
