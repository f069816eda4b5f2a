"""A user's plain script, timed whole: the seconds a user waits while the lecture's network
trains, side by side in one run.

The Keras rows run this script, one process each::

    import keras                   # "keras-first"; or keras_resnets first ("keras_resnets-first")
    import keras_resnets
    model = keras_resnets.mnist_resnet()
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)   # once, or once per chunk of steps

The clock runs from just before the first ``fit`` to just after the last: compilation, each
call's fixed cost and every step. The native rows are timed the same way, first step and
compilation included: the lecture's loop with what a strong PyTorch user adds (channels_last,
bf16 autocast on CPUs with bfloat16 in hardware, ``torch.compile``), and the plain JAX
program (benchmarks/native_jax.py). Ratios are to the best native row of the framework a row
is held against (PyTorch's for TensorFlow and PyTorch, plain JAX's for JAX), as in
resnet_benchmark.py. Synthetic data; SGD without momentum, batch 64.

Usage (from the repository root)::

    python benchmarks/user_script.py                    # writes its section of RESULTS.md
    python benchmarks/user_script.py --backends tensorflow --chunks 0,25 --steps 200
    python benchmarks/user_script.py --rounds 3         # each figure the median of 3 rounds
    python benchmarks/user_script.py --tiny --output -  # seconds: the smoke test
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import resnet_benchmark as rb  # noqa: E402  (benchmarks/ is not a package)

ORDERS = ("keras_resnets-first", "keras-first")
NATIVE = ("cl", "cl-bf16", "compile", "jax")  # names of resnet_benchmark.NATIVE
SIZES = {"steps": 300, "batch": 64}
TINY = {"steps": 6, "batch": 8}


def _data(spec):
    import numpy as np

    scale, n = spec["scale"], spec["sizes"]["steps"] * spec["sizes"]["batch"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, scale["size"], scale["size"], scale["channels"]), dtype=np.float32)
    return x, rng.integers(0, scale["classes"], n)


def run_keras(spec):
    """The script above; ``chunk`` steps per ``fit`` call (0: one call)."""
    start = time.perf_counter()
    if spec["order"] == "keras-first":  # keras_resnets then warns, and sets nothing
        import keras
        import keras_resnets
    else:
        import keras_resnets
        import keras
    imported = time.perf_counter() - start
    scale = spec["scale"]
    model = (keras_resnets.mnist_resnet(nb_blocks=scale.get("nb_blocks", 25))
             if scale["model"] == "mnist" else keras_resnets.cifar_resnet(scale.get("depth", 56)))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data(spec)
    batch, steps = spec["sizes"]["batch"], spec["sizes"]["steps"]
    chunk = spec["chunk"] or steps
    start = time.perf_counter()
    for first in range(0, steps, chunk):
        part = slice(first * batch, min(first + chunk, steps) * batch)
        model.fit(x[part], y[part], batch_size=batch, epochs=1, verbose=0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_s": steps * batch / seconds, "import_s": imported,
            "calls": -(-steps // chunk), "dtype_policy": model.dtype_policy.name}


def run_native_torch(spec):
    import torch
    import torch.nn as nn

    import native_torch

    options = rb.native_options(spec)
    scale = spec["scale"]
    torch.manual_seed(0)
    model = native_torch.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                               depth=scale.get("depth", 56)).to(memory_format=torch.channels_last)
    trained = torch.compile(model) if options["compile"] else model
    x, y = _data(spec)
    x = torch.from_numpy(x).permute(0, 3, 1, 2)  # NCHW sizes on channels-last memory
    y = torch.from_numpy(y)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    batch, steps = spec["sizes"]["batch"], spec["sizes"]["steps"]
    start = time.perf_counter()
    native_torch.train_steps(trained, optimizer, nn.CrossEntropyLoss(), x, y, batch, steps,
                             autocast=options["autocast"])
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_s": steps * batch / seconds}


def run_native_jax(spec):
    import jax

    import native_jax

    scale = spec["scale"]
    net = native_jax.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                           depth=scale.get("depth", 56))
    params, stats = net.init(jax.random.key(0))
    step = native_jax.sgd_step(net, learning_rate=0.01)
    velocity = native_jax.velocity(params, momentum=0.0)
    x, y = _data(spec)
    batch, steps = spec["sizes"]["batch"], spec["sizes"]["steps"]
    start = time.perf_counter()
    for i in range(steps):
        part = slice(i * batch, (i + 1) * batch)
        params, stats, velocity, loss = step(params, stats, velocity, x[part], y[part])
    loss.block_until_ready()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images_per_s": steps * batch / seconds}


def worker(spec):
    if spec["framework"] == "keras":
        return run_keras(spec)
    return run_native_jax(spec) if spec["backend"] == "jax" else run_native_torch(spec)


def plan(backends, orders, chunks, natives, scale, tiny, bf16=None):
    """The native rows that can run here (as resnet_benchmark.native_runs), then each
    backend, import order and chunk size."""
    sizes = TINY if tiny else SIZES
    common = {"scale_name": scale, "scale": rb._scale_spec(scale, tiny), "sizes": sizes}
    bf16 = rb.cpu_has_bf16() if bf16 is None else bf16
    runs = [{**run, "sizes": sizes}
            for run in rb.native_runs(scale, common["scale"], natives, bf16)]
    runs += [{"framework": "keras", "backend": backend, "order": order, "chunk": chunk,
              "setting": {"env": {}}, **common}
             for backend in backends for order in orders for chunk in chunks]
    return runs


def merge_rounds(results):
    """One row per run of the plan, in the plan's order, from the rows of several interleaved
    rounds: seconds and images/s the medians of the rounds, ``range`` the rounds' images/s
    min-max; a run that failed in every round keeps its error.

    Example:
    >>> rows = [{"framework": "native", "backend": "jax", "variant": "jax",
    ...          "result": {"seconds": 60 / r, "images_per_s": r}} for r in (3, 1, 2)]
    >>> row, = merge_rounds(rows)
    >>> row["result"]["images_per_s"], row["result"]["range"], row["rounds"]
    (2, (1, 3), 3)
    """
    def combine(done):
        rates = [r["result"]["images_per_s"] for r in done]
        return {**done[0]["result"], "images_per_s": statistics.median(rates),
                "range": (min(rates), max(rates)),
                "seconds": statistics.median(r["result"]["seconds"] for r in done)}

    return rb.merge_rows(results, label, combine)


def label(run):
    if run["framework"] == "native":
        return rb.native_label(run)
    calls = "one fit call" if not run["chunk"] else f"a fit call per {run['chunk']} steps"
    return f"{run['backend']} ours, {run['order']}, {calls}"


def table(results):
    best = {}
    for r in results:
        if r["framework"] == "native" and "result" in r:
            best[r["backend"]] = max(best.get(r["backend"], 0), r["result"]["images_per_s"])
    lines = ["| run | seconds | images/s | vs best native | fit calls | import s | computes in |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "result" not in r:
            lines.append(f"| {label(r)} | failed: {r['error'][:120]} | | | | | |")
            continue
        res = r["result"]
        framework = r["backend"] if r["framework"] == "native" else rb.NATIVE_OF[r["backend"]]
        precision = res.get("dtype_policy") or (
            "bfloat16 autocast" if rb.native_options(r)["autocast"] else "float32")
        failed, shown = rb.rate_cells(r, res["images_per_s"], res.get("range"))
        lines.append(f"| {label(r)}{failed} | {rb._fmt(res['seconds'])} | {shown} "
                     f"| {rb._ratio(res['images_per_s'], best.get(framework))} "
                     f"| {res.get('calls', '-')} | {rb._fmt(res.get('import_s'))} | {precision} |")
    return "\n".join(lines)


def report(results, meta):
    sizes = results[0]["sizes"] if results else SIZES
    return "\n".join([
        f"## A user's plain script, timed whole ({meta['scale']})", "",
        f"Run on {meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
        f"load average before: {meta['load_before']}, after: {meta['load_after']}; "
        f"{meta['wall_min']:.1f} min.",
        f"Command: `{meta['command']}`.",
        " ".join(filter(None, [(f"{sizes['steps']} SGD steps of batch {sizes['batch']}, from "
                                "the first step (compilation included) to the last."),
                               rb.rounds_note(meta.get("rounds", 1))])),
        "", table(results), ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(rb.BACKENDS))
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--chunks", default="0,25",
                        help="steps per fit call, 0 for one call (default: 0,25)")
    parser.add_argument("--native", default=",".join(NATIVE))
    parser.add_argument("--steps", type=int, help=f"steps in all (default {SIZES['steps']})")
    parser.add_argument("--scale", default="mnist", choices=("mnist", "cifar"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    rb.add_rounds_argument(parser)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file to write ('-': none)")
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    backends = [b for b in args.backends.split(",") if b]
    orders = [o for o in args.orders.split(",") if o]
    natives = [v for v in args.native.split(",") if v]
    for values, allowed, name in ((backends, rb.BACKENDS, "backends"), (orders, ORDERS, "orders"),
                                  (natives, NATIVE, "native")):
        for value in values:
            if value not in allowed:
                parser.error(f"--{name}: {value!r} is not one of {allowed}")
    runs = plan(backends, orders, [int(c) for c in args.chunks.split(",") if c], natives,
                args.scale, args.tiny)
    if args.steps:
        for run in runs:
            run["sizes"] = {**run["sizes"], "steps": args.steps}
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": rb.machine_description(), "load_before": rb._load(), "scale": args.scale,
            "rounds": args.rounds,
            "command": "python benchmarks/user_script.py " + " ".join(argv or sys.argv[1:])}
    start = time.perf_counter()
    results = rb.run_rounds(runs, args.rounds, args.timeout, __file__, label)
    meta.update(wall_min=(time.perf_counter() - start) / 60, load_after=rb._load())
    results = merge_rounds(results)
    text = report(results, meta)
    print("\n" + text)
    if args.output and args.output != "-":
        rb._write_section(args.output, text, tag=f"CPU user script {args.scale}")
    return 0 if all("result" in r and not r.get("failed_rounds") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
