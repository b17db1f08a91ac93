"""``cnnbp build``: the blueprint's Keras model in a .keras file; a bad path is refused before
TensorFlow starts."""
from __future__ import annotations

import pytest

from cnnbp.builder.errors import BlueprintError
from cnnbp.commands import build
from cnnbp.commands.assemble import parse, parser


def test_writes_the_model_and_says_its_size(tmp_path, capsys, keras):
    out = tmp_path / "m.keras"
    args = parse(parser(), ["build", "-e", "INPUT(8x8x1)-CONV(4,3)-RELU-POOL-FC(10)-SOFTMAX",
                            "-o", str(out)])
    assert args.run is build.run and build.run(args) == 0
    # 4 * (3*3 + 1) conv + 36 * 10 + 10 dense, as tests/builder/test_analysis.py works out
    assert capsys.readouterr().out == f"expression: wrote {out} (410 params)\n"
    assert keras.saving.load_model(out).count_params() == 410


def test_a_path_that_is_no_keras_file_is_refused(tmp_path):
    args = parse(parser(), ["build", "digits", "-o", str(tmp_path / "m.h5")])
    with pytest.raises(BlueprintError, match=r"\.keras"):
        build.run(args)
    assert not (tmp_path / "m.h5").exists()
