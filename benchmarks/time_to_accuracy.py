"""Time to accuracy: seconds of training until the lecture's network reaches 98% held-out
accuracy on the embedded real digits, side by side in one run.

Every framework trains the lecture's MNIST ResNet (25 ResBlocks, 16 channels) from scratch
with one recipe, a `keras_resnets.Recipe` (by default Adam at 1e-3 for 10 epochs of batches of
64, divided by 10 at 50% and 75% of the steps; the same shuffled order for all) on a fixed split
of the embedded MNIST sample (8,000 digits to train on, 2,000 held out), and measures its
held-out accuracy every ``--eval-every`` steps, until the target or the end of the recipe.
The clock runs while it trains (first steps and compilation included: what a user waits for),
not while it evaluates. The frameworks: the lecture's PyTorch code and loop (``native``,
benchmarks/native_torch.py) and ``keras_resnets.mnist_resnet()`` trained by one ``model.fit``
call (a callback evaluates it) on TensorFlow, JAX and PyTorch, each run in its own process that
imports keras_resnets first, as a user's script does. Runs are interleaved (seed by seed), and
the table gives the median over the seeds.

Usage (from the repository root)::

    python benchmarks/time_to_accuracy.py                       # 3 seeds, writes RESULTS.md
    python benchmarks/time_to_accuracy.py --seeds 0,1,2,3,4 --frameworks native,torch
    python benchmarks/time_to_accuracy.py --schedule constant --epochs 12   # a constant rate
    python benchmarks/time_to_accuracy.py --tiny --output -     # seconds: the smoke test
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for path in (HERE, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

FRAMEWORKS = ("native", "tensorflow", "jax", "torch")
SPLIT = {"train": 8000, "held_out": 2000}
RECIPE = {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 64, "epochs": 10,
          "schedule": "step"}
# Seconds: every code path runs; the target is reached at the first evaluation.
TINY = {"nb_blocks": 1, "nb_channels": 4, "train": 256, "held_out": 128, "target": 0.0,
        "eval_every": 2, "recipe": {**RECIPE, "epochs": 1}}


def _recipe(spec):
    """The run's `keras_resnets.Recipe`, and its steps per epoch (whole batches only)."""
    from keras_resnets.training.recipe import Recipe

    recipe = Recipe.from_dict(spec["recipe"])
    return recipe, spec["train"] // recipe.batch_size


def _split(spec):
    """The fixed split (one permutation with seed 0) of the embedded sample, normalised."""
    import numpy as np

    from keras_resnets.data.datasets import load_arrays, normalize

    (x, y), _, _ = load_arrays("mnist_sample")
    order = np.random.default_rng(0).permutation(len(x))
    train, held = order[:spec["train"]], order[spec["train"]:spec["train"] + spec["held_out"]]
    x = normalize(x, data_format="channels_last")
    return (x[train], y[train].astype("int64")), (x[held], y[held].astype("int64"))


def _order(spec, n):
    """The examples of all the recipe's steps, in order (each epoch a permutation of ``n``): the
    same for every framework, given the seed."""
    import numpy as np

    recipe, steps = _recipe(spec)
    rng = np.random.default_rng(spec["seed"])
    return np.concatenate([rng.permutation(n)[:steps * recipe.batch_size]
                           for _ in range(recipe.epochs)])


class _Race:
    """The clock and the held-out accuracy curve of one run: the clock starts when the race
    is made and runs while the network trains, not while it is evaluated."""

    def __init__(self, target):
        self.target, self.curve, self.seconds = target, [], 0.0
        self.resumed = time.perf_counter()

    def evaluate(self, steps, accuracy):
        """Notes ``accuracy()`` after ``steps`` with the clock stopped; whether it is on target."""
        self.seconds += time.perf_counter() - self.resumed
        self.curve.append({"steps": steps, "seconds": self.seconds, "accuracy": accuracy()})
        self.resumed = time.perf_counter()
        return self.curve[-1]["accuracy"] >= self.target


