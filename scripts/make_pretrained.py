"""Rebuild the pretrained lecture networks shipped in ``keras_resnets/_data/pretrained/``.

Trains the lecture's MNIST ResNet and its plain twin as runs of
`keras_resnets.training.train` on all the training digits of the embedded MNIST sample (the
digits held out by ``--validation-split`` and ``--seed`` they never see), with `RECIPE` and
`TRANSFORMS`: trained to their best, so that taking them apart shows what Veit et al. saw
(the first minute's recipe, one epoch on 4,096 digits, leaves a ResNet whose single-block
lesions cost several points). Then writes each run's config with its final metrics
(``<name>.json``) and its weights (``<name>.weights.h5``), and takes each network apart on
all its held-out digits (`keras_resnets.experiments.lesions.lesion_study`, in float32): the
``"lesions"`` of ``<name>.json``, which the explorer's Take apart page reads. The package
only reads these files; this script is for maintainers.

Example:
    KERAS_BACKEND=torch python scripts/make_pretrained.py   # as the shipped files were made
    KERAS_BACKEND=torch python scripts/make_pretrained.py --lesions-only   # measure again
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile

# The shipped networks train and are measured in float32 on every machine (not in bfloat16
# where the CPU has AMX or AVX-512 BF16): their numbers are the lecture's float32 ones.
os.environ["KERAS_RESNETS_DTYPE_POLICY"] = "float32"

from keras_resnets.design.presets import mnist_resnet  # noqa: E402
from keras_resnets.experiments.lesions import held_out, lesion_study  # noqa: E402
from keras_resnets.runs.pretrained import FOLDER, load_pretrained, pretrained_config  # noqa: E402
from keras_resnets.training import train  # noqa: E402
from keras_resnets.training.recipe import VALIDATION_SPLIT, Recipe  # noqa: E402

TWINS = {"mnist_resnet": True, "mnist_plain": False}  # the names of PRETRAINED -> residual
RECIPE = Recipe(optimizer="adam", learning_rate=2e-3, schedule="cosine", batch_size=64, epochs=12,
                weight_decay=5e-4)
"""With `TRANSFORMS`, seed 0 on PyTorch: the ResNet 98.5% of the 1,000 held-out digits (without
weight decay: 98.5% too; 6 epochs without: 98.3%), the plain twin 96.7% (6 epochs without weight
decay: 93.7%). Each shipped ``<name>.json`` has the recipe and the ``"final"`` metrics of the run
that made it."""
TRANSFORMS = "shift"  # digits moved by up to 2 pixels: MNIST's classic augmentation, no flips
LESIONS = {"samples": 10, "ks": range(1, 11), "gradient_digits": 16}
"""The lesion study: 10 random sets of k = 1 .. 10 deleted blocks, the gradient by path
length on 16 digits."""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", type=int, help="training digits (default: all)")
    parser.add_argument("--validation-split", type=float, default=VALIDATION_SPLIT)
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs)
    parser.add_argument("--transforms", default=TRANSFORMS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", nargs="+", choices=list(TWINS), default=list(TWINS))
    parser.add_argument("--lesions-only", action="store_true",
                        help="measure the shipped networks again, without training them")
    args = parser.parse_args(argv)
    if not args.lesions_only:
        make(args)
    for name in args.names:
        measure(name)


def make(args):
    """Trains the networks ``args.names`` and writes their weights and configs."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    runs_dir = tempfile.mkdtemp()
    for name in args.names:
        run = train(mnist_resnet(residual=TWINS[name]), "mnist_sample", RECIPE,
                    subset=args.subset, validation_split=args.validation_split,
                    transforms=args.transforms, seed=args.seed, epochs=args.epochs,
                    runs_dir=runs_dir, run_id=name, verbose=2)
        ship(run, name)
    shutil.rmtree(runs_dir)


def ship(run, name):
    """Writes the completed run ``run``'s weights and config, with its final metrics, as the
    shipped network ``name``."""
    if run.status["state"] != "completed":
        raise SystemExit(f"{name}: {run.status['message']}")
    run.load_model().save_weights(FOLDER / f"{name}.weights.h5")
    epochs = [e for e in run.metrics() if e.get("event") == "epoch"]
    final = {k: epochs[-1][k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
    seconds = round(sum(e["seconds"] for e in epochs))
    config = {**run.config, "final": final, "training_seconds": seconds}
    (FOLDER / f"{name}.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"{name}: validation accuracy {final['val_accuracy']:.4f} after {seconds} s")


def measure(name):
    """Takes the shipped network ``name`` apart on its held-out digits; its ``"lesions"``."""
    config = pretrained_config(name)
    x, y = held_out(config)
    study = lesion_study(load_pretrained(name), x, y, paths=TWINS[name], **LESIONS)
    (FOLDER / f"{name}.json").write_text(json.dumps({**config.raw, "lesions": study},
                                                    indent=1) + "\n")
    print(f"{name}: lesion study of {study['digits']} held-out digits written")


if __name__ == "__main__":
    main()
