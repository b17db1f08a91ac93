"""report.html laid out by a real Chromium at a phone's width (390 px) and a desktop's (1280
px): the page never scrolls sideways (wide tables scroll in their own box), the test rows
per class wrap into columns, and the explain figures are shown near their natural size."""
import json
import os
from pathlib import Path

import pytest

from tests.browser import at_width, executable

pytestmark = pytest.mark.skipif(executable() is None, reason="needs Debian's chromium")

MEASURE = """JSON.stringify({
  width: document.documentElement.clientWidth,
  scrollWidth: document.documentElement.scrollWidth,
  counts: [...document.querySelectorAll("ul.counts li")].map(li => li.getBoundingClientRect().left),
  images: [...document.querySelectorAll("#explain img")].map(i => ({alt: i.alt,
            scale: i.getBoundingClientRect().width / i.naturalWidth}))})"""


@pytest.mark.parametrize("width", [390, 1280])
def test_run_report_layout(reported, tmp_path, width):
    shot = Path(os.environ.get("CNNBP_SHOTS", tmp_path)) / f"report_{width}.png"
    got = json.loads(at_width((reported / "run" / "report.html").as_uri(), width, [MEASURE],
                              shot)[0])
    assert got["scrollWidth"] <= got["width"], got
    assert len(got["counts"]) == 10
    assert len(set(got["counts"])) >= (2 if width < 600 else 5), got["counts"]
    if width >= 1280:  # on a desktop the figures' 9-pt text is not shrunk below ~11 px
        small = [i for i in got["images"] if i["scale"] < 0.9]
        assert got["images"] and not small, small
