"""The environment of a training process: the backend, and the fast CPU settings that a backend
reads when it is imported, set by ``import keras_resnets`` and for worker processes (kept as
the user set them)."""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_resnets.runtime import environment
from keras_resnets.runtime.environment import (
    YNN_REDUCE,
    configured_backend,
    core_share,
    fast_cpu_variables,
    quiet_backend_start,
    use_fast_cpu_settings,
    worker_environment,
)

BACKEND = keras.backend.backend()


def test_a_worker_gets_its_backend_and_keeps_the_rest():
    env = worker_environment("torch", {"PATH": "/bin", "KERAS_BACKEND": "jax"})
    assert env["KERAS_BACKEND"] == "torch" and env["PATH"] == "/bin"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_workers_that_train_at_once_share_the_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert core_share(1, {}) == {} and "OMP_NUM_THREADS" not in worker_environment("torch", {})
    assert core_share(3, {}) == {"OMP_NUM_THREADS": "2"}
    assert core_share(16, {}) == {"OMP_NUM_THREADS": "1"}
    assert core_share(3, {"OMP_NUM_THREADS": "4"}) == {}  # the user's choice
    assert worker_environment("torch", {}, workers=2)["OMP_NUM_THREADS"] == "4"
    assert worker_environment("jax", {"OMP_NUM_THREADS": "3"}, workers=2)["OMP_NUM_THREADS"] == "3"


def test_tensorflow_gets_onednn_unless_the_user_chose():
    assert fast_cpu_variables("tensorflow", {}) == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert fast_cpu_variables("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"}) == {}
    assert worker_environment("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"})["TF_ENABLE_ONEDNN_OPTS"] == "0"


@pytest.mark.parametrize(("version", "flagged"), [((0, 10), True), ((0, 11), True), ((0, 4), False), (None, False)])
def test_jax_gets_ynn_reductions_only_where_jaxlib_knows_the_flag(version, flagged, monkeypatch):
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: version)
    variables = fast_cpu_variables("jax", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    if flagged:  # added to the user's flags, not instead of them
        assert variables == {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {YNN_REDUCE}"}
    else:  # an unknown flag would abort XLA
        assert variables == {}


def test_jax_flags_that_already_choose_ynn_are_left_alone():
    assert fast_cpu_variables("jax", {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_NONE"}) == {}


def test_pytorch_needs_nothing():
    assert fast_cpu_variables("torch", {}) == {}


# -- import keras_resnets: the fast settings in the current process -------------------------------

FAST_VARIABLES = ("TF_ENABLE_ONEDNN_OPTS", "XLA_FLAGS")

# Reports what the process got: the variables, the warnings of the imports, and whether the
# backend runs with them (TensorFlow: oneDNN on; JAX: a step compiles, an unknown flag aborts).
REPORT = """
import json, os, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    {imports}
    import keras_resnets.training.loop, keras_resnets.cli  # later imports add no second note
backend = keras.backend.backend()
effect = None
if backend == "tensorflow":
    from tensorflow.python.util import _pywrap_util_port
    effect = bool(_pywrap_util_port.IsMklEnabled())
elif backend == "jax":
    effect = float(keras.ops.sum(keras.ops.ones((4, 4)))) == 16.0
print(json.dumps({{"env": {{k: os.environ.get(k) for k in {variables}}}, "effect": effect,
                  "notes": [str(w.message) for w in caught if "keras_resnets" in str(w.message)]}}))
"""


def _report(imports, **environ):
    env = {k: v for k, v in os.environ.items() if k not in FAST_VARIABLES}
    env.update(KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3", **environ)
    script = REPORT.format(imports=imports, variables=FAST_VARIABLES)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_keras_resnets_first_switches_the_fast_settings_on():
    report = _report("import keras_resnets; import keras")
    expected = fast_cpu_variables(BACKEND, {})
    assert {k: v for k, v in report["env"].items() if v is not None} == expected
    assert report["notes"] == []
    if BACKEND == "tensorflow":
        assert report["effect"] is True  # oneDNN is on (this CPU has no AVX-512: off by default)
    elif BACKEND == "jax":
        assert report["effect"] is True


@pytest.mark.slow
@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch needs no variable: there is no note")
def test_importing_the_backend_first_gives_one_note_and_changes_nothing():
    report = _report("import keras; import keras_resnets")
    assert report["env"] == dict.fromkeys(FAST_VARIABLES)
    assert len(report["notes"]) == 1
    assert "import keras_resnets first" in report["notes"][0]
    for key, value in fast_cpu_variables(BACKEND, {}).items():
        assert f"{key}='{value}'" in report["notes"][0]


def test_a_variable_the_user_set_is_kept(monkeypatch):
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: (0, 10))
    environ = {"KERAS_BACKEND": "tensorflow", "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert use_fast_cpu_settings(environ, modules={}) == {}
    assert environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    environ = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    use_fast_cpu_settings(environ, modules={})
    assert environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {YNN_REDUCE}"


def test_keras_resnets_fast_cpu_0_keeps_the_backends_defaults(monkeypatch):
    monkeypatch.setattr(environment, "_jaxlib_version", lambda: (0, 10))
    for backend in ("tensorflow", "jax"):
        environ = {"KERAS_BACKEND": backend, "KERAS_RESNETS_FAST_CPU": "0"}
        assert use_fast_cpu_settings(environ, modules={}) == {}
        assert worker_environment(backend, environ).keys() == {*environ, "TF_CPP_MIN_LOG_LEVEL",
                                                               "PYTHONUNBUFFERED"}


def test_workers_get_the_users_environment_not_what_the_import_set(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--mine")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    changed = {"XLA_FLAGS": ("--mine", f"--mine {YNN_REDUCE}"),
               "TF_ENABLE_ONEDNN_OPTS": (None, "1")}
    monkeypatch.setattr(environment, "_CHANGED", changed)
    for key, (_, ours) in changed.items():
        monkeypatch.setenv(key, ours)
    user = environment.user_environment()
    assert user["XLA_FLAGS"] == "--mine" and "TF_ENABLE_ONEDNN_OPTS" not in user
    assert worker_environment("torch")["XLA_FLAGS"] == "--mine"  # a PyTorch worker: the user's
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # set by the user since: theirs
    assert environment.user_environment()["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_the_backend_comes_from_the_variable_then_keras_json(tmp_path):
    assert configured_backend({"KERAS_HOME": str(tmp_path)}) == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert configured_backend({"KERAS_HOME": str(tmp_path)}) == "jax"
    assert configured_backend({"KERAS_HOME": str(tmp_path), "KERAS_BACKEND": "torch"}) == "torch"


def test_quiet_backend_start_hides_file_descriptor_2_and_shows_it_on_failure(capfd):
    with quiet_backend_start():
        os.write(2, b"start-up noise\n")
    assert "start-up noise" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), quiet_backend_start():
        os.write(2, b"why it failed\n")
        raise RuntimeError
    assert "why it failed" in capfd.readouterr().err
