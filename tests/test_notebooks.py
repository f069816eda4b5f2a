"""Executes every notebook of notebooks/ at the hidden "tiny" size, on the current backend.

The kernel gets the test's KERAS_BACKEND and ``KR_SIZE=tiny``; after the notebook's own
cells, a last cell checks the claim its experiments show.
"""

import os
from pathlib import Path

import keras
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

CHECKS = {
    "01_mnist_resnet": """
assert kr.count_params(kr.mnist_resnet())["trainable"] == 117802
assert len(history.history["loss"]) == TRAINING["epochs"]
""",
    "02_shortcuts_and_plain_twins": """
s = depth_result.summary
assert s["plain_error_increase"] > s["residual_error_increase"] + 0.1
n = norms_result.summary
assert abs(n["log10_ratio_resnet_bn"]) < abs(n["log10_ratio_plain_bn"])
""",
    "03_highway_networks": """
s = result.summary
assert s["plain_loss_increase"] > s["highway_loss_increase"] + 0.2
""",
    "04_stochastic_depth": """
s = result.summary
assert s["expected_depth"] == (3 * s["blocks"] - 1) / 4
assert set(result.data.network) == {"constant depth", "stochastic depth"}
""",
    "05_ensembles_and_lesions": """
s, data = result.summary, result.data
assert s["drop_one_block_resnet"] < s["drop_one_block_plain"]
n = round(2 * s["median_path_length"])
assert data[data.study == "path_count"].value.sum() == s["paths"] == 2**n
per_path = data[data.study == "path_gradient"].set_index("k").value
assert per_path.iloc[-1] < per_path.iloc[0]
assert s["gradient_path_length"] <= s["median_path_length"]
""",
    "06_shattered_gradients_and_looks_linear": """
s = shattered_result.summary
assert s["lag1_1_layer"] > s["lag1_resnet"] > s["lag1_24_layer"]
d = ll_result.summary
assert d["accuracy_drop_crelu_ll"] < d["accuracy_drop_relu"]
""",
}


def test_every_notebook_has_a_check():
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == sorted(CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_and_shows_its_claim(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        "notebooks are committed without outputs"
    )
    assert 'os.environ.get("KR_SIZE", "quick")' in code[0].source
    notebook.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "KR_SIZE": "tiny",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
