"""Rebuild the pretrained lecture networks shipped in ``keras_resnets/_data/pretrained/``.

Trains the lecture's MNIST ResNet and its plain twin as runs of
`keras_resnets.training.train` on the embedded MNIST sample (by default the first minute's
run, `keras_resnets.training.recipe`: the default recipe on `FIRST_MINUTE_SUBSET` digits; digits held
out by ``--validation-split`` and ``--seed``, which the networks never see), then writes each
run's config with its final metrics (``<name>.json``) and its weights
(``<name>.weights.h5``). The package only reads these files; this script is for maintainers.

Example:
    KERAS_BACKEND=torch python scripts/make_pretrained.py   # as the shipped files were made
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile

from keras_resnets.design.presets import mnist_resnet
from keras_resnets.runs.pretrained import FOLDER
from keras_resnets.training import train
from keras_resnets.training.recipe import FIRST_MINUTE_SUBSET, VALIDATION_SPLIT, Recipe

TWINS = {"mnist_resnet": True, "mnist_plain": False}  # the names of PRETRAINED -> residual


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", type=int, default=FIRST_MINUTE_SUBSET, help="training digits")
    parser.add_argument("--validation-split", type=float, default=VALIDATION_SPLIT)
    parser.add_argument("--epochs", type=int, default=Recipe().epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--names", nargs="+", choices=list(TWINS), default=list(TWINS))
    args = parser.parse_args(argv)
    FOLDER.mkdir(parents=True, exist_ok=True)
    runs_dir = tempfile.mkdtemp()
    for name in args.names:
        residual = TWINS[name]
        run = train(mnist_resnet(residual=residual), "mnist_sample", subset=args.subset,
                    validation_split=args.validation_split, seed=args.seed, epochs=args.epochs,
                    runs_dir=runs_dir, run_id=name, verbose=2)
        if run.status["state"] != "completed":
            raise SystemExit(f"{name}: {run.status['message']}")
        model = run.load_model()
        model.save_weights(FOLDER / f"{name}.weights.h5")
        final = [e for e in run.metrics() if e.get("event") == "epoch"][-1]
        config = {**run.config, "final": {k: final[k] for k in ("loss", "accuracy", "val_loss",
                                                                  "val_accuracy")}}
        (FOLDER / f"{name}.json").write_text(json.dumps(config, indent=1) + "\n")
        print(f"{name}: validation accuracy {final['val_accuracy']:.4f}")
    shutil.rmtree(runs_dir)


if __name__ == "__main__":
    main()
