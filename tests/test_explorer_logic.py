"""What the explorer's pages compute, tested directly, without Streamlit: the pages only draw it
(their AppTests are in test_explorer*.py)."""

import ast
import io
import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import keras
import pandas as pd
import pytest

from explorer import (charts, count_tables, designs, dissect, launch, progress, run_rows, runner, seeds, uploads,
                      workers)
from explorer.runner import TrainRequest
from keras_resnets import Architecture, cli, get_preset
from keras_resnets.data.spec import DataSpec
from keras_resnets.runs.records import RunConfig
from keras_resnets.training import Recipe, TrainingRequest
from keras_resnets.runs.store import Run, RunStore
from test_data_folders import numbered_folder

EXPLORER = Path(__file__).resolve().parent.parent / "explorer"
STREAMLIT_MODULES = {"app", "models", "state", "ui"}
"""The explorer's modules that draw or cache with Streamlit; its pages are in app_pages/."""
DESIGN = get_preset("mnist_resnet", nb_blocks=1).to_dict()
EPOCH = {"event": "epoch", "epoch": 0, "step": 256, "loss": 0.9, "accuracy": 0.74, "val_loss": 0.3,
         "val_accuracy": 0.93, "learning_rate": 3e-4, "seconds": 40.0}


def completed_run(runs_dir, run_id, seed=0, **changes):
    """A completed one-epoch run of the lecture's network with ``changes`` to its design."""
    run = RunStore(runs_dir).create({"architecture": {**DESIGN, **changes}, "recipe": {"epochs": 1, "batch_size": 16},
                                     "dataset": {"name": "mnist_sample", "subset": 4096}, "backend": "jax",
                                     "seed": seed}, run_id=run_id)
    run.write_status(state="completed", epoch=1, epochs=1)
    run.append_metrics({"event": "batch", "epoch": 0, "step": 128, "loss": 1.5, "accuracy": 0.5,
                        "images_per_second": 100.0}, {**EPOCH, "val_accuracy": 0.9 + seed / 100})
    return RunStore(runs_dir).get(run_id)


def damaged_run(runs_dir, run_id="zz-dead"):
    return Run.damaged(RunStore(runs_dir).path(run_id), ValueError("its status cannot be read"))


