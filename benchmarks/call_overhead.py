"""The fixed cost of each ``fit``, ``evaluate`` and ``predict`` call: ours against the same
network hand-written in Keras, side by side in one run.

Notebooks, the explorer and a script that trains in chunks call these many times, and each
call costs something besides its steps: the data adapter and its iterator, the callbacks,
Keras' bookkeeping, and on JAX the copies of the model's variables into and out of the
jitted state. For each backend (its own process, keras_resnets imported first, as a user's
script does) and each model (``ours``: ``keras_resnets.mnist_resnet()``; ``hand``:
benchmarks/keras_hand.py, built in the same dtype policy as ours), it times

- the first call of each kind (tracing and compilation included);
- then, interleaved, calls on 1 step and on ``K`` steps of the same batch size; a call's
  fixed cost is ``T(1) - (T(K) - T(1)) / (K - 1)`` and a step's time ``(T(K) - T(1)) /
  (K - 1)``, medians over the repeats.

``--profile DIR`` also runs each kind's 1-step calls under cProfile, writes
``DIR/<backend>-<model>-<kind>.prof`` (read them with ``python -m pstats``) and prints the
functions with the largest cumulative time.

Usage (from the repository root)::

    python benchmarks/call_overhead.py                    # writes its section of RESULTS.md
    python benchmarks/call_overhead.py --backends torch --models ours --profile /tmp/calls
    python benchmarks/call_overhead.py --tiny --output -  # seconds: the smoke test
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

KINDS = ("fit", "evaluate", "predict")
SIZES = {"batch": 64, "steps": 5, "repeats": 5, "profile_calls": 10}
TINY = {"batch": 8, "steps": 3, "repeats": 2, "profile_calls": 2}


def _calls(model, x, y, batch):
    """The three calls, each on ``n`` steps of ``batch`` examples."""
    def fit(n):
        model.fit(x[:n * batch], y[:n * batch], batch_size=batch, epochs=1, verbose=0)

    def evaluate(n):
        model.evaluate(x[:n * batch], y[:n * batch], batch_size=batch, verbose=0)

    def predict(n):
        model.predict(x[:n * batch], batch_size=batch, verbose=0)

    return {"fit": fit, "evaluate": evaluate, "predict": predict}


def _seconds(call, n):
    start = time.perf_counter()
    call(n)
    return time.perf_counter() - start


def fixed_and_step(one, many, steps):
    """A call's fixed cost and a step's time from the times of calls on 1 and ``steps``
    steps: the line through the two points, at 0 steps and its slope.

    >>> fixed_and_step(0.5, 1.3, 5)
    (0.3, 0.2)
    """
    step = (many - one) / (steps - 1)
    return round(one - step, 12), round(step, 12)


def build(spec):
    """The spec's compiled model; ``hand`` in the dtype policy ours computes in."""
    import keras

    from keras_resnets.runtime.precision import dtype_policy_scope

    with dtype_policy_scope(None):  # keras_resnets' default policy (bfloat16 on AMX CPUs)
        model = rb.build_keras_model(spec["model"], spec["scale"], "channels_last")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def run_worker(spec):
    """Times the calls of one model on this process' backend (see the module's docstring)."""
    import numpy as np

    model = build(spec)
    scale, sizes = spec["scale"], spec["sizes"]
    batch, steps = sizes["batch"], sizes["steps"]
    rng = np.random.default_rng(0)
    shape = (scale["size"], scale["size"], scale["channels"])
    x = rng.standard_normal((steps * batch, *shape), dtype=np.float32)
    y = rng.integers(0, scale["classes"], steps * batch)
    calls = _calls(model, x, y, batch)
    result = {kind: {"first_s": _seconds(call, 1)} for kind, call in calls.items()}
    samples = {kind: [] for kind in KINDS}
    for _ in range(sizes["repeats"]):
        for kind, call in calls.items():
            one, many = _seconds(call, 1), _seconds(call, steps)
            samples[kind].append((one, *fixed_and_step(one, many, steps)))
    for kind in KINDS:
        one, fixed, step = (statistics.median(column) for column in zip(*samples[kind]))
        result[kind].update(call_1_s=one, fixed_s=fixed, step_s=step)
    if spec.get("profile"):
        _profile(spec, calls, sizes["profile_calls"])
    result["dtype_policy"] = model.dtype_policy.name
    return result


def _profile(spec, calls, count):
    import cProfile

    os.makedirs(spec["profile"], exist_ok=True)
    for kind, call in calls.items():
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(count):
            call(1)
        profiler.disable()
        profiler.dump_stats(_profile_path(spec, kind))


def _profile_path(spec, kind):
    return os.path.join(spec["profile"], f"{spec['backend']}-{spec['model']}-{kind}.prof")


