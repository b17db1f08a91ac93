"""The volume diagram: its structure pinned against the lecture's LeNet-5 figure, determinism,
log scaling, 1-D strips, awkward nets, and no TensorFlow or matplotlib on the way."""
import io
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from cnnbp.builder import load, load_expression
from cnnbp.contract.errors import UsageError
from cnnbp.report.draw import scene, svg, to_png, write
from tests.browser import executable
from tests.conftest import ROOT, SHIPPED

NS = "{http://www.w3.org/2000/svg}"

# Written from the LeNet-5 paper's figure (INPUT 32x32, C1: 6@28x28, S2: 6@14x14, C3: 16@10x10,
# S4: 16@5x5, C5: 120, F6: 84, OUTPUT: 10), not from the code.
LENET5 = [
    ("volume", "input", "INPUT: 1@32x32", "input"),
    ("volume", "conv", "C1: 6@28x28", "stage1_conv1"),
    ("volume", "pool", "S2: 6@14x14", "stage1_pool"),
    ("volume", "conv", "C3: 16@10x10", "stage2_conv1"),
    ("volume", "pool", "S4: 16@5x5", "stage2_pool"),
    ("volume", "conv", "C5: 120@1x1", "stage3_conv1"),
    ("bar", "fc", "F6: 84", "fc1"),
    ("bar", "output", "OUTPUT: 10", "predictions"),
]


def groups(text: str):
    root = ET.fromstring(text)
    return [g for g in root.iter(f"{NS}g")]


def structure(text: str):
    return [(g.get("class"), g.get("data-kind"), g.get("data-label"), g.get("data-name"))
            for g in groups(text)]


def texts(g) -> list[str]:
    return [t.text for t in g.iter(f"{NS}text")]


def test_lenet5_matches_the_lecture_figure():
    text = svg(load("lenet5").analysis)
    assert structure(text) == LENET5
    by_name = {g.get("data-name"): g for g in groups(text)}
    # params and MACs per stage: C1 has 6 * (5*5*1 + 1) = 156 params, 28*28*6*25 = 117,600 MACs
    assert "156 params, 117.6K MACs" in texts(by_name["stage1_conv1"])
    assert "+ TANH" in texts(by_name["stage1_conv1"])
    # C3 reads S2 through a 5x5 window: 5/14 of S2's face, drawn on C3 in red
    window = [p for p in by_name["stage2_conv1"].iter(f"{NS}polygon")
              if p.get("stroke") == "#cc0000"]
    assert len(window) == 1


def test_kernel_window_is_its_share_of_the_input_face():
    text = svg(load_expression("INPUT(20x20x1)-CONV(4,5x5)-RELU-FC(10)-SOFTMAX").analysis)
    g_in, g_conv = groups(text)[:2]
    front = [p for p in g_in.iter(f"{NS}polygon")][-1]  # the front face is drawn last
    window = [p for p in g_conv.iter(f"{NS}polygon") if p.get("stroke") == "#cc0000"][0]

    def extent(poly):
        pts = [tuple(map(float, xy.split(","))) for xy in poly.get("points").split()]
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        return max(xs) - min(xs), max(ys) - min(ys)

    (fw, fh), (ww, wh) = extent(front), extent(window)
    assert ww / fw == pytest.approx(5 / 20, abs=0.01) and wh / fh == pytest.approx(5 / 20,
                                                                                   abs=0.01)


def test_same_analysis_same_bytes():
    a = load("vgg16").analysis
    assert svg(a) == svg(load("vgg16").analysis)
    assert to_png(scene(a)) == to_png(scene(load("vgg16").analysis))


def test_vgg16_is_log_scaled_and_every_stage_stays_visible():
    text = svg(load("vgg16").analysis)
    assert "log spatial, log channels" in ET.fromstring(text).find(f"{NS}text").text
    heights = {}
    for g in groups(text):
        if g.get("class") == "volume":
            front = list(g.iter(f"{NS}polygon"))[2]
            ys = [float(xy.split(",")[1]) for xy in front.get("points").split()]
            heights[g.get("data-shape").split("x")[0]] = max(ys) - min(ys)
    assert heights["7"] >= 14 and heights["224"] <= 150
    assert heights["7"] < heights["14"] < heights["28"] < heights["56"] < heights["112"] \
        < heights["224"]


def test_small_ranges_stay_linear():
    text = svg(load("digits").analysis)  # spatial 8, 4, 2: a ratio of 4
    assert "linear spatial" in ET.fromstring(text).find(f"{NS}text").text


def test_one_d_nets_are_flat_strips():
    text = svg(load("mnist1d").analysis)
    labels = [s[2] for s in structure(text)]
    assert labels[:3] == ["INPUT: 1@40", "C1: 32@40", "C2: 32@40"]
    for g in groups(text):
        faces = [p for p in g.iter(f"{NS}polygon") if p.get("stroke") not in ("#cc0000", "none")]
        assert len(faces) == 1  # no top or side face: a strip, not a box


@pytest.mark.parametrize("blueprint", SHIPPED)
def test_every_shipped_blueprint_draws(blueprint):
    text = svg(load(blueprint).analysis)
    kinds = [s[1] for s in structure(text)]
    assert kinds[0] == "input" and kinds[-1] == "output"


def test_lrn_groups_ceil_and_forty_layers_draw_in_rows():
    a = load_expression("INPUT(32x32x3)-(CONV(8,3,pad=1)-RELU)*40-POOL(2)-"
                        "CONV(8,3,pad=1,groups=2)-LRN-POOL(3,2,rounding=ceil)-FC(10)-SOFTMAX"
                        ).analysis
    found = structure(svg(a))
    assert len(found) == 1 + 40 + 1 + 1 + 1 + 1
    assert found[-3][2] == "C42: 8@16x16" and found[-2][2] == "S43: 8@8x8"
    rows = {g.get("data-row") for g in groups(svg(a))}
    assert len(rows) > 2
    assert "+ LRN" in texts(groups(svg(a))[-3])


