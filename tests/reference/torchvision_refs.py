"""Writes the torchvision reference files that `tests/test_interop.py` compares with.

Runs in an environment with PyPI's torch and torchvision (not the suite's): ``python
tests/run.py`` makes one and runs this first; by hand::

    /opt/tv/bin/python tests/reference/torchvision_refs.py [--out DIR] [--only NAME ...]

For each model of `MODELS` (random weights, fixed seed) it writes ``DIR/<name>.npz`` with
the state dict (``state/<key>``), an input (``input``, 2x3x64x64), the eval logits
(``logits``), the stage outputs (``features/layer1..4``), and after one train-mode forward
pass of the same input its outputs (``train_logits``) and batch-norm statistics
(``train_state/<key>``), all computed in float64 from the float32 weights and input; ``resnet18.pth`` is the state dict as ``torch.save`` writes it, and
``imagenet_preprocess.npz`` a random 300x400 RGB image and what torchvision's ImageNet
transform (``ResNet18_Weights.IMAGENET1K_V1.transforms()``) makes of it.
The batch-norm scales, offsets and statistics are moved off their initial values (random
scales and offsets, then statistics of a random batch), so a wrong mapping shows.

This file imports neither Keras nor keras_resnets, and torch only in `main`.
"""

import argparse
import os
import sys

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
          "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")
VERSION = 2  # bumped when what this writes changes; the tests refuse other versions
DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "keras-resnets", "torchvision")
ENV_DIR = "KERAS_RESNETS_TORCHVISION_REFS"
"""The environment variable that points the tests and this script at another directory."""


def reference_dir():
    """Where the reference files are: ``$KERAS_RESNETS_TORCHVISION_REFS`` or `DEFAULT_DIR`."""
    return os.environ.get(ENV_DIR) or DEFAULT_DIR


def _move_batch_norms(model, torch, torchvision, seed):
    """Random BN scales and offsets, then the statistics of one random batch (so they are
    off their initial values but keep activations at a sane scale through 50 blocks)."""
    gen = torch.Generator().manual_seed(seed)
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # The last batch norm of each residual branch gets small scales (as timm's and
    # torchvision's zero_init_residual, but not zero): with scales near 1 the 50 blocks of a
    # random ResNet-152 amplify float32 rounding to 4e-4 of the logits, in torch itself.
    last = {id(getattr(b, "bn3", getattr(b, "bn2", None))) for b in model.modules()
            if isinstance(b, (torchvision.models.resnet.BasicBlock,
                              torchvision.models.resnet.Bottleneck))}
    with torch.no_grad():
        for m in batch_norms:
            low, width = (0.1, 0.3) if id(m) in last else (0.5, 1.0)
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * width + low)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            m.momentum = None  # a cumulative average: after one batch, its statistics
        model.train()
        model(torch.randn(4, 3, 64, 64, generator=gen))
        for m in batch_norms:
            m.momentum = 0.1


def _reference(name, torch, torchvision):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)()
    _move_batch_norms(model, torch, torchvision, seed=1)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    features = {}
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        getattr(model, stage).register_forward_hook(
            lambda _m, _i, out, stage=stage: features.__setitem__(stage, out.detach().numpy().copy()))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    # The expected values are computed in float64 from the float32 weights and input, so a
    # test measures our float32 rounding alone, not torch's too.
    model.double().eval()
    x64 = x.double()
    with torch.no_grad():
        out = {"input": x.numpy(), "logits": model(x64).float().numpy()}
        out.update({f"features/{k}": v.astype("float32") for k, v in features.items()})
        out.update({f"state/{k}": v.numpy() for k, v in state.items()})
        model.train()
        out["train_logits"] = model(x64).float().numpy()
        out.update({f"train_state/{k}": v.float().numpy() for k, v in model.state_dict().items()
                    if "running_" in k})
    return state, out


def _preprocess_reference(torch, torchvision):
    image = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(3))
    transform = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    return {"image": image.permute(1, 2, 0).numpy(), "output": transform(image).numpy()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=reference_dir())
    parser.add_argument("--only", nargs="*", default=MODELS, choices=MODELS)
    args = parser.parse_args(argv)
    import numpy as np
    import torch
    import torchvision

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    for name in args.only:
        state, out = _reference(name, torch, torchvision)
        out["version"] = np.array(VERSION)
        tmp = os.path.join(args.out, f".{name}.tmp.npz")
        np.savez(tmp, **out)
        os.replace(tmp, os.path.join(args.out, f"{name}.npz"))  # atomic: no half-written file
        if name == "resnet18":
            torch.save(state, os.path.join(args.out, "resnet18.pth"))
        print(f"wrote {name}.npz", flush=True)
    np.savez(os.path.join(args.out, "imagenet_preprocess.npz"),
             **_preprocess_reference(torch, torchvision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
