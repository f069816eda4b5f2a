"""Executes every notebook of notebooks/ at the hidden "tiny" size, on the current backend, and
checks that the committed outputs (executed at the quick size by scripts/execute_notebooks.py)
come from the committed cells.

The kernel gets the test's KERAS_BACKEND and ``KR_SIZE=tiny``; after the notebook's own
cells, a last cell checks the claim its experiments show.
"""

import importlib.util
import os
from pathlib import Path

import keras
import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_spec = importlib.util.spec_from_file_location("execute_notebooks", NOTEBOOKS.parent / "scripts" /
                                               "execute_notebooks.py")
execute_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execute_notebooks)

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


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_committed_outputs_come_from_the_committed_cells(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    record = notebook.metadata.get(execute_notebooks.METADATA)
    if record is None:  # not executed yet: then no outputs at all, so none can be stale
        assert all(not cell.outputs and cell.execution_count is None for cell in code), (
            f"{name} has outputs but no record of them: run python scripts/execute_notebooks.py {name}")
        return
    assert record["source_hash"] == execute_notebooks.source_hash(notebook), (
        f"{name}'s cells changed since its outputs were made: run python scripts/execute_notebooks.py {name}")
    assert record["size"] == "quick"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]
    charts = [cell for cell in code if cell.source.strip().endswith(".chart")]
    assert len(execute_notebooks.images(notebook)) == record["images"] >= len(charts)


def test_the_source_hash_sees_cells_and_not_outputs():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    before = execute_notebooks.source_hash(notebook)
    notebook.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"})]
    assert execute_notebooks.source_hash(notebook) == before
    notebook.cells[0].source = "1 + 2"
    assert execute_notebooks.source_hash(notebook) != before


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_notebook_runs_and_shows_its_claim(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    execute_notebooks.clear_outputs(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert 'os.environ.get("KR_SIZE", "quick")' in code[0].source
    notebook.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
    env = {**os.environ, "KERAS_BACKEND": keras.backend.backend(), "KR_SIZE": "tiny",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
