"""Builds a design once and reports on it: counts, tables, the .keras file.

Builds are cached on the architecture's JSON (`st.cache_data` / `st.cache_resource`), on the
app's own backend (TensorFlow unless ``KERAS_BACKEND`` says otherwise): parameter counts do
not depend on the backend.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from keras_resnets import Architecture, build_resnet, count_params, parameter_table, stage_table


@st.cache_data(max_entries=64, show_spinner=False)
def summarize(architecture_json: str) -> dict:
    """Counts and tables of the design, as plain data.

    Returns ``{"counts", "stages", "layers", "macs", "depth", "num_blocks", "output_shape"}``.
    """
    # No keras.backend.clear_session() here: other sessions may be building at the same time.
    architecture = Architecture.from_json(architecture_json)
    model = build_resnet(architecture)
    layers = parameter_table(model)
    return {
        "counts": count_params(model),
        "stages": stage_table(model),
        "layers": layers,
        "macs": sum(row["macs"] for row in layers),
        "depth": architecture.depth,
        "num_blocks": architecture.num_blocks,
        "output_shape": tuple(model.output.shape[1:]),
    }


@st.cache_data(max_entries=4, show_spinner=False)
def keras_file(architecture_json: str) -> bytes:
    """The untrained model of the design, saved as a ``.keras`` archive."""
    model = build_resnet(Architecture.from_json(architecture_json))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def load_model(path: str | os.PathLike):
    """Loads a ``.keras`` file of the run store with ``safe_mode=True`` (never runs pickled
    code); a `ValueError` for a file that is not a ``.keras`` archive (Keras would say "File
    not found")."""
    import keras

    import keras_resnets  # noqa: F401  (registers the custom layers)

    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ValueError(f"{path.name} is not a .keras archive (a zip file): the file is damaged.")
    return keras.saving.load_model(path, safe_mode=True, compile=False)


@st.cache_resource(max_entries=4, show_spinner=False)
def _trained_model(path: str, modified: float):
    return load_model(path)


def predict_sample(model_path, data_format=None, count=16):
    """``(images, labels, predictions)`` of a trained 28x28x1, 10-class model on the first
    ``count`` digits of the embedded MNIST sample; the model is loaded with ``safe_mode=True``."""
    import keras

    from keras_resnets.data.datasets import load_arrays, normalize

    (images, labels), _, _ = load_arrays("mnist_sample")
    images, labels = images[:count], labels[:count]
    x = normalize(images, "mnist_sample", data_format)
    path = Path(model_path)
    model = _trained_model(str(path), path.stat().st_mtime)
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return images, labels, logits.argmax(axis=-1)