def _explorer_imports(path):
    """The explorer modules and top-level packages that ``path`` imports, at any depth."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "explorer":
                yield from (f"explorer.{alias.name}" for alias in node.names)
            else:
                yield node.module


def test_logic_modules_import_no_streamlit():
    """Every explorer module but the app, its pages and the Streamlit helpers is plain Python,
    and so is everything of the explorer that it imports."""
    modules = {p.stem: p for p in EXPLORER.glob("*.py") if p.stem != "__init__"}
    assert STREAMLIT_MODULES <= set(modules)
    for name in sorted(set(modules) - STREAMLIT_MODULES):
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            seen.add(current)
            for module in _explorer_imports(modules[current]):
                assert module.split(".")[0] != "streamlit", f"{name} imports streamlit through {current}"
                inner = module.removeprefix("explorer.")
                if module.startswith("explorer.") and inner not in seen:
                    assert inner not in STREAMLIT_MODULES, f"{name} imports explorer.{inner} through {current}"
                    todo.append(inner)


# -- runs of the store ---------------------------------------------------------------------------
def test_labels_say_what_differs_from_the_preset(runs_dir):
    assert run_rows.describe(completed_run(runs_dir, "run-aaaa")) == "mnist_resnet · JAX (aaaa)"
    plain = completed_run(runs_dir, "run-bbbb", residual=False, shortcut="A", final_survival_probability=0.5)
    assert run_rows.describe(plain) == "mnist_resnet · plain · option A · p_L=0.5 · JAX (bbbb)"
    named = completed_run(runs_dir, "run-cccc", name="mnist_resnet-1x16-plain", residual=False)
    assert run_rows.describe(named) == "mnist_resnet-1x16-plain · JAX (cccc)"  # the name says it already
    assert run_rows.describe(damaged_run(runs_dir)) == "damaged run (dead)"
    assert run_rows.group_label([plain, named]) == f"{run_rows.describe(plain)} · 2 seeds"


@pytest.mark.parametrize("key, value, shown", [("residual", False, True), ("residual", True, False),
                                               ("final_survival_probability", 0.8, True),
                                               ("final_survival_probability", 1.0, False),
                                               ("final_survival_probability", "high", False),
                                               ("preactivation", True, True), ("preactivation", False, False)])
def test_a_field_is_named_only_where_it_says_something(key, value, shown):
    assert run_rows._shown(key, value) is shown


@pytest.mark.parametrize("epochs, single", [(1, True), (2, False), (None, False), ("three", False)])
def test_single_epoch(epochs, single):
    assert run_rows.single_epoch(SimpleNamespace(status={"epochs": epochs})) is single


def test_comparison_rows_and_tables(runs_dir):
    a, b = completed_run(runs_dir, "run-a", seed=0), completed_run(runs_dir, "run-b", seed=1)
    dead = damaged_run(runs_dir)
    row = run_rows.comparison_row(a, parameters=lambda architecture_json: 1234)
    assert row["parameters"] == 1234 and row["best val. accuracy"] == 0.9
    assert (row["time per epoch (s)"], row["final train loss"], row["epochs"]) == (40.0, 0.9, "1/1")
    assert run_rows.comparison_row(dead, print) == {"run": "damaged run (dead)", "id": "zz-dead",
                                                    "state": "damaged: its status cannot be read"}
    groups = seeds.group([a, b, dead])
    table = run_rows.comparison_table(groups, grouped=False, parameters=lambda _: None)
    assert list(table["id"]) == ["run-a", "run-b", "zz-dead"]
    grouped = run_rows.comparison_table(groups, grouped=True, parameters=lambda _: None)
    assert list(grouped["seeds"].fillna(1)) == [2, 1]  # the damaged run stands alone
    assert grouped["best val. accuracy"][0] == pytest.approx(0.905)
    assert grouped["best val. accuracy ± std"].dtype == float


def test_the_train_pages_table_and_line(runs_dir):
    run = completed_run(runs_dir, "run-a")
    table = run_rows.runs_table([run, damaged_run(runs_dir)])
    assert table.to_dict("records")[0] == {"run": "run-a", "state": "completed", "design": "mnist_resnet",
                                           "dataset": "mnist_sample", "backend": "JAX", "epochs": "1/1",
                                           "best val. accuracy": 0.9}
    assert table["state"].tolist() == ["completed", "damaged"]
    assert run_rows.run_line(run) == "`mnist_resnet` on mnist_sample with JAX"
    several = RunConfig.from_dict({"architecture": {"name": "n"}, "dataset": {"name": "/data/pets"}, "backend": "torch",
                                   "processes": 2})
    assert run_rows.run_line(SimpleNamespace(config=several)) == "`n` on /data/pets with PyTorch in 2 processes"
    assert run_rows.best_accuracy([]) is None


@pytest.mark.parametrize("viewing, followed, active, shown", [
    ("b", None, [], "b"), ("b", "c", [], "c"), ("gone", None, ["c"], "c"), (None, "gone", [], "a")])
def test_the_run_shown(viewing, followed, active, shown):
    assert run_rows.choose_run(viewing, followed, ["a", "b", "c"], active) == shown


def test_comparison_charts_band_seed_groups_and_name_damaged_runs(runs_dir):
    a, b = completed_run(runs_dir, "run-a", seed=0), completed_run(runs_dir, "run-b", seed=1)

    def unreadable():
        raise ValueError("a bad line")

    a.metrics = unreadable
    by_metric, damaged = charts.comparison_charts([[a], [b]], batches=False, grouped=False)
    assert set(by_metric) == {"accuracy", "loss"}
    assert damaged == ["run-a — damaged: a file of this run holds an unexpected value (ValueError: a bad line)"]
    banded, _ = charts.comparison_charts([[b, completed_run(runs_dir, "run-c", seed=2)]], batches=True, grouped=True)
    assert "seed group" in json.dumps(banded["loss"].to_dict())
    assert charts.comparison_charts([], batches=False, grouped=True) == ({}, [])


def test_a_runs_seed_group(runs_dir):
    a, b = completed_run(runs_dir, "run-a", seed=0), completed_run(runs_dir, "run-b", seed=1)
    other = completed_run(runs_dir, "run-c", residual=False)
    assert [r.id for r in seeds.group_of([a, other, b], "run-b")] == ["run-a", "run-b"]


# -- the Train page -----------------------------------------------------------------------------
def test_the_request_of_the_settings():
    request = launch.request_of({"dataset": "mnist_sample", "subset": 0, "epochs": 3, "batch_size": 32,
                                 "validation_split": 0.1, "optimizer": launch.RECIPE, "schedule": launch.RECIPE,
                                 "learning_rate": 0.0, "seed": 7, "backend": "torch"})
    assert request == TrainRequest(dataset="mnist_sample", subset=None, epochs=3, batch_size=32,
                                   validation_split=0.1, seed=7, backend="torch")
    assert launch.request_of({}) == TrainRequest(subset=None, validation_split=0.0, epochs=1, batch_size=1)
    assert launch.request_of({"optimizer": "sgd", "schedule": "step"}).optimizer == "sgd"


def test_the_request_of_a_folder_an_upload_and_processes():
    folder = launch.request_of({"source": "folder", "folder": " pets ", "validation_folder": " ", "dataset": "cifar10",
                                "validation_split": 0.2, "processes": 2})
    assert (folder.dataset, folder.validation_dataset) == (os.path.abspath("pets"), None)  # the worker starts elsewhere
    assert (folder.validation_split, folder.processes) == (0.2, 2)
    upload = launch.request_of({"source": "upload", "uploaded": "/runs/.uploads/ab/pets", "folder": "/typed",
                                "validation_folder": "/held-out", "validation_split": 0.2})
    assert (upload.dataset, upload.validation_dataset, upload.validation_split) == (
        "/runs/.uploads/ab/pets", "/held-out", 0.0)  # the validation folder replaces the fraction
    assert launch.request_of({"source": "upload", "folder": "/typed"}).dataset == ""
    named = launch.request_of({"source": "named", "dataset": "cifar10", "folder": "/typed", "validation_folder": "/v",
                               "transforms": "imagenet"})
    assert (named.dataset, named.validation_dataset, named.transforms, named.processes) == ("cifar10", None, None, 1)
    assert launch.request_of({"source": "folder", "folder": "/f", "transforms": "imagenet"}).transforms == "imagenet"
    assert launch.request_of({"source": "folder", "folder": "/f", "transforms": "none"}).transforms is None


def test_the_librarys_request_names_the_folders_and_the_processes():
    lecture = Architecture.from_dict(DESIGN)
    settings = TrainRequest(dataset="/data/pets", subset=None, validation_split=0.0, validation_dataset="/data/val",
                            transforms="imagenet", batch_size=16, processes=2, backend="torch")
    request = settings.training_request(lecture)
    assert request.dataset == DataSpec("/data/pets", subset=None, validation_split=0.0,
                                       validation_dataset="/data/val", transforms="imagenet")
    assert request.processes == 2 and request.to_dict()["processes"] == 2  # what the worker's file holds
    default = TrainRequest(backend="jax").training_request(lecture)
    assert (default.dataset.validation_dataset, default.dataset.transforms, default.processes) == (None, None, 1)
    assert "processes" not in default.to_dict()


def test_the_backends_offered():
    assert runner.backend_choices({"tensorflow": True, "jax": False, "torch": True}) == ["tensorflow", "torch"]
    assert runner.backend_choices({"tensorflow": False, "jax": False, "torch": False}) == ["tensorflow"]


def test_why_a_design_cannot_train():
    lecture = Architecture.from_dict(DESIGN)

    def problem(architecture=lecture, available=True, **changes):
        request = TrainRequest(**{"backend": "jax", **changes})
        return launch.training_problem(architecture, request, launch.data_of(request, lambda name: available))

    cifar = launch.data_of(TrainRequest(dataset="cifar10"), lambda name: True)
    assert problem() is None
    assert "vectors of 784 features" in problem(SimpleNamespace(input_shape=(784,)))
    assert "no classifier" in problem(Architecture.from_dict({**DESIGN, "include_top": False}))
    assert problem(dataset="cifar10") == ("the design takes 28×28×1 images and 10 classes; cifar10 has "
                                          "32×32×3 images and 10 classes.")
    assert problem(Architecture.from_dict(launch.fitted(DESIGN, cifar)), dataset="cifar10",
                   available=False) == "cifar10 cannot be loaded here (offline)."
    assert problem(available=False, dataset="mnist") is None  # it falls back to the embedded sample
    assert problem(subset=9001) == ("subset=9001 is not allowed: at most 9,000, the training examples left after "
                                    "validation_split=0.1.")
    assert problem(validation_split=1.5) == "validation_split=1.5 is not allowed: a finite number in [0, 1)."
    assert problem(optimizer="rmsprop").startswith("optimizer='rmsprop' is not allowed")  # the library's words


def test_devices_and_processes_are_checked_before_a_run_starts():
    lecture = Architecture.from_dict(DESIGN)

    def problem(**changes):
        request = TrainRequest(**changes)
        return launch.training_problem(lecture, request, launch.data_of(request, lambda name: True))

    assert problem(processes=2, batch_size=16, backend="torch") is None  # DDP under torchrun
    assert "with PyTorch, train with several processes instead" in problem(distribution="data_parallel",
                                                                          backend="torch")
    assert "do not go together" in problem(distribution="data_parallel", processes=2, backend="jax")
    # the library's own checks, with its words
    assert problem(processes=2, batch_size=15, backend="jax") == (
        "--batch-size=15 is the global batch and must be a multiple of --processes=2.")
    assert "cannot share dataset 'mnist'" in problem(dataset="mnist", processes=2, batch_size=16, backend="tensorflow")


def test_what_a_folder_holds_and_why_it_cannot_train(tmp_path):
    folder = numbered_folder(tmp_path / "pets", per_class=4)
    request = launch.request_of({"source": "folder", "folder": str(folder), "validation_split": 0.25,
                                 "batch_size": 4, "backend": "jax"})
    data = launch.data_of(request)
    assert (data.image_shape, data.classes, data.train_images, data.validation_images) == ((8, 6, 3), 3, 9, 3)
    assert launch.data_text(data) == ("Found **3 classes** (cat, dog, emu) of 8×6×3 images: **9** to train on, "
                                      "**3** held out.")
    lecture = Architecture.from_dict(DESIGN)
    assert launch.training_problem(lecture, request, data) == ("the design takes 28×28×1 images and 10 classes; "
                                                               "the image folder has 8×6×3 images and 3 classes.")
    fitted = Architecture.from_dict(launch.fitted(DESIGN, data))
    assert launch.training_problem(fitted, request, data) is None
    (folder / "cat" / "notes.png").write_text("not an image")
    bad = launch.data_of(request)
    assert bad.problem.startswith(f"dataset={str(folder)!r} is not allowed: a folder of readable JPEG and PNG")
    assert "cat/notes.png" in bad.problem and launch.training_problem(fitted, request, bad) == bad.problem
    (folder / "cat" / "notes.png").unlink()
    numbered_folder(tmp_path / "other", classes=("cat", "fox"), per_class=1)
    held_out = launch.request_of({"source": "folder", "folder": str(tmp_path / "other"),
                                  "validation_folder": str(folder)})
    assert "a folder with the training folder's classes ['cat', 'fox']" in launch.data_of(held_out).problem
    numbered_folder(folder, classes=("dog",), per_class=1, size=(10, 12))  # dog/00.png, now of another size
    assert "the images differ in size (" in launch.data_of(request).problem
    resized = launch.data_of(launch.request_of({"source": "folder", "folder": str(folder), "transforms": "imagenet"}))
    assert (resized.image_shape, resized.train_images, resized.problem) == ((224, 224, 3), 12, None)
    missing = launch.request_of({"source": "folder", "folder": str(tmp_path / "nope")})
    assert launch.data_of(missing).problem.endswith("is not allowed: a dataset name or the path of an existing folder.")
    assert launch.data_of(launch.request_of({"source": "folder"})).problem.startswith("no image folder is chosen")


def test_the_settings_make_the_librarys_request():
    lecture = Architecture.from_dict(DESIGN)
    settings = TrainRequest(subset=None, recipe="paper", epochs=2, batch_size=32, learning_rate=0.05, seed=3,
                            backend="jax", distribution="data_parallel")
    assert settings.training_request(lecture) == TrainingRequest(
        lecture, DataSpec(subset=None), Recipe.paper(epochs=2, batch_size=32, learning_rate=0.05), seed=3,
        distribution="data_parallel")  # subset 0 on the page: all the images, as its help says
    assert TrainRequest(backend="jax").training_request(lecture).recipe == Recipe()  # the recipe's own
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        TrainRequest(optimizer="rmsprop", backend="jax").training_request(lecture)


def test_a_launch_hands_the_worker_its_request_whole(runs_dir, monkeypatch):
    """What the explorer serialises is what the worker trains: the worker's command, run here."""
    started = []
    monkeypatch.setattr(workers, "start", lambda key, command, backend, *args, **kwargs: started.append(
        (command, backend)) or SimpleNamespace(pid=os.getpid()))
    request = TrainingRequest(get_preset("mnist_resnet", nb_blocks=1, nb_channels=4),
                              DataSpec(subset=64, validation_split=0.0064), Recipe.paper(epochs=1, batch_size=32),
                              seed=4)
    run_id = runner.Runner(runs_dir).launch(request, keras.backend.backend())
    (command, backend), = started
    assert command[1:5] == ["-m", "keras_resnets", "train", "--request"] and backend == keras.backend.backend()
    assert TrainingRequest.from_dict(json.loads(Path(command[5]).read_text())) == request
    assert cli.main(command[3:]) == 0  # the worker's arguments
    assert TrainingRequest.from_config(RunStore(runs_dir).get(run_id).config) == request
    runner.Runner(runs_dir).dismiss(run_id)
    assert not Path(command[5]).exists()


