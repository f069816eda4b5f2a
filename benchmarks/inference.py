"""Inference at batch 1, 64 and 500: ours against the lecture's model in evaluation mode, side
by side in one run.

Rows, each in its own process:

- ``native PyTorch (lecture code), no_grad``: the lecture's model in ``eval()`` mode under
  ``torch.no_grad()``, one forward pass per batch (the reference of the "vs ref" ratios);
- ``... inference_mode``: the same under ``torch.inference_mode()``;
- ``native PyTorch + channels_last + bf16 autocast``: what a strong PyTorch user writes on a
  CPU with bfloat16 in hardware (only there), under ``inference_mode``;
- ``plain JAX``: benchmarks/native_jax.py's jitted forward pass in evaluation mode;
- ``<backend> ours|hand, predict``: ``model.predict(x, batch_size=b)``, one call over all
  the images (its fixed cost once);
- ``<backend> ours|hand, predict_on_batch``: ``model.predict_on_batch`` per batch, Keras'
  compiled forward pass without ``predict``'s data pipeline (what a server or a loop over
  single images calls);
- ``<backend> ours|hand, call``: ``model(x, training=False)`` per batch, as
  ``keras_resnets.experiments`` and the explorer call a model (eager on every backend).

``hand`` is benchmarks/keras_hand.py's model in the dtype policy ours computes in, so ours /
hand is what our layers change. For each batch size ``b`` a row gives images/s over
``IMAGES[b]`` images (median of the repeats after a warm-up pass that compiles) and the
milliseconds of one call on one batch; the ratios are to the lecture's model under
``no_grad`` and under ``inference_mode``, and to the best native row of the framework the row
is held against (PyTorch's for TensorFlow and PyTorch, plain JAX's for JAX).

Usage (from the repository root)::

    python benchmarks/inference.py                     # writes its section of RESULTS.md
    python benchmarks/inference.py --rounds 3          # each figure the median of 3 rounds
    python benchmarks/inference.py --backends torch --modes predict
    python benchmarks/inference.py --tiny --output -   # seconds: the smoke test
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

BATCHES = (1, 64, 500)
IMAGES = {1: 32, 64: 512, 500: 1500}  # images of a timed pass at each batch size
REPEATS = 5
TINY = {"batches": (1, 4), "images": {1: 4, 4: 8}, "repeats": 2}
MODES = ("predict", "predict_on_batch", "call")
# Native rows: the lecture's model as it is, or with what a strong PyTorch user adds.
NATIVE = {
    "no_grad": {"framework": "torch", "label": "native PyTorch (lecture code), no_grad"},
    "inference_mode": {"framework": "torch", "inference_mode": True,
                       "label": "native PyTorch (lecture code), inference_mode"},
    "cl-bf16": {"framework": "torch", "inference_mode": True, "channels_last": True,
                "autocast": True, "bf16": True,
                "label": "native PyTorch + channels_last + bf16 autocast, inference_mode"},
    "jax": {"framework": "jax", "label": "plain JAX"},
}


def _timed(run_batches, images, repeats):
    """``run_batches()`` once to warm up, then ``repeats`` times: images/s, the median."""
    run_batches()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_batches()
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def _latency(call_one, repeats):
    """Seconds of one call on one batch, the median of ``repeats`` after a warm-up."""
    call_one()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call_one()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(forward, make_input, sizes):
    """Per batch size: images/s over its pass and the seconds of one call; ``forward(x, b)``
    runs one pass over ``x`` at batch ``b``, ``make_input(n)`` gives ``n`` images."""
    result = {}
    for b in sizes["batches"]:
        n = sizes["images"][str(b)]
        x, one = make_input(n), make_input(b)
        result[str(b)] = {
            "images_per_s": _timed(lambda: forward(x, b), n, sizes["repeats"]),
            "call_s": _latency(lambda: forward(one, b), sizes["repeats"]),
        }
    return result


def run_native_torch(spec):
    import torch

    import native_torch

    options = NATIVE[spec["variant"]]
    scale = spec["scale"]
    torch.manual_seed(0)
    model = native_torch.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                               depth=scale.get("depth", 56)).eval()
    memory_format = torch.channels_last if options.get("channels_last") else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    mode = torch.inference_mode if options.get("inference_mode") else torch.no_grad
    shape = (scale["channels"], scale["size"], scale["size"])

    def forward(x, b):
        with mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                    enabled=options.get("autocast", False)):
            for i in range(0, len(x), b):
                model(x[i:i + b]).float().numpy()

    def make_input(n):
        return torch.randn(n, *shape).contiguous(memory_format=memory_format)

    return measure(forward, make_input, spec["sizes"])


def run_native_jax(spec):
    import jax
    import numpy as np

    import native_jax

    scale = spec["scale"]
    net = native_jax.build(scale["model"], nb_blocks=scale.get("nb_blocks", 25),
                           depth=scale.get("depth", 56))
    params, stats = net.init(jax.random.key(0))
    predict = native_jax.predictor(net)
    rng = np.random.default_rng(0)
    shape = (scale["size"], scale["size"], scale["channels"])

    def forward(x, b):
        for i in range(0, len(x), b):
            np.asarray(predict(params, stats, x[i:i + b]))

    return measure(forward, lambda n: rng.standard_normal((n, *shape), dtype=np.float32),
                   spec["sizes"])


def run_keras(spec):
    import keras
    import numpy as np

    from keras_resnets.runtime.precision import dtype_policy_scope

    scale = spec["scale"]
    with dtype_policy_scope(None):  # keras_resnets' default policy, for ours and hand alike
        model = rb.build_keras_model(spec["model"], scale, "channels_last")
    rng = np.random.default_rng(0)
    shape = (scale["size"], scale["size"], scale["channels"])

    def predict(x, b):
        model.predict(x, batch_size=b, verbose=0)

    def predict_on_batch(x, b):
        for i in range(0, len(x), b):
            model.predict_on_batch(x[i:i + b])

    def call(x, b):
        for i in range(0, len(x), b):
            keras.ops.convert_to_numpy(model(x[i:i + b], training=False))

    forward = {"predict": predict, "predict_on_batch": predict_on_batch, "call": call}[spec["mode"]]
    result = measure(forward, lambda n: rng.standard_normal((n, *shape), dtype=np.float32),
                     spec["sizes"])
    return {**result, "dtype_policy": model.dtype_policy.name}


def plan(backends, models, modes, natives, scale, tiny, bf16=None):
    """The runs: the native rows that can run here (bfloat16 only on CPUs with it), then each
    Keras backend, model and mode."""
    bf16 = rb.cpu_has_bf16() if bf16 is None else bf16
    sizes = ({"batches": TINY["batches"], "images": TINY["images"], "repeats": TINY["repeats"]}
             if tiny else {"batches": BATCHES, "images": IMAGES, "repeats": REPEATS})
    sizes = {**sizes, "images": {str(b): n for b, n in sizes["images"].items()}}
    common = {"scale_name": scale, "scale": rb._scale_spec(scale, tiny), "sizes": sizes}
    runs = [{"framework": "native", "backend": NATIVE[v]["framework"], "variant": v, **common}
            for v in natives if bf16 or not NATIVE[v].get("bf16")]
    runs += [{"framework": "keras", "backend": backend, "model": model, "mode": mode,
              "setting": {"env": {}}, **common}
             for backend in backends for model in models for mode in modes]
    return runs


def merge_rounds(results):
    """One row per run of the plan, in the plan's order, from the rows of several interleaved
    rounds: at each batch size images/s and one call's seconds are the medians of the rounds,
    ``range`` the rounds' images/s min-max; a run that failed in every round keeps its error.

    Example:
    >>> rows = [{"framework": "native", "variant": "no_grad", "sizes": {"batches": (1,)},
    ...          "result": {"1": {"images_per_s": r, "call_s": 1 / r}}} for r in (3, 1, 2)]
    >>> row, = merge_rounds(rows)
    >>> row["result"]["1"]["images_per_s"], row["result"]["1"]["range"], row["rounds"]
    (2, (1, 3), 3)
    """
    def combine(done):
        result = dict(done[0]["result"])
        for b in done[0]["sizes"]["batches"]:
            rates = [r["result"][str(b)]["images_per_s"] for r in done]
            result[str(b)] = {"images_per_s": statistics.median(rates), "range": (min(rates), max(rates)),
                              "call_s": statistics.median(r["result"][str(b)]["call_s"] for r in done)}
        return result

    return rb.merge_rows(results, label, combine)


def label(run):
    if run["framework"] == "native":
        return NATIVE[run["variant"]]["label"]
    return f"{run['backend']} {run['model']}, {run['mode']}"


def _precision(run):
    if run["framework"] == "keras":
        return run["result"]["dtype_policy"]
    return "bfloat16 autocast" if NATIVE[run["variant"]].get("autocast") else "float32"


def table(results, b):
    """The rows at batch size ``b``: images/s, ratios, and one call's milliseconds."""
    def rate(r):
        return r["result"][str(b)]["images_per_s"] if "result" in r else None

    native = {r["variant"]: rate(r) for r in results if r["framework"] == "native"}
    best = {}
    for r in results:
        if r["framework"] == "native" and rate(r):
            best[r["backend"]] = max(best.get(r["backend"], 0), rate(r))
    lines = [f"Batch {b}:", "",
             "| run | images/s | vs lecture, no_grad | vs lecture, inference_mode "
             "| vs best native | one call ms | computes in |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        if "result" not in r:
            lines.append(f"| {label(r)} | failed: {r['error'][:120]} | | | | | |")
            continue
        value = rate(r)
        framework = r["backend"] if r["framework"] == "native" else rb.NATIVE_OF[r["backend"]]
        failed, shown = rb.rate_cells(r, value, r["result"][str(b)].get("range"))
        lines.append(
            f"| {label(r)}{failed} | {shown} | {rb._ratio(value, native.get('no_grad'))} "
            f"| {rb._ratio(value, native.get('inference_mode'))} "
            f"| {rb._ratio(value, best.get(framework))} "
            f"| {rb._fmt(1000 * r['result'][str(b)]['call_s'], 2)} | {_precision(r)} |")
    return "\n".join(lines)


def report(results, meta):
    sizes = results[0]["sizes"] if results else {}
    lines = [f"## Inference by batch size ({meta['scale']})", "",
             f"Run on {meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} "
             f"cores; load average before: {meta['load_before']}, after: "
             f"{meta['load_after']}; {meta['wall_min']:.1f} min.",
             f"Command: `{meta['command']}`.",
             "Images per pass: " + ", ".join(f"{n} at batch {b}" for b, n in
                                              sizes.get("images", {}).items())
             + f"; medians of {sizes.get('repeats')} passes after a warm-up pass. "
             "One call: the median time of a call on one batch.", ""]
    if meta.get("rounds", 1) > 1:
        lines[-1:-1] = [rb.rounds_note(meta["rounds"])]
    for b in sizes.get("batches", ()):
        lines += [table(results, b), ""]
    return "\n".join(lines)


def worker(spec):
    if spec["framework"] == "native":
        return run_native_jax(spec) if spec["backend"] == "jax" else run_native_torch(spec)
    import keras_resnets  # noqa: F401  (before Keras, as a user's script imports it)

    return run_keras(spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(rb.BACKENDS))
    parser.add_argument("--models", default="ours,hand")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--native", default=",".join(NATIVE),
                        help=f"native rows, of {', '.join(NATIVE)} ('' for none)")
    parser.add_argument("--scale", default="mnist", choices=("mnist", "cifar"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    rb.add_rounds_argument(parser)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file to write ('-': none)")
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    choices = {"backends": rb.BACKENDS, "models": ("ours", "hand"), "modes": MODES,
               "native": tuple(NATIVE)}
    chosen = {}
    for name, allowed in choices.items():
        chosen[name] = [v for v in getattr(args, name).split(",") if v]
        for value in chosen[name]:
            if value not in allowed:
                parser.error(f"--{name}: {value!r} is not one of {allowed}")
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": rb.machine_description(), "load_before": rb._load(), "scale": args.scale,
            "rounds": args.rounds,
            "command": "python benchmarks/inference.py " + " ".join(argv or sys.argv[1:])}
    runs = plan(chosen["backends"], chosen["models"], chosen["modes"], chosen["native"],
                args.scale, args.tiny)
    start = time.perf_counter()
    results = rb.run_rounds(runs, args.rounds, args.timeout, __file__, label)
    meta.update(wall_min=(time.perf_counter() - start) / 60, load_after=rb._load())
    results = merge_rounds(results)
    text = report(results, meta)
    print("\n" + text)
    if args.output and args.output != "-":
        rb._write_section(args.output, text, tag=f"CPU inference {args.scale}")
    return 0 if all("result" in r and not r.get("failed_rounds") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
