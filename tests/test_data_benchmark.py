"""Smoke test of benchmarks/data_pipeline.py: its workers and report work at a tiny size, in
this process. No test here asserts a time: the numbers live in benchmarks/RESULTS.md."""

import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import data_pipeline as bench  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bench"))
    return bench.make_folder(root, 20, bench.TINY["image"], bench.TINY["image"])


def test_the_workers_measure_and_the_report_says_it(folder):
    size = bench.TINY
    rows = [{"kind": "memory", "mode": "stream", "count": 20,
             **bench.memory_worker({**size, "mode": "stream", "folder": folder})},
            {"kind": "pipeline", **bench.pipeline_worker({**size, "folder": folder})},
            {"kind": "model", "backend": "any", "images_per_s": 1.0, "dtype_policy": "float32"}]
    assert rows[0]["images"] == 20 and rows[0]["peak_mib"] >= rows[0]["peak_before_data_mib"] > 0
    assert rows[1]["images_per_s"] > 0
    meta = {"date": "today", "cpu": "a CPU", "load_before": None, "load_after": None, "note": "",
            "command": "python benchmarks/data_pipeline.py --tiny", "wall_min": 0.1, "tiny": True,
            "memory_backend": "tensorflow"}
    text = bench.report(rows, size, meta)
    assert "| 20 | load_data (streams) |" in text and "1.000x" in text
    assert f"| any | {rows[1]['images_per_s']:.1f} | 1.00 |" in text


def test_the_generated_folder_mixes_jpeg_and_png_in_ten_classes(tmp_path):
    bench.make_folder(str(tmp_path), 20, 16, 16)
    names = sorted(os.listdir(tmp_path))
    assert names == [f"class{i}" for i in range(10)]
    files = [f for c in names for f in os.listdir(tmp_path / c)]
    assert {f.rsplit(".", 1)[1] for f in files} == {"jpg", "png"} and len(files) == 20


def test_the_gpu_scale_script_trains_from_a_folder_and_reports(tmp_path):
    import gpu_scale

    size = gpu_scale.TINY
    folder = bench.make_folder(str(tmp_path / "images"), size["images"], *size["shape"])
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    row = gpu_scale.train_speed(size, backend, folder, 1, str(tmp_path / "runs"))
    assert row.get("images_per_s", 0) > 0, row
    rows = [{"kind": "pipeline", "images_per_s": 100.0},
            {"kind": "train", "backend": backend, "processes": 1, **row},
            {"kind": "train", "backend": backend, "processes": 2, "images_per_s": 1.5 * row["images_per_s"]},
            {"kind": "train", "backend": "other", "processes": 1, "error": "timed out after 1 s"}]
    text = gpu_scale.report(rows, size, {"date": "today", "tiny": True, "device": "a CPU",
                                         "command": "python benchmarks/gpu_scale.py --tiny"})
    assert f"| {backend} | 2 | " in text and "| 0.75 |" in text and "failed: timed out" in text
    results = tmp_path / "RESULTS.md"
    results.write_text("# R\n\n## Other\nkept\n")
    gpu_scale.rb._write_section(results, text, tag=gpu_scale.TAG)
    gpu_scale.rb._write_section(results, text, tag=gpu_scale.TAG)
    assert results.read_text().count(gpu_scale.TITLE) == 1 and "kept" in results.read_text()
