"""Writes the files of this folder: a run store and `.keras` models as an earlier version saved them.

Later versions must keep loading them (tests/test_legacy.py). Run it at the commit named in
``VERSION`` (``git checkout <commit> && KERAS_BACKEND=tensorflow python tests/data/legacy/make.py``),
never with the current code: the point is what an older version wrote.
"""

import shutil
import subprocess
from pathlib import Path

import numpy as np

import keras_resnets as kr
from keras_resnets import presets
from keras_resnets.training import train

HERE = Path(__file__).parent
MODELS = {
    "mnist_resnet_2.keras": presets.mnist_resnet(nb_blocks=2, nb_channels=4),
    "cifar8_preact_sd_a.keras": presets.cifar_resnet(
        8, preactivation=True, final_survival_probability=0.5, input_shape=(16, 16, 3)),
    "bottleneck_c.keras": presets.cifar_resnet(
        8, block="bottleneck", shortcut="C", input_shape=(16, 16, 3)),
    "highway.keras": presets.highway_net(2, 4),
    "crelu_ll.keras": presets.crelu_net(2, 4),
}


def main():
    shutil.rmtree(HERE / "runs", ignore_errors=True)
    outputs = {}
    for name, arch in MODELS.items():
        model = kr.build_resnet(arch)
        model.save(HERE / name)
        x = np.random.default_rng(0).normal(size=(2, *arch.input_shape)).astype("float32")
        outputs[f"{name}.input"], outputs[f"{name}.output"] = x, model.predict(x, verbose=0)
    np.savez(HERE / "outputs.npz", **outputs)
    train(presets.mnist_resnet(nb_blocks=2, nb_channels=4), "mnist_sample", subset=96,
          epochs=1, batch_size=32, runs_dir=HERE / "runs", run_id="legacy-run", seed=0)
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True)
    (HERE / "VERSION").write_text(commit)


if __name__ == "__main__":
    main()