def test_a_launch_of_several_processes_counts_them_among_the_workers_starting(runs_dir, monkeypatch):
    started = []
    monkeypatch.setattr(workers, "start", lambda key, command, backend, *args, starting, **kwargs: started.append(
        (command, starting)) or SimpleNamespace(pid=os.getpid()))
    request = TrainingRequest(get_preset("mnist_resnet", nb_blocks=1, nb_channels=4), DataSpec(subset=64),
                              Recipe(batch_size=16), processes=2)
    runner.Runner(runs_dir).launch(request, "jax", starting=3)
    (command, starting), = started
    assert starting == 4  # its two processes share the cores with the two workers after it
    assert TrainingRequest.from_dict(json.loads(Path(command[5]).read_text())).processes == 2


def test_the_estimate_reads_the_speed_of_the_last_run_of_the_design():
    lecture = Architecture.from_dict(DESIGN)

    def run(design, speeds, processes=1):
        return SimpleNamespace(config=SimpleNamespace(architecture=design, processes=processes),
                               batches=lambda: [{"images_per_second": s} for s in speeds])

    def estimate(request, runs):
        return launch.estimate(lecture, request, launch.data_of(request, lambda name: True), runs)

    runs = [run({**DESIGN, "residual": False}, [1.0]), run(lecture.to_dict(), []),
            run(lecture.to_dict(), [90.0, 100.0, 200.0]), run(lecture.to_dict(), [10.0], processes=2)]
    assert estimate(TrainRequest(subset=1000, epochs=2), runs) == (20.0, 100.0)
    assert estimate(TrainRequest(subset=None, validation_split=0.2), runs) == (80.0, 100.0)
    assert estimate(TrainRequest(subset=None, dataset="cifar10"), runs) is None
    assert estimate(TrainRequest(), runs[:2]) is None
    assert estimate(TrainRequest(subset=1000, processes=2), runs) == (100.0, 10.0)  # as many processes


