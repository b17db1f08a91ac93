"""Device settings: op determinism and mixed precision as options, proved on a CPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.builder import load
from cnnbp.train import device as devices


def determinism_on() -> bool:
    from tensorflow.python.framework import config
    return config.is_op_determinism_enabled()


def test_auto_means_deterministic_on_cpu_and_fast_on_gpu():
    assert devices.resolve("auto", True) is True and devices.resolve("auto", False) is False
    assert devices.resolve(True, False) is True and devices.resolve(False, True) is False


def test_mixed_precision_auto_is_bfloat16_on_gpus_with_bf16_cores_and_float32_elsewhere():
    """``auto``: bfloat16 where it was measured to pay (JAX on an H200), float32 elsewhere;
    the explicit settings mean the same policy on every device."""
    assert devices.policy("auto") == "float32"
    assert devices.policy("auto", bf16_gpus=True) == "mixed_bfloat16"
    for setting, expected in ((False, "float32"), (True, "mixed_float16"),
                              ("float16", "mixed_float16"), ("bfloat16", "mixed_bfloat16")):
        assert devices.policy(setting) == devices.policy(setting, True) == expected


@pytest.mark.parametrize("capability, cores", [("9.0", True), ("8.0", True), ("8.6", True),
                                               ("7.5", False), ("6.1", False), (None, False),
                                               ("", False), ("gfx90a", False)])
def test_bf16_cores_are_read_from_the_compute_capability(capability, cores):
    from types import SimpleNamespace
    device = SimpleNamespace() if capability is None else \
        SimpleNamespace(compute_capability=capability)
    assert devices.has_bf16_cores(device) is cores


def test_auto_on_the_jax_cpu_is_float32():
    """The JAX configuration path: no GPU here, so auto keeps float32."""
    code = ("import keras; from cnnbp.train import device as d; c = d.configure(); "
            "print(c.policy, c.mixed_precision, keras.mixed_precision.global_policy().name)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["float32", "False", "float32"]


def test_determinism_follows_the_setting(keras):
    try:
        d = devices.configure(deterministic=False)
        assert not d.deterministic and not determinism_on()
        d = devices.configure()  # auto, on a CPU
        assert d.deterministic and determinism_on() and d.name == "CPU"
        assert not d.mixed_precision
    finally:
        devices.configure()


@pytest.mark.parametrize("setting, policy", [("true", "mixed_float16"),
                                             ("bfloat16", "mixed_bfloat16")])
def test_mixed_precision_forced_on_cpu_trains_and_exports_at_the_parity_bar(tmp_path, keras,
                                                                             setting, policy):
    """Trained under mixed_float16 or mixed_bfloat16, the saved model is float32 and its ONNX
    export passes the float32 parity bar (1e-5)."""
    from cnnbp.export.bundle import export_bundle
    from cnnbp.train.fit import train
    try:
        m = train(load("digits", ["training.epochs=1", "training.augment.translate=0",
                                  f"training.mixed_precision={setting}"]),
                  "digits", tmp_path / "run", quiet=True)
    finally:
        devices.configure()
    assert m.mixed_precision and m.precision == policy and m.test_accuracy > 0.3
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    assert {w.dtype for w in model.weights} == {"float32"}
    assert all(layer.dtype_policy.name == "float32" for layer in model.layers)
    exported = export_bundle(tmp_path / "run", tmp_path / "bundle", with_variants=False)
    report = json.loads((tmp_path / "bundle" / "validation.json").read_text())
    assert exported.report.passed and report["passed"]
    assert report["atol"] <= 1e-5 and report["max_abs"] <= 1e-5
    assert np.isfinite(report["max_abs"])


def test_xla_is_off_on_a_cpu_unless_asked_for(keras):
    from cnnbp.contract.errors import UsageError
    try:
        assert devices.configure().jit_compile is False  # auto: measured slower on this CPU
        assert devices.configure(deterministic=False, xla=True).jit_compile is True
        with pytest.raises(UsageError, match="deterministic: false"):
            devices.configure(xla=True)  # Keras would drop XLA under op determinism, silently
    finally:
        devices.configure()


def test_xla_setting_reaches_the_compiled_model(tmp_path, keras):
    from cnnbp.train.session import compile_model, prepare
    session = prepare(load("digits", ["training.epochs=1", "training.xla=true",
                                      "training.deterministic=false"]), "digits",
                      tmp_path / "run")
    try:
        assert compile_model(session).jit_compile is True
    finally:
        session.pipelines.close()
        devices.configure()
