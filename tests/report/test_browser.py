"""report.html in a real headless Chromium from file://: no console errors, no failed or
external requests, every image decoded. Screenshots are kept under the test's temp dir."""
import re

import pytest

from tests.browser import executable, open_page, save

pytestmark = pytest.mark.skipif(executable() is None, reason="chromium is not installed "
                                "(apt-get install -y chromium)")


def check(visit, page_url: str) -> None:
    assert visit.console_errors == []
    assert visit.failed == []
    assert [u for u in visit.requests if u != page_url and not u.startswith("data:")] == []
    assert visit.images and all(i["complete"] and i["naturalWidth"] > 0 for i in visit.images)


@pytest.mark.parametrize("kind,images", [("run", 11), ("bundle", 1)])
def test_report_opens_cleanly_in_chromium(reported, tmp_path_factory, kind, images):
    url = (reported / kind / "report.html").as_uri()
    visit = open_page(url)
    shot = save(visit, tmp_path_factory.mktemp("screenshots"), f"report-{kind}")
    check(visit, url)
    assert len(visit.images) == images
    assert shot.stat().st_size > 10_000
    # printable: Chromium's print to PDF lays it out on pages
    assert visit.pdf.startswith(b"%PDF") and re.findall(rb"/Type\s*/Page[^s]", visit.pdf)
    (shot.parent / f"report-{kind}.pdf").write_bytes(visit.pdf)


def test_the_check_catches_a_bad_page(tmp_path):
    """The harness itself can fail: an external image, a broken one and a console error."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/x.png" alt="external">'
                    '<img src="data:image/png;base64,AAAA" alt="broken">'
                    '<script>console.error("boom")</script>')
    visit = open_page(page.as_uri())
    assert "boom" in visit.console_errors
    assert "http://127.0.0.1:9/x.png" in visit.requests and visit.failed
    assert [i["naturalWidth"] for i in visit.images] == [0, 0]
    with pytest.raises(AssertionError):
        check(visit, page.as_uri())