def test_what_the_request_will_train():
    request = TrainRequest(subset=2048, epochs=1, batch_size=64, schedule="step", backend="jax")
    text = launch.plan_text(Architecture.from_dict(DESIGN), request, 117_802)
    assert text.startswith("**Will train** `mnist_resnet` (117,802 trainable parameters) on **mnist_sample** "
                           "(2,048 training images, ")
    assert "1 epoch of batches of 64, quick recipe with the rate ÷10 at 50% and 75%, with **JAX**" in text
    folder = TrainRequest(dataset="/data/pets", subset=None, validation_split=0.0, validation_dataset="/data/val",
                          processes=2, backend="torch")
    text = launch.plan_text(Architecture.from_dict(DESIGN), folder, 117_802)
    assert " on the image folder `/data/pets` (all training images, validation images from `/data/val`), " in text
    assert text.endswith("with **PyTorch** in 2 worker processes that train together.")


def test_the_numbers_of_a_run_say_what_they_are():
    events = [{"event": "batch", "epoch": 0, "step": 12, "loss": 1.25, "accuracy": 0.5, "images_per_second": 99.6},
              {"event": "probe", "epoch": 0, "step": 20, "val_accuracy": 0.6, "images": 256}]
    cards, line = progress.numbers(events, {"num_validation": 1000})
    assert [(label, value) for label, value, _ in cards] == [
        ("Training loss", "1.250"), ("Training accuracy", "50.0%"), ("Held-out accuracy", "60.0%"),
        ("Images / s", "100")]
    assert line == ("Training: running mean over epoch 1 so far, step 12 (the weights change as it goes). "
                    "Held out (never trained on): 256 held-out images, step 20.")
    cards, _ = progress.numbers([], {})
    assert [value for _, value, _ in cards] == ["–"] * 4


