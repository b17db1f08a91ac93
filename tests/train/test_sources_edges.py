"""Edges of ``--data`` found in review: file names with glob characters, byte-string class
names, online sets checked before TensorFlow, advice that can be followed."""
import subprocess
import sys

import numpy as np
import pytest

from cnnbp.contract.errors import DataError
from cnnbp.train.sources import check_against, load_source, preload
from tests.conftest import ROOT

R = np.random.default_rng(0)


def _npz(path, **extra):
    np.savez(path, x_train=R.random((30, 8, 8, 1)).astype("float32"), y_train=np.arange(30) % 3,
             x_test=R.random((9, 8, 8, 1)).astype("float32"), y_test=np.arange(9) % 3, **extra)
    return path


@pytest.mark.parametrize("name", ["digits[v2].npz", "what?.npz", "all*.npz"])
def test_a_npz_named_with_glob_characters_is_that_file(tmp_path, name):
    path = _npz(tmp_path / name)
    preload(str(path), (8, 8, 1), 3)  # was: "matches no TFRecord files"
    assert len(load_source(str(path), (8, 8, 1), 3).x_train) == 30


def test_byte_string_class_names_are_names(tmp_path):
    path = _npz(tmp_path / "d.npz", class_names=np.array([b"cat", b"dog", b"owl"]))
    data = check_against(load_source(str(path), (8, 8, 1), 3), (8, 8, 1), 3,
                         ("owl", "cat", "dog"))
    assert data.class_names == ("owl", "cat", "dog")
    assert list(data.y_test[:3]) == [1, 2, 0]  # cat, dog, owl renumbered to the blueprint's order


def test_advice_names_class_names_when_the_blueprint_has_them(tmp_path):
    data = load_source(str(_npz(tmp_path / "d.npz")), (8, 8, 1), 4)
    with pytest.raises(DataError) as exc:
        check_against(data, (8, 8, 1), 4, ("a", "b", "c", "d"))
    text = str(exc.value)
    assert "no sample has label 3" in text and "list 3 class_names (the blueprint has 4)" in text
    assert "--set classes=3" not in text  # it would contradict the 4 names


def test_an_unreachable_online_set_is_refused_before_tensorflow(tmp_path):
    code = ("import sys\nfrom cnnbp.contract.errors import DataError\n"
            "from cnnbp.train.sources import preload\n"
            "try:\n    preload('cifar10', (32, 32, 3), 10)\nexcept DataError as e:\n"
            "    print(e)\nprint('tensorflow' in sys.modules or 'keras' in sys.modules)\n")
    env = {"KERAS_HOME": str(tmp_path), "CNNBP_DATASET_HOST": "127.0.0.1:9",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=60)
    lines = proc.stdout.splitlines()
    assert "cifar10 must be downloaded from 127.0.0.1 and this machine cannot reach it" in \
        lines[0], proc.stdout + proc.stderr
    assert lines[-1] == "False"


def test_a_mistyped_builtin_source_gets_a_suggestion():
    with pytest.raises(DataError) as exc:
        load_source("digts")
    assert "'digts' is not a data source (did you mean digits?): use digits, mnist1d" in \
        str(exc.value)
