"""Device settings: op determinism and mixed precision as options, proved on a CPU."""
import json

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


def test_mixed_precision_is_off_unless_asked_for():
    """``auto`` is float32 on every device (measured no faster mixed on an H200 with JAX)."""
    assert devices.use_mixed("auto") is False
    assert devices.use_mixed(True) is True and devices.use_mixed(False) is False


def test_determinism_follows_the_setting(keras):
    try:
        d = devices.configure(deterministic=False)
        assert not d.deterministic and not determinism_on()
        d = devices.configure()  # auto, on a CPU
        assert d.deterministic and determinism_on() and d.name == "CPU"
        assert not d.mixed_precision
    finally:
        devices.configure()


def test_mixed_precision_forced_on_cpu_trains_and_exports_at_the_parity_bar(tmp_path, keras):
    """Trained under mixed_float16, the saved model is float32 and its ONNX export passes
    the float32 parity bar (1e-5)."""
    from cnnbp.export.bundle import export_bundle
    from cnnbp.train.fit import train
    try:
        m = train(load("digits", ["training.epochs=1", "training.augment.translate=0",
                                  "training.mixed_precision=true"]),
                  "digits", tmp_path / "run", quiet=True)
    finally:
        devices.configure()
    assert m.mixed_precision and m.test_accuracy > 0.3
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