def plan(backends, models, scale, tiny, profile=None, repeats=None):
    sizes = dict(TINY if tiny else SIZES)
    sizes["repeats"] = repeats or sizes["repeats"]
    spec_scale = rb._scale_spec(scale, tiny)
    return [{"framework": "keras", "backend": backend, "model": model, "scale_name": scale,
             "scale": spec_scale, "sizes": sizes, "profile": profile}
            for backend in backends for model in models]


def _ms(seconds):
    return rb._fmt(None if seconds is None else 1000 * seconds)


def table(results):
    """One row per backend, model and kind of call; ``fixed / hand``: ours' fixed cost over
    the hand-written model's."""
    hand = {(r["backend"], kind): r["result"][kind]["fixed_s"] for r in results
            if r["model"] == "hand" and "result" in r for kind in KINDS}
    lines = ["| run | call | first call s | call of 1 step ms | fixed cost ms | step ms "
             "| fixed cost, ours / hand | computes in |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        name = f"{r['backend']} {r['model']}"
        if "result" not in r:
            lines.append(f"| {name} | failed: {r['error'][:120]} | | | | | | |")
            continue
        for kind in KINDS:
            res = r["result"][kind]
            versus = hand.get((r["backend"], kind)) if r["model"] == "ours" else None
            ratio = "-" if not versus or versus <= 0 else f"{res['fixed_s'] / versus:.2f}"
            lines.append(f"| {name} | {kind} | {rb._fmt(res['first_s'], 2)} "
                         f"| {_ms(res['call_1_s'])} | {_ms(res['fixed_s'])} "
                         f"| {_ms(res['step_s'])} | {ratio} | {r['result']['dtype_policy']} |")
    return "\n".join(lines)


def report(results, meta):
    sizes = results[0]["sizes"] if results else SIZES
    return "\n".join([
        f"## The fixed cost of a fit, evaluate and predict call ({meta['scale']})", "",
        f"Run on {meta['date']}; {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
        f"load average before: {meta['load_before']}, after: {meta['load_after']}; "
        f"{meta['wall_min']:.1f} min.",
        f"Command: `{meta['command']}`.",
        f"Batch {sizes['batch']}; calls on 1 and {sizes['steps']} steps, interleaved, "
        f"{sizes['repeats']} times; medians. The hand-written model computes in ours' policy.",
        "", table(results), ""])


def _print_profiles(results, top=25):
    import pstats

    for r in results:
        for kind in KINDS:
            path = _profile_path(r, kind)
            if os.path.exists(path):
                print(f"\n=== {r['backend']} {r['model']} {kind}: {path}")
                pstats.Stats(path).sort_stats("cumulative").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default=",".join(rb.BACKENDS))
    parser.add_argument("--models", default="ours,hand")
    parser.add_argument("--scale", default="mnist", choices=("mnist", "cifar"))
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument("--repeats", type=int, help=f"pairs of calls timed (default: "
                                                    f"{SIZES['repeats']})")
    parser.add_argument("--profile", help="a folder for cProfile files of the 1-step calls")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file to write ('-': none)")
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        import keras_resnets  # noqa: F401  (before Keras, as a user's script imports it)

        print("RESULT " + json.dumps(run_worker(spec)), flush=True)
        return 0
    backends = [b for b in args.backends.split(",") if b]
    models = [m for m in args.models.split(",") if m]
    for b in backends:
        if b not in rb.BACKENDS:
            parser.error(f"--backends: {b!r} is not one of {rb.BACKENDS}")
    for m in models:
        if m not in ("ours", "hand"):
            parser.error(f"--models: {m!r} is not 'ours' or 'hand'")
    profile = os.path.abspath(args.profile) if args.profile else None
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": rb.machine_description(), "load_before": rb._load(), "scale": args.scale,
            "command": "python benchmarks/call_overhead.py " + " ".join(argv or sys.argv[1:])}
    start, results = time.perf_counter(), []
    for run in plan(backends, models, args.scale, args.tiny, profile, args.repeats):
        print(f"{run['backend']} {run['model']} ...", end=" ", flush=True)
        results.append(rb.run_one(run, args.timeout, script=__file__))
        print("failed: " + results[-1]["error"] if "error" in results[-1]
              else f"{results[-1]['wall_s']:.0f} s", flush=True)
    meta.update(wall_min=(time.perf_counter() - start) / 60, load_after=rb._load())
    text = report(results, meta)
    print("\n" + text)
    if profile:
        _print_profiles(results)
    if args.output and args.output != "-":
        rb._write_section(args.output, text, tag=f"CPU call overhead {args.scale}")
    return 0 if all("result" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
