"""Writes one folder of tests/data/legacy: a run store and `.keras` models as a version saved them.

Later versions must keep loading them (tests/test_legacy.py). Run it with the library of the
commit to record, never with the current code: the point is what an older version wrote::

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old KERAS_BACKEND=tensorflow KERAS_RESNETS_DTYPE_POLICY=float32 \\
        python tests/data/legacy/make.py tests/data/legacy/<commit>

It uses only the public API that every version since f26a99c has (f26a99c's own script is kept
in its folder). The folder's VERSION names the commit.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import keras_resnets as kr
from keras_resnets import Architecture, Stage, Stem, presets
from keras_resnets.training import train

MODELS = {
    "mnist_resnet_2.keras": presets.mnist_resnet(nb_blocks=2, nb_channels=4),
    "cifar8_preact_sd_a.keras": presets.cifar_resnet(
        8, preactivation=True, final_survival_probability=0.5, input_shape=(16, 16, 3)),
    "bottleneck_c.keras": presets.cifar_resnet(
        8, block="bottleneck", shortcut="C", input_shape=(16, 16, 3)),
    "highway.keras": presets.highway_net(2, 4),
    "crelu_ll.keras": presets.crelu_net(2, 4),
    "preact_bottleneck_b.keras": presets.cifar_resnet(
        8, block="bottleneck", preactivation=True, input_shape=(16, 16, 3)),
    "resnext_d_dropout.keras": Architecture(
        input_shape=(16, 16, 3), stem=Stem(kind="deep", filters=16, kernel_size=3, pool=True),
        stages=(Stage(blocks=1, channels=8), Stage(blocks=1, channels=16, strides=2)),
        block="bottleneck", groups=4, width_per_group=8, avg_down=True, dropout=0.2,
        zero_init_last_bn=True, classes=5, name="resnext_d"),
    "dense_blocks.keras": Architecture(
        input_shape=(12,), stem=Stem(kind="dense", filters=8, kernel_size=1, pool=False),
        stages=(Stage(blocks=2, channels=8, kernel_size=1), Stage(blocks=1, channels=6, kernel_size=1)),
        block="dense", shortcut="B", pooling=None, classes=3, name="dense_blocks"),
}


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)
    outputs = {}
    for name, arch in MODELS.items():
        model = kr.build_resnet(arch)
        model.save(out / name)
        x = np.random.default_rng(0).normal(size=(2, *arch.input_shape)).astype("float32")
        outputs[f"{name}.input"], outputs[f"{name}.output"] = x, model.predict(x, verbose=0)
    np.savez(out / "outputs.npz", **outputs)
    train(presets.mnist_resnet(nb_blocks=2, nb_channels=4), "mnist_sample", subset=96,
          epochs=1, batch_size=32, runs_dir=out / "runs", run_id="legacy-run", seed=0)
    root = Path(kr.__file__).resolve().parent.parent
    commit = subprocess.check_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], text=True)
    (out / "VERSION").write_text(commit)


if __name__ == "__main__":
    main(sys.argv[1])
