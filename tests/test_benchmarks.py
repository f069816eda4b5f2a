"""Smoke tests of benchmarks/: the benchmark keeps working, at a tiny size.

No test here asserts a time: the numbers live in benchmarks/RESULTS.md.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_resnets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import call_overhead  # noqa: E402
import inference  # noqa: E402
import keras_hand  # noqa: E402
import resnet_benchmark as rb  # noqa: E402
import user_script  # noqa: E402
import settings  # noqa: E402
import time_to_accuracy as tta  # noqa: E402
import traced_step  # noqa: E402

BACKEND = keras.backend.backend()
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _trainable(model):
    return keras_resnets.count_params(model)["trainable"]


def test_windows_take_the_steps_after_warm_up():
    marks = [(i, float(i)) for i in range(10)]  # one second a step
    rates = rb._windows(marks, start_time=-1.0, warmup=2, windows=3, window_steps=2, batch=8)
    assert rates == [8.0, 8.0, 8.0]
    # steps_per_execution=4: a mark every 4 steps; windows span whole executions.
    marks = [(3, 4.0), (7, 6.0), (11, 8.0), (15, 10.0)]
    rates = rb._windows(marks, start_time=0.0, warmup=3, windows=2, window_steps=3, batch=2)
    assert rates == [4.0, 4.0]
    summary = rb._summary([3.0, 1.0, 2.0])
    assert (summary["median"], summary["min"], summary["max"]) == (2.0, 1.0, 3.0)
    assert rb._summary([])["median"] is None


def test_the_reference_brackets_each_scale_and_ratios_take_its_mean():
    runs = rb.plan(["mnist", "cifar"], ["jax"], ["best"], ["ours"], tiny=True,
                   native_variants=("reference",))
    for scale in ("mnist", "cifar"):
        rows = [r for r in runs if r["scale_name"] == scale]
        assert [r["framework"] for r in rows] == ["native", "keras", "native"]
        assert rb.label(rows[-1]) == "native PyTorch (lecture code), run again last"
    rows = [r for r in runs if r["scale_name"] == "mnist"]
    for r, train in zip(rows, (60.0, 75.0, 80.0)):  # the machine sped up by a third
        r["result"] = {kind: {"median": train, "min": train, "max": train}
                       for kind in ("train", "infer", "train_cpu")}
        r["result"].update(first_step_s=1.0, peak_rss_mib=100.0)
    assert rb.reference_figures(rows) == (70.0, 70.0, 70.0)
    ours = next(line for line in rb.table(rows, "mnist").splitlines() if "jax ours" in line)
    assert ours.startswith("| jax ours (best) | 75.0 (75.0-75.0) | 1.07x | 75.0 | 1.07x |")


def test_settings_resolve_and_describe():
    for backend in rb.BACKENDS:
        default = settings.resolve("default", backend)
        assert default == settings.DEFAULT
        best = settings.resolve("best", backend)
        assert set(best) == set(settings.DEFAULT)
        json.dumps(best)  # travels to a worker process
    assert settings.describe(settings.DEFAULT) == "Keras defaults"
    # Every worker imports keras_resnets first: "default" opts out of its settings, "plain"
    # takes what the import sets, "best" sets them itself.
    assert settings.DEFAULT["env"] == {"KERAS_RESNETS_FAST_CPU": "0"}
    plain = settings.resolve("plain", "tensorflow")
    assert plain["env"] == {} and settings.describe(plain) == "what import keras_resnets sets"
    assert settings.resolve("best", "tensorflow")["env"] == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    # The precision default's "without" row: the plain path, pinned to float32.
    plain32 = settings.resolve("plain-float32", "torch")
    assert plain32 == {**plain, "env": {"KERAS_RESNETS_DTYPE_POLICY": "float32"}}
    assert settings.describe(plain32) == "KERAS_RESNETS_DTYPE_POLICY=float32"
    with pytest.raises(ValueError, match="settings='fast'"):
        settings.resolve("fast", "jax")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_hand_written_models_match_keras_resnets(data_format):
    pairs = [
        (keras_hand.mnist_resnet(25, data_format=data_format),
         keras_resnets.mnist_resnet(data_format=data_format)),
        (keras_hand.cifar_resnet(20, data_format=data_format),
         keras_resnets.cifar_resnet(20, data_format=data_format)),
    ]
    for hand, ours in pairs:
        assert _trainable(hand) == _trainable(ours)
        assert hand.output_shape == ours.output_shape
    assert _trainable(pairs[0][0]) == 117802


@pytest.mark.slow
def test_hand_written_resnet50_matches_keras_resnets():
    hand = keras_hand.resnet50(input_size=64)
    ours = keras_resnets.resnet50(input_shape=(64, 64, 3))
    assert _trainable(hand) == _trainable(ours) == 25_557_032


@pytest.mark.skipif(not HAS_TORCH, reason="the native reference needs torch")
def test_native_references_have_the_papers_parameter_counts():
    import native_torch

    def count(model):
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    assert count(native_torch.ResNet(16, 3, 25)) == 117802  # the lecture's slide 7
    assert count(native_torch.CifarResNet(20)) == 269722 == _trainable(keras_resnets.cifar_resnet(20))
    assert count(native_torch.ResNet50()) == 25_557_032  # torchvision's resnet50


def _jax_from_torch(model):
    """The `native_jax` parameters and statistics of a `native_torch` model (same weights)."""
    params, stats = {"blocks": []}, {"blocks": []}
    names = {"weight": "kernel", "bias": "bias", "running_mean": "mean", "running_var": "var"}
    for name, tensor in model.state_dict().items():
        *path, leaf = name.split(".")
        if leaf == "num_batches_tracked":
            continue
        if path[0] in ("resblocks", "blocks"):
            path = ["blocks", int(path[1]), *path[2:]]
        value = tensor.detach().numpy().copy()  # not a view of weights that the step changes
        if path[-1].startswith("conv") and leaf == "weight":
            value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif path[-1] == "fc" and leaf == "weight":
            value = value.T
        key = "scale" if path[-1].startswith("bn") and leaf == "weight" else names[leaf]
        node = stats if leaf.startswith("running") else params
        for part in path:
            if isinstance(part, int):
                node += [{} for _ in range(part + 1 - len(node))]
                node = node[part]
            else:
                node = node.setdefault(part, [] if part == "blocks" else {})
        node[key] = value
    return params, stats


@pytest.mark.skipif(not HAS_TORCH or importlib.util.find_spec("jax") is None,
                    reason="compares the plain JAX program with the lecture's PyTorch code")
@pytest.mark.parametrize("name", ["mnist", "cifar"])
def test_plain_jax_program_trains_as_the_pytorch_one(name, rng):
    import jax
    import native_jax
    import native_torch
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    if name == "mnist":
        model, net, shape = native_torch.ResNet(16, 3, 2), native_jax.mnist_resnet(2), (8, 1, 28, 28)
    else:
        model, net, shape = native_torch.CifarResNet(8), native_jax.cifar_resnet(8), (8, 3, 32, 32)
    template, _ = net.init(jax.random.key(0))
    params, stats = _jax_from_torch(model)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(template)
    assert native_jax.count(params) == sum(p.numel() for p in model.parameters())
    x, y = rng.standard_normal(shape).astype("float32"), rng.integers(0, 10, 8)
    # One SGD step with momentum on each side.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    model.zero_grad()
    loss.backward()
    optimizer.step()
    step = native_jax.sgd_step(net, learning_rate=0.1, momentum=0.9)
    params, stats, _, jax_loss = step(params, stats, native_jax.velocity(params, 0.9),
                                      x.transpose(0, 2, 3, 1), y)
    np.testing.assert_allclose(float(jax_loss), loss.item(), rtol=1e-5)
    after, after_stats = _jax_from_torch(model)
    for ours, theirs in ((params, after), (stats, after_stats)):
        for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-4, atol=1e-5)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    predicted = native_jax.predictor(net)(params, stats, x.transpose(0, 2, 3, 1))
    np.testing.assert_allclose(np.asarray(predicted), expected, rtol=1e-4, atol=1e-4)


def test_plain_jax_programs_have_the_papers_parameter_counts():
    jax = pytest.importorskip("jax")
    import native_jax

    def count(net):
        return native_jax.count(net.init(jax.random.key(0))[0])

    assert count(native_jax.mnist_resnet()) == 117802  # the lecture's slide 7
    assert count(native_jax.cifar_resnet(20)) == 269722 == _trainable(keras_resnets.cifar_resnet(20))
    with pytest.raises(ValueError, match="relu='gelu'"):
        native_jax.mnist_resnet(relu="gelu")


def test_native_rows_run_where_they_can():
    def variants(scale, bf16):
        runs = rb.plan([scale], [], [], [], tiny=True, bf16=bf16)
        return [(r["variant"], r.get("autocast")) for r in runs if not r.get("again")]

    assert variants("mnist", bf16=True) == [
        ("reference", None), ("cl", None), ("cl-bf16", None), ("compile", True), ("jax", None),
        ("jax-ynn", None)]
    # No bfloat16 in hardware: no autocast row, and torch.compile in float32.
    assert variants("cifar", bf16=False) == [
        ("reference", None), ("cl", None), ("compile", False), ("jax", None), ("jax-ynn", None)]
    assert [v for v, _ in variants("imagenet", bf16=True)] == ["reference", "cl", "cl-bf16",
                                                               "compile"]
    runs = rb.plan(["mnist"], [], [], [], tiny=True, bf16=True,
                   native_variants=("compile", "jax-ynn", "jax-max"))
    assert [rb.label(r) for r in runs] == [
        "native PyTorch + channels_last + bf16 autocast + torch.compile",
        "plain JAX, YNN reductions", "plain JAX, jax.nn.relu"]
    assert [r["backend"] for r in runs] == ["torch", "jax", "jax"]
    assert runs[1]["setting"]["env"]["XLA_FLAGS"].startswith("--xla_cpu_experimental_ynn")
    assert rb.cpu_has_bf16({"avx512f", "amx_bf16"}) and not rb.cpu_has_bf16({"avx512f"})


def test_ratios_to_the_best_native_row_of_each_framework():
    runs = rb.plan(["mnist"], ["tensorflow", "jax", "torch"], ["plain"], ["ours"], tiny=True,
                   bf16=True, native_variants=("reference", "cl-bf16", "jax"))
    figures = {"reference": 60.0, "cl-bf16": 100.0, "jax": 50.0, "tensorflow": 120.0,
               "torch": 90.0, "keras jax": 55.0}
    for r in runs:
        name = r["variant"] if r["framework"] == "native" else r["backend"]
        train = 80.0 if r.get("again") else figures["keras jax" if r["model"] == "ours"
                                                    and name == "jax" else name]
        r["result"] = {kind: {"median": train, "min": train, "max": train}
                       for kind in ("train", "infer", "train_cpu")}
        r["result"].update(first_step_s=1.0, peak_rss_mib=100.0)
    best = rb.best_native(runs)
    assert best["torch"]["train"] == (100.0, "native PyTorch + channels_last + bf16 autocast")
    assert best["jax"]["train"] == (50.0, "plain JAX")
    lines = {line.split(" | ")[0][2:]: line.split(" | ") for line in
             rb.table(runs, "mnist").splitlines()[2:]}
    # columns: run, train, vs ref, inference, vs ref, train vs best native, inference vs best
    assert lines["tensorflow ours (plain)"][2] == "1.71x"  # to the reference's mean, 70
    assert lines["tensorflow ours (plain)"][5:7] == ["1.20x", "1.20x"]
    assert lines["torch ours (plain)"][5] == "0.90x"
    assert lines["jax ours (plain)"][5] == "1.10x"  # to plain JAX
    assert lines["native PyTorch (lecture code)"][5] == "0.60x"
    assert "PyTorch (held against by TensorFlow and PyTorch): training native PyTorch + " \
           "channels_last + bf16 autocast (100.0 img/s)" in rb.best_native_line(runs, "mnist")


def test_keras_worker_runs_in_process():
    scale = rb._scale_spec("mnist", tiny=True)
    for model in ("ours", "hand"):
        spec = {"framework": "keras", "model": model, "scale": scale,
                "setting": settings.resolve("default", BACKEND)}
        result = rb.run_keras(spec)
        assert result["params"] == _trainable(keras_resnets.mnist_resnet(nb_blocks=2))
        for kind in ("train", "infer"):
            assert len(result[kind]["windows"]) == scale["windows" if kind == "train" else "infer_windows"]
            assert math.isfinite(result[kind]["median"]) and result[kind]["median"] > 0
        assert result["peak_rss_mib"] > 0


# The native rows each pass times: the PyTorch ones in the PyTorch pass, the plain JAX ones in
# the JAX pass, and channels_last beside TensorFlow (its rows are held against PyTorch's).
PASS_NATIVE = {"torch": "reference,cl-bf16,compile", "jax": "jax,jax-max", "tensorflow": "cl"}


def test_benchmark_command_line_tiny(tmp_path):
    output, raw = tmp_path / "RESULTS.md", tmp_path / "results.json"
    natives = PASS_NATIVE[BACKEND] if HAS_TORCH or BACKEND == "jax" else ""
    cmd = [sys.executable, os.path.join(BENCH, "resnet_benchmark.py"), "--tiny",
           "--backends", BACKEND, "--scales", "mnist", "--settings", "best,keras-first",
           "--models", "ours", "--native", natives, "--ablations", "", "--output", str(output),
           "--json", str(raw)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = output.read_text()
    assert "<!-- BEGIN CPU mnist RESULTS -->" in text and "| run |" in text
    assert f"| {BACKEND} ours (best) |" in text and f"| {BACKEND} ours (keras-first) |" in text
    results = json.loads(raw.read_text())["results"]
    assert results and all("result" in r for r in results)
    planned = rb.plan(["mnist"], [], [], [], tiny=True, native_variants=natives.split(","))
    assert {rb.label(r) for r in planned} <= {rb.label(r) for r in results}
    if natives:  # every Keras row has a ratio to its framework's best native row
        ours = next(line for line in text.splitlines() if f"| {BACKEND} ours (best) |" in line)
        assert ours.split(" | ")[5].endswith("x")
    if BACKEND == "torch" and rb.cpu_has_bf16():
        assert "| native PyTorch + channels_last + bf16 autocast + torch.compile |" in text


def test_peak_memory_is_the_workers_own(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t 9000 kB\nVmHWM:\t    2048 kB\n")
    assert rb._peak_rss_mib(str(status)) == 2.0
    # A child of this process (which holds Keras and a backend) starts from nothing.
    code = "import resnet_benchmark as rb; print(rb._peak_rss_mib())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=BENCH, check=True)
    if os.path.exists("/proc/self/status"):
        assert float(child.stdout) < rb._peak_rss_mib()


def test_call_overhead_splits_a_call_into_its_fixed_cost_and_steps(tmp_path):
    assert call_overhead.fixed_and_step(0.5, 1.3, 5) == (0.3, 0.2)
    output = tmp_path / "RESULTS.md"
    cmd = [sys.executable, os.path.join(BENCH, "call_overhead.py"), "--tiny", "--backends",
           BACKEND, "--output", str(output), "--profile", str(tmp_path / "profiles")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split(" | ") for line in output.read_text().splitlines()
            if line.startswith(f"| {BACKEND} ")]
    assert [(r[0], r[1]) for r in rows] == [
        (f"| {BACKEND} {model}", kind) for model in ("ours", "hand")
        for kind in ("fit", "evaluate", "predict")]
    # first call s and 1-step call ms: durations, written rounded (a tiny predict's first call
    # can read 0.00 s on a fast path), so only their form is checked, never a time
    assert all(float(r[2]) >= 0 and float(r[3]) >= 0 for r in rows)
    assert sorted(os.listdir(tmp_path / "profiles")) == sorted(
        f"{BACKEND}-{model}-{kind}.prof" for model in ("ours", "hand")
        for kind in ("fit", "evaluate", "predict"))


# The native inference rows each pass times, as PASS_NATIVE.
PASS_INFERENCE = {"torch": "no_grad,inference_mode,cl-bf16", "jax": "jax", "tensorflow": ""}


def test_inference_by_batch_size(tmp_path):
    natives = PASS_INFERENCE[BACKEND] if HAS_TORCH or BACKEND == "jax" else ""
    output = tmp_path / "RESULTS.md"
    cmd = [sys.executable, os.path.join(BENCH, "inference.py"), "--tiny", "--backends", BACKEND,
           "--models", "ours", "--native", natives, "--output", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = output.read_text()
    planned = inference.plan([BACKEND], ["ours"], inference.MODES, natives.split(",") if natives
                             else [], "mnist", tiny=True)
    for b in inference.TINY["batches"]:
        section = text.split(f"Batch {b}:")[1].split("Batch ")[0]
        rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][1:]
        assert [r[0][2:] for r in rows] == [inference.label(r) for r in planned]
        assert all(float(r[1]) > 0 and float(r[5]) > 0 for r in rows)  # images/s, one call ms
    if BACKEND == "torch":
        ours = next(line for line in text.splitlines() if "| torch ours, predict |" in line)
        assert ours.split(" | ")[2].endswith("x") and ours.split(" | ")[4].endswith("x")


# The native rows of a user's script that each pass times, as PASS_NATIVE.
PASS_SCRIPT = {"torch": "cl-bf16", "jax": "jax", "tensorflow": ""}


def test_user_script_is_timed_whole_in_both_import_orders(tmp_path):
    natives = PASS_SCRIPT[BACKEND] if HAS_TORCH or BACKEND == "jax" else ""
    output = tmp_path / "RESULTS.md"
    cmd = [sys.executable, os.path.join(BENCH, "user_script.py"), "--tiny", "--backends",
           BACKEND, "--chunks", "0,2", "--native", natives, "--output", str(output)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in
            output.read_text().splitlines() if line.startswith("| ") and "---" not in line}
    planned = user_script.plan([BACKEND], user_script.ORDERS, [0, 2],
                               natives.split(",") if natives else [], "mnist", tiny=True)
    assert set(rows) - {"run"} == {user_script.label(r) for r in planned}
    steps = user_script.TINY["steps"]
    for order in user_script.ORDERS:
        assert rows[f"{BACKEND} ours, {order}, one fit call"][4] == "1"
        assert rows[f"{BACKEND} ours, {order}, a fit call per 2 steps"][4] == str(steps // 2)
    if natives:
        assert all(row[3].endswith("x") for name, row in rows.items() if name != "run")


def test_results_file_sections_are_replaced_in_place(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Notes\n\nkept\n")
    rb._write_section(str(path), "first", tag="CPU mnist")
    rb._write_section(str(path), "gpu table", tag="GPU")
    rb._write_section(str(path), "second", tag="CPU mnist")
    text = path.read_text()
    assert "kept" in text and "gpu table" in text and "second" in text and "first" not in text


@pytest.mark.skipif(not HAS_TORCH, reason="the GPU check asks torch")
def test_gpu_suite_says_clearly_when_there_is_no_gpu():
    if rb._gpu_available():
        pytest.skip("a GPU is visible: the suite would run")
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, "resnet_benchmark.py"), "--gpu", "--output", "-"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert "no CUDA GPU" in proc.stderr


# -- time to accuracy ---------------------------------------------------------------------------


def test_time_to_accuracy_races_on_a_fixed_split(capsys):
    spec = {**tta.SPLIT, **tta.TINY, "framework": BACKEND, "seed": 0}
    (x, y), (xh, yh) = tta._split(spec)
    assert x.shape == (256, 28, 28, 1) and xh.shape == (128, 28, 28, 1)
    assert not set(map(bytes, x)) & set(map(bytes, xh))  # no digit in both
    two_epochs = {**spec, "recipe": {**spec["recipe"], "epochs": 2}}
    order = tta._order(two_epochs, len(x))
    assert sorted(order[:256]) == sorted(order[256:]) == list(range(256))
    assert tta.main(["--worker", json.dumps(spec)]) == 0  # on target at the first evaluation
    result = json.loads(capsys.readouterr().out.split("RESULT ", 1)[1])
    curve = result["curve"]
    assert [p["steps"] for p in curve] == [2]
    assert result["dtype_policy"] == keras_resnets.mnist_resnet(nb_blocks=1).dtype_policy.name
    assert 0 < curve[0]["seconds"] and 0 <= curve[0]["accuracy"] <= 1
    unreachable = {**two_epochs, "target": 1.1}  # every evaluation of both epochs, in one fit
    curve = tta.run_keras(unreachable)["curve"]
    assert [p["steps"] for p in curve] == [2, 4, 6, 8]
    assert all(a["seconds"] < b["seconds"] for a, b in zip(curve, curve[1:]))
    if HAS_TORCH:
        assert [p["steps"] for p in tta.run_native({**unreachable, "framework": "native"})["curve"]] == [2, 4, 6, 8]


@pytest.mark.skipif(not HAS_TORCH, reason="the native reference's scheduler is PyTorch's")
def test_time_to_accuracy_decays_the_rate_at_the_same_steps_in_keras_and_pytorch():
    import torch

    from keras_resnets.training import make_schedule

    recipe = keras_resnets.Recipe.from_dict({**tta.RECIPE, "epochs": 4})
    steps = 10
    keras_rates = [float(make_schedule(recipe, steps)(k)) for k in range(4 * steps)]
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=recipe.learning_rate)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=recipe.decay_steps(steps), gamma=0.1)
    torch_rates = []
    for _ in range(4 * steps):  # the rate of each step, then the step
        torch_rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(keras_rates, torch_rates, rtol=1e-6)
    assert sorted(set(np.round(np.log10(keras_rates), 3))) == [-5, -4, -3]


def test_time_to_accuracy_table_takes_medians_over_seeds():
    def run(name, seconds, target=0.98):
        curve = [{"steps": 25, "seconds": seconds / 2, "accuracy": 0.9},
                 {"steps": 50, "seconds": seconds, "accuracy": 0.985}]
        return {"framework": name, "target": target, "curve": curve}

    results = [run("native", 10), run("jax", 8), run("native", 20), run("jax", 30),
               run("native", 30), run("jax", 8), run("torch", 5, target=0.99)]
    results[-1]["dtype_policy"] = "mixed_bfloat16"
    assert tta.reached(results[0]) == (10, 50) and tta.reached(results[-1]) is None
    lines = tta.table(results, ["native", "jax", "torch"]).splitlines()
    assert lines[2] == ("| native PyTorch (lecture code) | 20.0 (10.0-30.0) | 1.00x | 50 | 3/3 "
                        "| 0.9850 |")
    assert lines[3] == "| jax ours | 8.0 (8.0-30.0) | 2.50x | 50 | 3/3 | 0.9850 |"
    assert lines[4] == "| torch ours (mixed_bfloat16) | - | - | - | 0/1 | 0.9850 |"


def test_gpu_suite_plans_resnet50_and_the_lecture_net_on_jax_and_torch():
    runs = rb.gpu_plan(rb.GPU_BACKENDS, tiny=True)
    assert [rb.label(r) for r in runs] == [
        "native PyTorch, AMP + channels_last", "jax ours (plain)", "torch ours (plain)",
        "native PyTorch (lecture code)", "jax ours (plain)", "torch ours (plain)"]
    assert [r["mixed_precision"] for r in runs if r["framework"] == "keras"] == [
        "mixed_float16", "mixed_float16", None, None]
    assert {r["scale"]["model"] for r in runs} == {"imagenet", "mnist"}
    assert all(r["device"] == "gpu" for r in runs)
    # A dry run of the lecture net's row on this machine's device (the worker code path).
    spec = next(r for r in rb.gpu_plan([BACKEND], tiny=True)
                if r["scale"]["model"] == "mnist" and r["framework"] == "keras")
    result = rb.run_keras(spec)
    assert result["params"] == _trainable(keras_resnets.mnist_resnet(nb_blocks=2))


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch runs eagerly: there is no traced step")
def test_the_traced_step_names_the_program_the_backend_compiles():
    small = keras_resnets.presets.mnist_resnet(nb_blocks=2, nb_channels=4)
    ops = traced_step.step_ops(small, batch=2)
    assert any(op.startswith(("conv", "Conv2D")) or " x Conv2D" in op for op in ops)
    assert traced_step.digest(traced_step.step_ops(small, batch=2)) == traced_step.digest(ops)
    deeper = keras_resnets.presets.mnist_resnet(nb_blocks=3, nb_channels=4)
    assert traced_step.digest(traced_step.step_ops(deeper, batch=2)) != traced_step.digest(ops)


def _round_row(round_, label_variant, train=None, error=None):
    row = {"scale_name": "mnist", "framework": "native", "backend": "torch",
           "variant": label_variant, "settings": label_variant, "round": round_}
    if error:
        return {**row, "error": error}
    summary = rb._summary([train])
    return {**row, "result": {"train": summary, "infer": summary, "train_cpu": summary,
                              "first_step_s": round_, "peak_rss_mib": 100 + round_}}


def test_rounds_merge_into_one_row_per_run_with_medians_of_the_rounds():
    rows = [_round_row(0, "reference", 30.0), _round_row(0, "cl", 50.0),
            _round_row(1, "reference", 10.0), _round_row(1, "cl", error="exit code 1"),
            _round_row(2, "reference", 20.0), _round_row(2, "cl", 40.0)]
    reference, cl = rb.merge_rounds(rows)
    assert rb.label(reference) == "native PyTorch (lecture code)"
    assert reference["result"]["train"] == {"median": 20.0, "min": 10.0, "max": 30.0,
                                            "windows": [30.0, 10.0, 20.0]}
    assert reference["result"]["first_step_s"] == 1 and reference["result"]["peak_rss_mib"] == 102
    assert (cl["rounds"], cl["failed_rounds"]) == (2, 1)
    assert cl["result"]["train"]["median"] == 45.0
    assert "failed in 1 of its rounds" in rb.table([reference, cl], "mnist")
    failed = rb.merge_rounds([_round_row(0, "cl", error="timed out")])
    assert failed[0]["error"] == "timed out" and "result" not in failed[0]


def _inference_row(variant, rate=None, error=None):
    row = {"framework": "native", "backend": "torch", "variant": variant,
           "sizes": {"batches": (1, 64)}}
    if error:
        return {**row, "error": error}
    return {**row, "result": {str(b): {"images_per_s": rate * b, "call_s": b / rate} for b in (1, 64)}}


def test_inference_rounds_merge_into_one_row_per_run_with_their_range():
    rows = [_inference_row("no_grad", 30.0), _inference_row("inference_mode", 50.0),
            _inference_row("no_grad", 10.0), _inference_row("inference_mode", error="exit code 1"),
            _inference_row("no_grad", 20.0), _inference_row("inference_mode", 40.0)]
    no_grad, inference_mode = inference.merge_rounds(rows)
    assert no_grad["result"]["64"] == {"images_per_s": 1280.0, "range": (640.0, 1920.0),
                                       "call_s": 3.2}
    assert (inference_mode["rounds"], inference_mode["failed_rounds"]) == (2, 1)
    table = inference.table([no_grad, inference_mode], 64)
    assert "| 1280.0 (640.0-1920.0) | 1.00x |" in table
    assert "inference_mode (failed in 1 of its rounds)" in table
    failed, = inference.merge_rounds([_inference_row("no_grad", error="timed out")])
    assert failed["error"] == "timed out" and "result" not in failed


def test_user_script_rounds_merge_into_one_row_per_run_with_their_range():
    def row(chunk, rate=None, error=None):
        run = {"framework": "keras", "backend": "jax", "order": "keras-first", "chunk": chunk}
        return {**run, "error": error} if error else {
            **run, "result": {"seconds": 600 / rate, "images_per_s": rate, "calls": 1,
                              "import_s": 2.0, "dtype_policy": "float32"}}

    one, per_25 = user_script.merge_rounds([row(0, 100.0), row(25, error="timed out"),
                                            row(0, 300.0), row(25, 50.0), row(0, 200.0)])
    assert (one["result"]["images_per_s"], one["result"]["range"], one["result"]["seconds"]) == \
        (200.0, (100.0, 300.0), 3.0)
    assert (per_25["rounds"], per_25["failed_rounds"]) == (1, 1)
    table = user_script.table([one, per_25])
    assert "| jax ours, keras-first, one fit call | 3.0 | 200.0 (100.0-300.0) |" in table
    assert "a fit call per 25 steps (failed in 1 of its rounds) | 12.0 | 50.0 |" in table
