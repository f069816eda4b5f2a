"""Regenerate ``keras_resnets/_data/mnist_sample.npz`` from the MNIST test set.

Reads the gzip-compressed IDX files of the 10,000 MNIST test digits and writes
them as a compressed npz with arrays ``images`` (N, 28, 28, 1) uint8,
``labels`` (N,) uint8, and the strings ``source`` and ``licence``. The package
only ever reads the npz; this script is for maintainers.

Example:
    python scripts/make_mnist_sample.py --src ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (
    "MNIST test set (t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte), "
    "Y. LeCun, C. Cortes, C. J. C. Burges, http://yann.lecun.com/exdb/mnist/"
)
LICENCE = "CC BY-SA 3.0 (https://creativecommons.org/licenses/by-sa/3.0/)"


def read_idx(path: Path, header: int, magic: int) -> np.ndarray:
    """Returns the uint8 payload of a gzip-compressed IDX file after its header."""
    raw = gzip.decompress(path.read_bytes())
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic {found:#x}, expected {magic:#x}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared/data/mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "keras_resnets/_data/mnist_sample.npz")
    args = parser.parse_args()

    images = read_idx(args.src / "t10k-images-idx3-ubyte.gz", 16, 0x803).reshape(-1, 28, 28, 1)
    labels = read_idx(args.src / "t10k-labels-idx1-ubyte.gz", 8, 0x801)
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels, source=SOURCE, licence=LICENCE)
    pixels = images / 255.0
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(images)} digits, "
        f"mean {pixels.mean():.4f}, std {pixels.std():.4f}, "
        f"class counts {np.bincount(labels, minlength=10).tolist()}"
    )


if __name__ == "__main__":
    main()