def test_the_bar_of_several_processes_counts_no_probes():
    """Several processes make no held-out probes: after the last step, only the epoch's evaluation and the saving
    are left."""
    status = {"state": "running", "phase": "evaluating", "epoch": 0, "epochs": 1, "num_validation": 1000}
    events = [{"event": "batch", "epoch": 0, "step": 256, "images_per_second": 100.0}]
    two = progress.run_progress(status, Recipe(batch_size=16), events, 256, processes=2)
    assert two.fraction == pytest.approx(4096 / (4096 + 1000 / 3 + 2 * 100))
    assert progress.run_progress(status, Recipe(batch_size=16), events, 256).fraction < two.fraction


def test_the_words_on_the_progress_bars():
    status = {"epoch": 0, "data_source": "the embedded sample"}
    assert progress.bar_text(status, progress.Progress(0.25, None, None), 3) == (
        "epoch 0 of 3 done · 25% · data: the embedded sample")
    assert progress.experiment_fraction({"fraction": 1.5}) == 1.0
    assert progress.experiment_fraction({"fraction": None}) == 0.0


# -- zips of image folders ------------------------------------------------------------------------
def zipped(members) -> bytes:
    """A zip of ``{name: bytes}``."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return data.getvalue()


def test_a_zip_is_extracted_once_into_the_run_store(tmp_path):
    data = zipped({"pets/cat/1.png": b"1", "pets/dog/2.png": b"2", "pets/.DS_Store": b"", "__MACOSX/pets/._x": b""})
    folder = uploads.extract_zip(data, tmp_path)
    assert folder.name == "pets" and folder.parent.parent == tmp_path / uploads.UPLOADS
    assert sorted(str(p.relative_to(folder.parent)) for p in folder.parent.rglob("*")) == [
        "pets", "pets/.DS_Store", "pets/cat", "pets/cat/1.png", "pets/dog", "pets/dog/2.png"]
    (folder / "cat" / "1.png").write_bytes(b"kept")
    assert uploads.extract_zip(data, tmp_path) == folder and (folder / "cat" / "1.png").read_bytes() == b"kept"
    flat = uploads.extract_zip(zipped({"cat/1.png": b"1", "dog/2.png": b"2"}), tmp_path)
    assert flat.parent == tmp_path / uploads.UPLOADS and sorted(p.name for p in flat.iterdir()) == ["cat", "dog"]
    one_class = uploads.extract_zip(zipped({"cat/1.png": b"1", "cat/2.png": b"2"}), tmp_path)
    assert one_class.parent == tmp_path / uploads.UPLOADS  # the library will say it has one class only
    assert len(list((tmp_path / uploads.UPLOADS).iterdir())) == 3  # no partial extraction is left


@pytest.mark.parametrize("name", ["../evil.png", "pets/../../evil.png", "/tmp/evil.png", "pets\\..\\..\\evil.png"])
def test_a_zip_that_would_write_outside_its_folder_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="a path that leads out of its folder"):
        uploads.extract_zip(zipped({"pets/cat/1.png": b"1", name: b"x"}), tmp_path / "runs")
    assert not list(tmp_path.rglob("*.png"))


def test_a_zip_over_the_limits_or_not_a_zip_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_BYTES", 2**20)
    bomb = zipped({"cat/zeros.png": bytes(3 * 2**20), "dog/1.png": b"1"})  # 3 MB of zeros compress to 3 kB
    assert len(bomb) < 10_000
    with pytest.raises(ValueError, match="^it holds 3 MB once extracted, more than the 1 MB a zip may hold here: "
                                         "extract it yourself and choose \"An image folder on this computer\"."):
        uploads.extract_zip(bomb, tmp_path)
    monkeypatch.setattr(uploads, "MAX_FILES", 2)
    with pytest.raises(ValueError, match="^it holds 3 files, more than the 2 a zip may hold here"):
        uploads.extract_zip(zipped({"cat/1.png": b"1", "cat/2.png": b"2", "dog/3.png": b"3"}), tmp_path)
    with pytest.raises(ValueError, match="^it cannot be read as a zip"):
        uploads.extract_zip(b"PK\x03\x04 not really", tmp_path)
    assert not list(tmp_path.rglob("*.png"))


# -- the Experiments page -----------------------------------------------------------------------
def test_experiment_labels_and_tables():
    status = {"name": "degradation", "size": "quick", "seed": 3, "backend": "torch", "state": "completed"}
    assert run_rows.experiment_label(status, "e1").endswith(" · quick · seed 3 · PyTorch (e1)")
    assert run_rows.experiment_label({}, "e2") == "? · ? · seed ? · ? (e2)"
    table = run_rows.results_table({"e1": status})
    assert table.to_dict("records")[0]["backend"] == "PyTorch"
    assert list(run_rows.summary_table({"n": 12345, "x": 0.123456, "ok": False})["value"]) == ["12,345", "0.1235",
                                                                                               "False"]


def test_the_scoreboard_counts_the_measured_claims_that_agree():
    board = pd.DataFrame({"claim": ["a", "b", "c"], "verdict": ["agrees", "does not agree", "not yet run"],
                          "measured": ["1", "2", ""], "criterion": ["x"] * 3, "paper": ["p"] * 3})
    table, agree, measured = run_rows.scoreboard_table(board, "quick")
    assert (agree, measured) == (1, 2)
    assert list(table.columns) == ["verdict", "measured (quick)", "criterion", "the paper"]
    assert list(table["verdict"]) == ["✓ agrees", "✗ does not agree", "· not yet run"]


# -- the Design and Export pages ----------------------------------------------------------------
def test_stages_are_added_and_removed_as_copies():
    design = designs.preset_design("mnist_resnet")
    wider = designs.with_stage(design)
    assert len(wider["stages"]) == len(design["stages"]) + 1
    assert wider["stages"][-1]["strides"] == 2
    assert designs.with_stage({**design, "block": "dense"})["stages"][-1] == design["stages"][-1]
    assert designs.without_stage(wider, 0)["stages"] == wider["stages"][1:]
    assert designs.without_stage(design, 0)["stages"] == design["stages"]  # the last stage stays


def test_the_count_tables():
    summary = {"stages": [{"name": "stage1", "blocks": 2, "output_shape": [None, 28, 28, 16], "trainable": 10,
                           "non_trainable": 2, "macs": 2_000_000}],
               "layers": [{"name": "conv", "kind": "Conv2D", "stage": 0, "block": 0, "output_shape": [None, 10],
                           "trainable": 10, "non_trainable": 0, "macs": 0}]}
    assert count_tables.stage_frame(summary).iloc[0]["output shape"] == "?×28×28×16"
    layer = count_tables.layer_frame(summary).iloc[0]
    assert layer["stage"] is None and layer["block"] is None and layer["kind"] == "Conv2D"


def test_reading_an_uploaded_description():
    text = Architecture.from_dict(DESIGN).to_json()
    assert designs.read_description(text.encode(), "a.json").name == "mnist_resnet"
    config = json.dumps({"architecture": json.loads(text), "seed": 0}).encode()
    assert designs.read_description(config, "config.json").to_dict() == Architecture.from_dict(DESIGN).to_dict()
    with pytest.raises(ValueError, match="^That file cannot be read: "):
        designs.read_description(b"{", "a.json")
    with pytest.raises(ValueError, match="^b.json is not a valid architecture: "):
        designs.read_description(b'{"stages": 3}', "b.json")


def test_share_links_and_file_names():
    assert designs.share_link("https://host/app/export/", "preset=x") == "https://host/app/?preset=x"
    assert designs.share_link("", "preset=x") == "?preset=x"
    assert designs.file_stem("ResNet-50 (B)") == "ResNet-50__B_"


# -- the Take apart page ------------------------------------------------------------------------
def test_sources_pair_a_run_with_its_twin(runs_dir):
    resnet = completed_run(runs_dir, "run-r")
    plain = completed_run(runs_dir, "run-p", residual=False)
    found = dissect.sources([resnet, plain])
    assert {"Run run-r", "Run run-p"} <= set(found)
    config, status, source, stamp = found["Run run-r"]
    assert status["state"] == "completed" and source == f"run:{resnet.model_path}" and stamp == 0.0
    kind, picked = dissect.networks("Run run-p", found)
    assert kind == "plain" and picked["resnet"][1] == source
    alone = dissect.sources([resnet])
    assert dissect.networks("Run run-r", alone)[1].keys() == {"resnet"}


def test_lesion_charts():
    study = {"intact": 0.98, "each": [0.5, 0.97], "random": {"k": [1], "accuracy": [0.7]}}
    one, several = dissect.lesion_charts({"resnet": study, "plain": {**study, "intact": 0.9}})
    assert set(one.data["network"]) == {"ResNet", "plain twin"}
    assert list(several.data["k"]) == [0, 1, 0, 1]
    assert dissect.ratio_chart([0.1, 0.2]).data["block"].tolist() == [1, 2]
    gradient = {"k": [0, 1, 2], "share": [0.2, 0.5, 0.3]}
    assert "The 2^2 paths" in json.dumps(dissect.path_chart(2, gradient).to_dict())


def test_a_run_config_without_residual_is_a_resnet():
    config = RunConfig.from_dict({"architecture": {"name": "x"}, "dataset": {"name": "mnist_sample"}})
    found = {"Run a": (config, {"state": "completed"}, "run:a", 0.0)}
    assert dissect.networks("Run a", found)[0] == "resnet"


def test_a_run_whose_request_cannot_be_read_is_not_taken_apart():
    config = RunConfig.from_dict({"architecture": DESIGN, "dataset": {"name": "mnist_sample", "validation_split": 0.1},
                                  "recipe": {"batch_size": "32"}})
    assert dissect.problem(config, {"state": "completed"}) == (
        "its config.json cannot be read: recipe: batch_size='32' is not allowed: an integer in [1, 2,147,483,647].")
