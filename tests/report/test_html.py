"""report.html: self-contained, complete, and its figures right; the report and explain
commands."""
import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from cnnbp import cli
from cnnbp.contract import records
from cnnbp.contract.errors import ArtifactError
from cnnbp.contract.metrics import TrainMetrics
from cnnbp.report import write_run_report
from tests.conftest import ROOT


class Page(HTMLParser):
    """Every URL-bearing attribute, every image and every section id of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.urls, self.images, self.sections, self.cells, self.meta = [], [], [], [], []
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            if key in a:
                self.urls.append(a[key])
        if tag == "img":
            self.images.append(a)
        if tag == "section":
            self.sections.append(a["id"])
        if tag == "meta":
            self.meta.append(a)
        if tag == "td":
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.cells.append(self._cell)
            self._cell = None


def read(path) -> Page:
    return Page(path.read_text(encoding="utf-8"))


def test_run_report_is_self_contained_and_complete(reported):
    text = (reported / "run" / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    assert page.urls and all(u.startswith("data:image/") for u in page.urls)
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", text)
    csp = [m["content"] for m in page.meta if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp == ["default-src 'none'; img-src data:; style-src 'unsafe-inline'"]
    assert page.sections == ["network", "data", "training", "test", "explain", "export"]
    alts = [i["alt"] for i in page.images]
    for wanted in ("digits volume diagram", "training curves", "confusion matrix",
                   "first-layer filters", "Grad-CAM", "receptive fields",
                   "inputs that most excite the last stage", "misclassified held-out rows"):
        assert wanted in alts


def test_every_inline_image_decodes(reported):
    from PIL import Image
    for image in read(reported / "run" / "report.html").images:
        mime, data = re.match(r"data:(image/[a-z+]+);base64,(.*)", image["src"]).groups()
        raw = base64.b64decode(data)
        if mime == "image/png":
            with Image.open(io.BytesIO(raw)) as im:
                im.verify()
        else:
            assert mime == "image/svg+xml" and raw.startswith(b"<svg")


def test_per_class_f1_comes_from_precision_and_recall(reported):
    m = records.read(TrainMetrics, reported / "run" / "metrics.json", "metrics")
    cm = np.asarray(m.confusion_matrix)
    cells = read(reported / "run" / "report.html").cells
    for i, name in enumerate(m.per_class):
        tp, predicted, actual = cm[i, i], cm[:, i].sum(), cm[i].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        wanted = [name, f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}", str(actual)]
        assert any(cells[i:i + 5] == wanted for i in range(len(cells))), wanted


def test_run_report_shows_the_bundle_parity(reported):
    text = (reported / "run" / "report.html").read_text(encoding="utf-8")
    assert "ONNX opset 17 against Keras" in text and "passed" in text


def test_bundle_report(reported):
    page = read(reported / "bundle" / "report.html")
    assert page.sections == ["network", "preprocessing", "export"]
    assert all(u.startswith("data:image/") for u in page.urls)
    assert "held-out" in page.cells


def test_report_refuses_a_folder_that_is_neither(tmp_path):
    with pytest.raises(ArtifactError, match="is neither a run directory .* nor a bundle"):
        write_run_report(tmp_path)
    assert cli.main(["report", str(tmp_path)]) == 2


def test_report_command_without_explain_needs_no_tensorflow(reported, tmp_path):
    import shutil
    shutil.copytree(reported / "run", tmp_path / "run")
    (tmp_path / "run" / "report.html").unlink()
    code = ("import sys; from cnnbp import cli; "
            f"assert cli.main(['report', {str(tmp_path / 'run')!r}, '--no-explain']) == 0; "
            "assert 'tensorflow' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "explain" not in read(tmp_path / "run" / "report.html").sections


def test_registering_the_commands_stays_light():
    code = ("import sys; from cnnbp import cli; cli.parser(); "
            "heavy = [m for m in ('tensorflow', 'matplotlib', 'PIL', 'cnnbp.report.html') "
            "if m in sys.modules]; assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_explain_writes_every_figure(reported, tmp_path, capsys):
    from PIL import Image
    digit = tmp_path / "digit.png"
    Image.fromarray((np.eye(8) * 255).astype("uint8")).save(digit)
    assert cli.main(["explain", str(reported / "run"), str(digit), "-o",
                     str(tmp_path / "fig")]) == 0
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == ["01-filters.png", "02-activations-0.png", "03-grad-cam.png",
                     "04-receptive-fields.png", "05-top-activating.png", "06-misclassified.png"]
    for name in names:
        with Image.open(tmp_path / "fig" / name) as im:
            assert im.width > 100


def test_explain_refuses_an_unreadable_input(reported, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert cli.main(["explain", str(reported / "run"), str(bad)]) == 2
    assert f"{bad}: cannot be read as an input of shape [8, 8, 1]" in capsys.readouterr().err


def test_explain_refuses_a_unit_outside_the_layer(reported, tmp_path, capsys):
    assert cli.main(["explain", str(reported / "run"), "--unit", "stage1_pool:9,3", "-o",
                     str(tmp_path / "fig")]) == 2
    assert ("--unit stage1_pool:9,3: give 2 index(es) within stage1_pool's output 4x4, e.g. "
            "stage1_pool:2,2") in capsys.readouterr().err
    assert not (tmp_path / "fig").exists()


@pytest.mark.parametrize("blueprint", ["alexnet_grouped", "zfnet", "vgg11_lrn", "mnist1d"])
def test_network_section_of_awkward_nets(blueprint):
    """LRN, groups, ceil pooling and 1-D convs: the drawing and every layer's row are there."""
    from cnnbp.builder import load
    from cnnbp.report.html import network_section
    analysis = load(blueprint).analysis
    page = Page(network_section(analysis))
    assert [i["alt"] for i in page.images] == [f"{blueprint} volume diagram"]
    first_column = page.cells[::7]  # seven columns: layer, type, what, output, params, ...
    assert first_column == ["", *(s.name for s in analysis.layers), "total"]