def test_png_is_a_png_of_the_scene_at_twice_the_size(tmp_path):
    from PIL import Image
    a = load("lenet5").analysis
    path = write(a, tmp_path / "net.png")
    s = scene(a)
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        assert im.format == "PNG" and im.size == (int(s.width * 2), int(s.height * 2))


def test_other_suffixes_are_refused(tmp_path):
    with pytest.raises(UsageError, match=r"written as \.svg or \.png, not '\.pdf'"):
        write(load("lenet5").analysis, tmp_path / "net.pdf")
    assert not (tmp_path / "net.pdf").exists()


def test_draw_imports_neither_tensorflow_nor_matplotlib(tmp_path):
    code = ("import sys; from cnnbp import cli; "
            f"assert cli.main(['draw', 'vgg16', '-o', {str(tmp_path / 'n.png')!r}]) == 0; "
            "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "n.png").stat().st_size > 0


def test_kernel_size_and_stride_are_written_by_the_window():
    """As in the AlexNet figure; LeNet-5's C1 reads 5x5 windows at stride 1, S2 2x2 at 2."""
    by_name = {g.get("data-name"): g for g in groups(svg(load("lenet5").analysis))}
    assert "5x5, stride 1" in texts(by_name["stage1_conv1"])
    assert "2x2, stride 2" in texts(by_name["stage1_pool"])
    assert not any("stride" in t for t in texts(by_name["fc1"]))


def test_a_row_break_keeps_the_window_and_an_arrow():
    """AlexNet wraps after C5 (a conv) and an FC bar may start a row: the first item of each
    new row gets a dashed polyline ending in an arrowhead; a conv also gets its window on the
    last box of the row above."""
    bars = load_expression("INPUT(32x32x3)-(CONV(8,3,pad=1)-RELU)*6-POOL(2)-(FC(64)-RELU)*12-"
                           "FC(10)-SOFTMAX").analysis
    kinds = set()
    for text in (svg(load("alexnet").analysis), svg(bars)):
        found = groups(text)
        breaks = [(before, g) for before, g in zip(found, found[1:])
                  if g.get("data-row") != before.get("data-row")]
        kinds |= {g.get("data-kind") for _, g in breaks}
        for before, g in breaks:
            lines = list(g.iter(f"{NS}polyline"))
            heads = [p for p in g.iter(f"{NS}polygon") if p.get("stroke") == "none"]
            assert len(lines) == 1 and len(heads) == 1, g.attrib
            assert lines[0].get("stroke-dasharray")
            if g.get("data-kind") in ("conv", "pool"):
                window = [p for p in g.iter(f"{NS}polygon") if p.get("stroke") == "#cc0000"]
                front = list(before.iter(f"{NS}polygon"))[2 if before.get("class") == "volume"
                                                          else 0]
                wx = [float(xy.split(",")[0]) for xy in window[0].get("points").split()]
                fx = [float(xy.split(",")[0]) for xy in front.get("points").split()]
                assert min(fx) <= min(wx) and max(wx) <= max(fx)  # on the box above
                assert any("stride" in t for t in texts(g))
    assert kinds == {"conv", "fc"}, kinds


def test_png_dashes_the_kernel_lines():
    """Along a kernel line the PNG alternates red and background (the SVG's 3,2 dashes)."""
    from PIL import Image
    s = scene(load("lenet5").analysis)
    line = next(sh for g in s.groups for sh in g.shapes if sh.kind == "line")
    (x1, y1), (x2, y2) = line.points
    with Image.open(io.BytesIO(to_png(s))) as im:
        rgb = im.convert("RGB")
        samples = [rgb.getpixel((round(2 * (x1 + (x2 - x1) * t / 200)),
                                 round(2 * (y1 + (y2 - y1) * t / 200)))) for t in range(200)]
    red = [r > 150 and g < 120 for r, g, _ in samples]
    assert 0.3 < sum(red) / len(red) < 0.8, sum(red)


@pytest.mark.skipif(executable() is None, reason="needs Debian's chromium")
def test_png_looks_like_the_svg_in_a_browser(tmp_path):
    """Chromium's rendering of the SVG at twice the size against the PNG: the same ink, within
    antialiasing (Pillow's own font, no bold and solid lines gave an ink overlap of 0.33)."""
    import base64

    import numpy as np
    from PIL import Image

    from tests.browser import Chromium
    a = load("alexnet").analysis
    s = scene(a)
    (tmp_path / "net.svg").write_text(svg(a))
    browser = Chromium()
    try:
        session = browser.new_page()
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": int(s.width), "height": int(s.height), "deviceScaleFactor": 2,
            "mobile": False}, session=session)
        browser.send("Page.navigate", {"url": (tmp_path / "net.svg").as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        shot = browser.send("Page.captureScreenshot", {"clip": {
            "x": 0, "y": 0, "width": s.width, "height": s.height, "scale": 1}},
            session=session)["data"]
    finally:
        browser.close()
    with Image.open(io.BytesIO(base64.b64decode(shot))) as im:
        seen = np.asarray(im.convert("L"), float)
    with Image.open(io.BytesIO(to_png(s))) as im:
        ours = np.asarray(im.convert("L"), float)
    assert seen.shape == ours.shape
    ink_seen, ink_ours = seen < 128, ours < 128
    overlap = (ink_seen & ink_ours).sum() / (ink_seen | ink_ours).sum()
    assert overlap > 0.55 and np.abs(seen - ours).mean() < 4.5, (overlap,
                                                                 np.abs(seen - ours).mean())
