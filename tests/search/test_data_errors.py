"""``cnnbp search`` refuses a bad ``--data`` before it makes OUT, the study, or starts
TensorFlow."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

PROBE = """
import sys
from cnnbp import cli
rc = cli.main(sys.argv[1:])
print("rc", rc, "tensorflow" in sys.modules)
"""


def test_missing_data_is_refused_before_the_study(digits_space, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", PROBE, "search", digits_space(), "--data",
                           str(tmp_path / "nope.npz"), "--trials", "1", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["rc", "2", "False"], proc.stdout + proc.stderr
    assert "nope.npz does not exist" in proc.stderr
    assert not out.exists()


def test_bad_labels_are_refused_before_the_study(digits_space, tmp_path, capsys):
    from cnnbp import cli
    data = tmp_path / "d.npz"
    y = np.arange(40) % 10
    y[7] = -1
    np.savez(data, x_train=np.zeros((40, 8, 8, 1), "float32"), y_train=y,
             x_test=np.zeros((10, 8, 8, 1), "float32"), y_test=np.arange(10))
    out = tmp_path / "out"
    assert cli.main(["search", digits_space(), "--data", str(data), "--trials", "1",
                     "-o", str(out)]) == 2
    assert "d.npz: y_train[7] is -1" in capsys.readouterr().err
    assert not out.exists()
