"""Executes the notebooks of notebooks/ in place, so that a reader sees their charts and numbers.

    python scripts/execute_notebooks.py [NAME ...] [--size quick]

Run it before each commit that touches a notebook. Each notebook runs from a clean state in a
fresh kernel, at ``KR_SIZE`` (``quick`` by default, minutes each on a CPU) on the default
backend. Altair charts are drawn as PNG images (by ``vl-convert-python``), so that viewers that
run no JavaScript (code hosts, nbviewer) show them. The notebook's metadata
records the hash of its cells' sources (`source_hash`), the size, the backend and the time
taken; tests/test_notebooks.py checks that the hash matches the committed cells, so outputs
never come from code other than the code beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
METADATA = "keras_resnets"
"""Key of the notebook metadata this script writes."""


def source_hash(notebook) -> str:
    """SHA-256 of the kinds and sources of the notebook's cells (not of their outputs)."""
    cells = [[cell.cell_type, cell.source] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def images(notebook) -> list:
    """The PNG outputs of the notebook (its charts)."""
    return [output for cell in notebook.cells for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})]


LOG_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} |To enable the following instructions)")
"""Lines that TensorFlow's C++ logging prints to stderr when it starts (CUDA probes, CPU flags)."""


def drop_log_noise(notebook) -> None:
    """Removes TensorFlow's start-up log lines from stderr outputs (and outputs left empty)."""
    for cell in notebook.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                output["text"] = "".join(line for line in output["text"].splitlines(keepends=True)
                                         if not LOG_NOISE.match(line))
                if not output["text"].strip():
                    continue
            kept.append(output)
        if cell.cell_type == "code":
            cell.outputs = kept


def clear_outputs(notebook) -> None:
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)


def kernel_profile(directory: Path) -> Path:
    """An IPython directory whose startup makes Altair draw charts as PNG images (rendered by
    vl-convert-python), which every viewer shows; its default, HTML that loads Vega from the
    web, shows nothing where scripts do not run. A reader who runs the notebook gets the
    interactive charts."""
    startup = directory / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-altair.py").write_text('import altair\naltair.renderers.enable("png")\n')
    return directory


def execute(path: Path, size: str) -> dict:
    """Executes ``path`` in place; returns what it recorded in the metadata."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    clear_outputs(notebook)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as ipython_dir:
        env = {**os.environ, "KR_SIZE": size, "TF_CPP_MIN_LOG_LEVEL": "3",
               "IPYTHONDIR": str(kernel_profile(Path(ipython_dir)))}
        NotebookClient(notebook, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    import keras

    drop_log_noise(notebook)
    record = {"source_hash": source_hash(notebook), "size": size,
              "backend": os.environ.get("KERAS_BACKEND") or keras.config.backend(),
              "seconds": round(time.perf_counter() - start, 1), "images": len(images(notebook))}
    notebook.metadata[METADATA] = record
    nbformat.write(notebook, path)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all), e.g. 01_mnist_resnet")
    parser.add_argument("--size", default="quick", choices=("tiny", "quick", "full"))
    args = parser.parse_args(argv)
    paths = [NOTEBOOKS / f"{Path(name).stem}.ipynb" for name in args.names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        record = execute(path, args.size)
        print(f"{path.name}: {record['seconds']:.0f} s, {record['images']} images, "
              f"{path.stat().st_size / 1e3:.0f} kB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