def run_native(spec):
    """The lecture's network and training loop in plain PyTorch, the recipe's learning rate
    divided by 10 at its decay steps by PyTorch's own `MultiStepLR`."""
    import native_torch
    import torch

    (x, y), (xh, yh) = _split(spec)
    x, xh = (torch.from_numpy(a.transpose(0, 3, 1, 2).copy()) for a in (x, xh))
    y, yh = torch.from_numpy(y), torch.from_numpy(yh)
    recipe, steps_per_epoch = _recipe(spec)
    torch.manual_seed(spec["seed"])
    model = native_torch.ResNet(spec["nb_channels"], 3, spec["nb_blocks"])
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=recipe.decay_steps(steps_per_epoch), gamma=0.1)
    criterion = torch.nn.CrossEntropyLoss()

    def accuracy():
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(b).argmax(1) for b in xh.split(500)])
        model.train()
        return float((predicted == yh).float().mean())

    race, order = _Race(spec["target"]), torch.from_numpy(_order(spec, len(x)))
    chunk = spec["eval_every"] * recipe.batch_size
    for start in range(0, len(order), chunk):
        idx = order[start:start + chunk]
        native_torch.train_steps(model, optimizer, criterion, x[idx], y[idx], recipe.batch_size,
                                 len(idx) // recipe.batch_size, on_step=lambda _: scheduler.step())
        if race.evaluate((start + len(idx)) // recipe.batch_size, accuracy):
            break
    return {"curve": race.curve, "dtype_policy": "float32"}


def run_keras(spec):
    """``keras_resnets.mnist_resnet()`` trained by one ``model.fit`` call over the recipe's
    epochs in the race's order, as a user's script trains it (in its default dtype policy); a
    callback evaluates it."""
    import keras

    import keras_resnets  # first: its fast CPU settings
    from keras_resnets.training import make_schedule

    (x, y), (xh, yh) = _split(spec)
    recipe, steps_per_epoch = _recipe(spec)
    keras.utils.set_random_seed(spec["seed"])
    race = _Race(spec["target"])
    model = keras_resnets.mnist_resnet(nb_channels=spec["nb_channels"], nb_blocks=spec["nb_blocks"])
    model.compile(optimizer=keras.optimizers.Adam(make_schedule(recipe, steps_per_epoch)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Evaluate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if (batch + 1) % spec["eval_every"]:
                return
            keras.ops.convert_to_numpy(logs["loss"])  # JAX returns before the step has run
            trained = self.model  # on JAX, this puts the trained state back into the model
            trained.stop_training = race.evaluate(batch + 1, lambda: float(
                (trained.predict(xh, batch_size=500, verbose=0).argmax(1) == yh).mean()))

    order = _order(spec, len(x))
    model.fit(x[order], y[order], batch_size=recipe.batch_size, epochs=1, shuffle=False,
              callbacks=[Evaluate()], verbose=0)
    return {"curve": race.curve, "dtype_policy": model.dtype_policy.name}


def run_one(spec, timeout):
    """One run in its own process; the spec with its ``curve`` and ``dtype_policy`` (or
    ``error``)."""
    from keras_resnets.runtime.environment import user_environment

    env = {**user_environment(), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    if spec["framework"] != "native":
        env["KERAS_BACKEND"] = spec["framework"]
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**spec, **json.loads(line[len("RESULT "):])}
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return {**spec, "error": f"exit code {proc.returncode}: {tail}"}


def reached(run):
    """``(seconds, steps)`` at the first evaluation at or above the target, or None."""
    hit = next((p for p in run.get("curve", []) if p["accuracy"] >= run["target"]), None)
    return None if hit is None else (hit["seconds"], hit["steps"])


def table(results, frameworks):
    """Markdown: per framework (and the dtype policy it trained in), the median seconds and
    steps to the target over the seeds, and the native reference's median seconds divided by
    it (above 1: sooner)."""
    hits = {name: [h for h in map(reached, (r for r in results if r["framework"] == name)) if h]
            for name in frameworks}
    median = {name: statistics.median(h[0] for h in hits[name]) if hits[name] else None
              for name in frameworks}
    reference = median.get("native")
    lines = ["| run | seconds to target, median (min-max) | vs native | steps, median "
             "| reached | best held-out accuracy |", "|---|---|---|---|---|---|"]
    for name in frameworks:
        runs = [r for r in results if r["framework"] == name]
        best = max((p["accuracy"] for r in runs for p in r.get("curve", [])), default=None)
        times = [h[0] for h in hits[name]]
        policies = sorted({r["dtype_policy"] for r in runs if "dtype_policy" in r})
        lines.append(" | ".join([
            "| native PyTorch (lecture code)" if name == "native" else
            f"| {name} ours" + "".join(f" ({p})" for p in policies if p != "float32"),
            f"{median[name]:.1f} ({min(times):.1f}-{max(times):.1f})" if times else "-",
            f"{reference / median[name]:.2f}x" if reference and median[name] else "-",
            f"{statistics.median(h[1] for h in hits[name])}" if times else "-",
            f"{len(times)}/{len(runs)}", "-" if best is None else f"{best:.4f}"]) + " |")
    return "\n".join(lines)


def _describe(recipe):
    """The recipe in words."""
    from keras_resnets.training.recipe import STEP_BOUNDARIES

    rate = f"{recipe['optimizer'].capitalize()} {recipe['learning_rate']:g}"
    if recipe["schedule"] == "step":
        at = " and ".join(f"{f:.0%}" for f in STEP_BOUNDARIES)
        rate += f" divided by 10 at {at} of the steps"
    epochs = recipe["epochs"]
    return f"{rate}, batch {recipe['batch_size']}, {epochs} epoch{'s' * (epochs != 1)}"


def _parse(argv):
    from keras_resnets.training.choices import SCHEDULES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--eval-every", type=int, default=25, help="steps between evaluations")
    parser.add_argument("--epochs", type=int, default=RECIPE["epochs"],
                        help="the recipe's epochs: its schedule's length, the most a run trains")
    parser.add_argument("--schedule", default=RECIPE["schedule"], choices=SCHEDULES)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the smoke test")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"),
                        help="Markdown file to write ('-': none)")
    parser.add_argument("--json", help="also write the raw results to this JSON file")
    args = parser.parse_args(argv)
    for name in args.frameworks.split(","):
        if name not in FRAMEWORKS:
            parser.error(f"--frameworks: {name!r} is not one of {FRAMEWORKS}")
    return args


def main(argv=None):
    args = _parse(argv)
    if args.worker:
        spec = json.loads(args.worker)
        result = (run_native if spec["framework"] == "native" else run_keras)(spec)
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    import resnet_benchmark as rb

    frameworks = args.frameworks.split(",")
    base = {"nb_blocks": 25, "nb_channels": 16, **SPLIT, "target": args.target,
            "eval_every": args.eval_every,
            "recipe": {**RECIPE, "epochs": args.epochs, "schedule": args.schedule}}
    base.update(TINY if args.tiny else {})
    load_before, start, results = rb._load(), time.perf_counter(), []
    for seed in (int(s) for s in args.seeds.split(",")):
        for name in frameworks:
            print(f"seed {seed}: {name} ...", end=" ", flush=True)
            results.append(run_one({**base, "framework": name, "seed": seed}, args.timeout))
            hit = reached(results[-1])
            print(results[-1].get("error") or ("not reached" if hit is None else
                                               f"{hit[0]:.1f} s, {hit[1]} steps"), flush=True)
    machine = rb.machine_description()
    text = "\n".join([
        f"## Time to {100 * base['target']:g}% held-out accuracy, MNIST ResNet"
        f"{' (tiny smoke run)' if args.tiny else ''}", "",
        f"Run on {datetime.datetime.now():%Y-%m-%d %H:%M}; {machine['cpu']}, {machine['cores']} "
        f"cores; load average before: {load_before}, after: {rb._load()}; "
        f"{(time.perf_counter() - start) / 60:.1f} min.",
        f"Command: `python benchmarks/time_to_accuracy.py {' '.join(argv or sys.argv[1:])}`.",
        f"Recipe: {_describe(base['recipe'])}; {base['train']} digits to train on, "
        f"{base['held_out']} held out; an evaluation every {base['eval_every']} steps; seeds {args.seeds}.", "",
        table(results, frameworks), ""])
    print("\n" + text)
    if args.output != "-":
        rb._write_section(args.output, text, tag="CPU time to accuracy")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(results, file, indent=1)
    return 0 if all("curve" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
