"""Shared fixtures: the repository root, shipped blueprints, and a quiet Keras."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHIPPED = sorted(p.stem for p in (ROOT / "blueprints").glob("*.yaml"))
SMALL = ["digits", "mnist1d", "cifar10_small", "lenet5"]


def pytest_configure(config):
    """One JAX compilation cache for the whole run, in a fresh folder its workers and their
    subprocesses share (they inherit the environment), so the tests never write to the user's
    ~/.cache and each run starts cold. A CNNBP_JAX_CACHE set by the caller wins."""
    if hasattr(config, "workerinput") or "CNNBP_JAX_CACHE" in os.environ:
        return
    config.cnnbp_jax_cache = tempfile.mkdtemp(prefix="cnnbp-tests-jax-cache-")
    os.environ["CNNBP_JAX_CACHE"] = config.cnnbp_jax_cache


def pytest_unconfigure(config):
    made = getattr(config, "cnnbp_jax_cache", None)
    if made:
        shutil.rmtree(made)


@pytest.fixture(scope="session")
def keras():
    from cnnbp.builder.tf_env import import_tensorflow
    import_tensorflow()
    import keras as k
    return k


@pytest.fixture
def write_blueprint(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text: str, name: str = "bp.yaml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)
    return write


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keras_file_weights(path) -> list:
    """(name, array) for every weight stored in a .keras file, read straight from its H5."""
    import io
    import zipfile

    import h5py
    with zipfile.ZipFile(path) as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        found = []
        f.visititems(lambda n, o: found.append((n, o[()])) if isinstance(o, h5py.Dataset) else None)
        return found


@pytest.fixture(scope="session")
def made(tmp_path_factory, keras):
    """A one-epoch digits run (``run``) and its bundle without variants (``bundle``), made by
    the CLI in this process. Tests copy them before changing anything."""
    from cnnbp import cli
    base = tmp_path_factory.mktemp("made")
    assert cli.main(["train", "digits", "--data", "digits", "--epochs", "1", "--quiet",
                     "-o", str(base / "run")]) == 0
    assert cli.main(["export", str(base / "run"), "-o", str(base / "bundle"),
                     "--no-variants"]) == 0
    return base
