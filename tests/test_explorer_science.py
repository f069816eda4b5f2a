"""The explorer's second-round controls (issue 19): PyTorch export, the claims scoreboard,
seed groups and chart/table exports on Compare. AppTest, on the test's KERAS_BACKEND."""

import pytest

pytest.importorskip("streamlit")

from test_explorer import TINY, app, runs_dir  # noqa: E402,F401  (runs_dir: an empty store per test)


# -- Export ------------------------------------------------------------------------------------
def test_export_offers_the_pytorch_module():
    at = app(TINY, page="export")
    labels = {b.proto.label for b in at.get("download_button")}
    assert "PyTorch module (.py)" in labels


def test_export_explains_why_a_highway_design_has_no_pytorch_module():
    at = app({"preset": "highway_net"}, page="export")
    assert "PyTorch module (.py)" not in {b.proto.label for b in at.get("download_button")}
    assert any("not supported by the PyTorch export" in i.value for i in at.info)
