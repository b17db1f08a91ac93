"""What a reader of report.html sees: the title, the Data facts, the training images as they
were before normalisation, readable figure text, Grad-CAM's blank maps explained, and the
int8 row saying what its agreement was measured on. The layout at phone and desktop widths
is checked in a real Chromium (test_layout.py)."""
import re

import numpy as np
import pytest

from cnnbp.contract import records
from cnnbp.contract.bundle import Bundle, VariantResult
from cnnbp.contract.preprocessing import Preprocessing
from cnnbp.contract.rundir import RunDir
from tests.report.test_html import read


def section(text: str, sid: str) -> str:
    return re.search(rf'<section id="{sid}">(.*?)</section>', text, re.S).group(1)


def test_titles_do_not_repeat_the_folder_kind(reported):
    run = (reported / "run" / "report.html").read_text(encoding="utf-8")
    bundle = (reported / "bundle" / "report.html").read_text(encoding="utf-8")
    assert "<h1>digits: training run</h1>" in run
    assert "<h1>digits: ONNX bundle</h1>" in bundle


def test_title_names_a_folder_of_its_own():
    from pathlib import Path

    from cnnbp.report.html import run_title
    assert run_title("digits", Path("runs/lr-0.01"), "training run") == \
        "digits: training run lr-0.01"


def test_data_facts_have_no_empty_header_row(reported):
    data = section((reported / "run" / "report.html").read_text(encoding="utf-8"), "data")
    assert "<thead>" not in data and "<th></th>" not in data
    assert '<th scope="row">source</th>' in data


def test_training_images_are_the_denormalised_training_rows(reported):
    from cnnbp.report.figures import denormalised
    run = RunDir(reported / "run")
    prep = records.read(Preprocessing, run / "preprocess.json", "preprocessing record")
    cal = run.read_samples(prep.input_shape)[2]
    shown = denormalised(cal, prep)
    # the digits are 17 grey levels 0..16 with raw_max 16: undone exactly, not min-max scaled
    assert prep.raw_max == 16
    assert np.allclose(shown * 16, np.rint(shown * 16), atol=1e-3)
    assert shown.min() == 0 and shown.max() == pytest.approx(1, abs=1e-6)
    assert len({tuple(np.rint(row * 16).astype(int).ravel()) for row in shown}) > 1
    alts = [i["alt"] for i in read(reported / "run" / "report.html").images]
    assert alts.index("training images") < alts.index("training curves")


def test_figure_text_is_readable():
    """Tile titles and row labels of the explain mosaics are 9 pt and up (they were 6 and 7:
    about 7 px once the page scaled the figure)."""
    from cnnbp.report.figures import mosaic
    tiles = [np.zeros((8, 8, 3))] * 4
    fig = mosaic(tiles, 2, ["a", "b", "c", "d"], ["row 1", "row 2"])
    sizes = [t.get_fontsize() for t in fig.axes[0].texts]
    assert len(sizes) == 6 and min(sizes) >= 9, sizes


def test_a_blank_grad_cam_says_why():
    from cnnbp.report.explain import blank_reason
    maps, grads = np.ones((2, 2, 3)), np.ones((2, 2, 3))
    assert blank_reason(maps, grads, np.ones((2, 2)), "c") is None
    assert "output is all zero" in blank_reason(np.zeros((2, 2, 3)), grads, np.zeros((2, 2)),
                                                "c")
    assert "no gradient at c" in blank_reason(maps, np.zeros((2, 2, 3)), np.zeros((2, 2)), "c")
    assert "sum below 0 everywhere" in blank_reason(maps, -grads, np.zeros((2, 2)), "c")


def test_int8_row_says_its_agreement_was_measured_on_random_inputs(reported):
    from cnnbp.report.html import parity_section
    report = Bundle(reported / "bundle").report()
    int8 = VariantResult(passed=True, kept=True, max_abs=0.47, top1_agreement=0.5714,
                         test_accuracy=0.91, fp32_test_accuracy=0.9, accuracy_change_points=1.0)
    html = parity_section(report.model_copy(update={"variants": {"int8": int8}}), "b")
    row = re.search(r"<tr><td>int8</td>.*?</tr>", html).group(0)
    assert "0.5714" in row and "random N(0, 1) noise and held-out rows" in row, row
    assert "kept or dropped on its test accuracy" in row


def test_grad_cam_figure_names_its_blank_maps(reported, monkeypatch):
    from cnnbp.report import explain
    from cnnbp.report.probe import load
    ctx = load(reported / "run", (), 2)
    real = explain.grad_cam

    def first_blank(c):
        heat, predicted, layer, _ = real(c)
        heat[0] = 0
        why = explain.blank_reason(np.zeros((1, 1, 1)), np.ones((1, 1, 1)), np.zeros((1, 1)),
                                   layer)
        return heat, predicted, layer, [why, None]

    monkeypatch.setattr(explain, "grad_cam", first_blank)
    caption = explain.grad_cam_figure(ctx).caption
    assert "1 of 2 inputs have no heat map: stage2_relu2's output is all zero" in caption
    monkeypatch.setattr(explain, "grad_cam", real)
    assert "no heat map" not in explain.grad_cam_figure(ctx).caption
