"""The environment of worker processes: the backend, and the fast CPU settings that a backend
reads when it is imported (kept as the user set them)."""

import pytest

from keras_resnets import environment
from keras_resnets.environment import YNN_REDUCE, fast_cpu_variables, worker_environment


def test_a_worker_gets_its_backend_and_keeps_the_rest():
    env = worker_environment("torch", {"PATH": "/bin", "KERAS_BACKEND": "jax"})
    assert env["KERAS_BACKEND"] == "torch" and env["PATH"] == "/bin"
    assert env["PYTHONUNBUFFERED"] == "1"


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
