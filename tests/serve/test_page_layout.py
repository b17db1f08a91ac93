"""The page at ``/`` laid out by a real headless Chromium at a phone's width (390 px) and a
desktop's (1280 px), after an image was classified: no two boxes that sit side by side in the
flow overlap (the drop zone was an inline label whose padding covered the line above, the
card's border and the first result row), every box stays inside its card's border and the
viewport, each card lists its class names and links its bundle's report. The
screenshots are kept under pytest's tmp dir (or ``$CNNBP_SHOTS`` when set, to look at them)."""
import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.browser import at_width, executable
from tests.serve.test_page_browser import UPLOAD
from tests.serve.test_server import png_bytes

pytestmark = pytest.mark.skipif(executable() is None, reason="needs Debian's chromium")

# the boxes of every flow child of the body and of each card, after the classes have loaded
BOXES = """
(async () => {
  for (let i = 0; i < 300 && document.querySelectorAll("ul.classes li").length < 2; i++)
    await new Promise(r => setTimeout(r, 50));
  const box = el => { const r = el.getBoundingClientRect();
    return {tag: el.tagName.toLowerCase() + (el.className ? "." + el.className : ""),
            x: r.left, y: r.top + scrollY, w: r.width, h: r.height}; };
  const shown = el => el.getClientRects().length > 0;
  const models = document.getElementById("models");
  const flow = parent => [...parent.children].filter(shown).filter(
    el => !["SCRIPT", "STYLE"].includes(el.tagName) && el !== models).map(box);
  const cards = [...document.querySelectorAll("section.card")].map(c => {
    const s = getComputedStyle(c);
    const b = box(c);
    const inner = {x: b.x + parseFloat(s.borderLeftWidth), y: b.y + parseFloat(s.borderTopWidth),
                   w: b.w - parseFloat(s.borderLeftWidth) - parseFloat(s.borderRightWidth),
                   h: b.h - parseFloat(s.borderTopWidth) - parseFloat(s.borderBottomWidth)};
    const rows = [...c.querySelectorAll(".result tr")].map(box);
    return {name: c.dataset.model, inner, children: flow(c), rows,
            classes: [...c.querySelectorAll("ul.classes li")].map(li => li.textContent),
            report: (c.querySelector("a.report") || {}).href};
  });
  return JSON.stringify({body: flow(document.body).concat(flow(models)),
                         cards, width: document.documentElement.clientWidth,
                         scrollWidth: document.documentElement.scrollWidth});
})()
"""


def overlaps(a: dict, b: dict) -> bool:
    """Whether two boxes share area (touching edges do not count)."""
    return (min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"]) > 0.5 and
            min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"]) > 0.5)


def inside(child: dict, outer: dict) -> bool:
    return (child["x"] >= outer["x"] - 0.5 and child["y"] >= outer["y"] - 0.5 and
            child["x"] + child["w"] <= outer["x"] + outer["w"] + 0.5 and
            child["y"] + child["h"] <= outer["y"] + outer["h"] + 0.5)


def pairs(boxes: list[dict]):
    return [(a["tag"], b["tag"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if overlaps(a, b)]


@pytest.mark.parametrize("width", [390, 1280])
def test_page_boxes_do_not_overlap(server, tmp_path, width):
    image = png_bytes((np.random.default_rng(5).random((8, 8)) * 255).astype("uint8"))
    shot = Path(os.environ.get("CNNBP_SHOTS", tmp_path)) / f"serve_page_{width}.png"
    _, value = at_width(f"{server.url}/", width, [UPLOAD % base64.b64encode(image).decode(),
                                                 BOXES], shot)
    layout = json.loads(value)
    assert layout["scrollWidth"] <= layout["width"], layout
    assert not pairs(layout["body"]), layout["body"]
    digits = next(c for c in layout["cards"] if c["name"] == "digits")
    assert digits["classes"] == [str(i) for i in range(10)], digits["classes"]
    assert len(digits["rows"]) == 5, digits
    for card in layout["cards"]:
        assert card["classes"], card
        url = f"{server.url}/v2/models/{card['name']}/report.html"
        assert card["report"] == url, card
        try:  # the bundle's own page, or (exported from a bare .keras file) what to run
            with urllib.request.urlopen(url) as reply:
                assert reply.status == 200 and b"<h1>" in reply.read()
        except urllib.error.HTTPError as e:
            assert e.code == 404 and "cnnbp report BUNDLE" in e.read().decode(), e
        outside = [c["tag"] for c in card["children"] + card["rows"]
                   if not inside(c, card["inner"])]
        assert not outside, (outside, card)
