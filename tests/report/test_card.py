"""User text in the files an export writes (issue 23): class names made of HTML and Markdown
payloads show as text in the bundle's README.md rendered by Python-Markdown, and in the
report pages, and inject no element, attribute or link."""
from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest

PAYLOADS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
            "[x](javascript:alert(1))", "*a* `b` | <iframe src=javascript:alert(1)>"]


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, keras):
    from cnnbp import cli
    base = tmp_path_factory.mktemp("card")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (48, 8, 8), dtype="uint8")
    y = np.arange(48) % len(PAYLOADS)
    np.savez(base / "d.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:],
             class_names=np.array(PAYLOADS))
    assert cli.main(["train", "-e", "INPUT(8x8x1)-CONV(2,3,pad=1)-RELU-POOL-FC(4)-SOFTMAX",
                     "--data", str(base / "d.npz"), "--epochs", "1", "--quiet",
                     "-o", str(base / "run")]) == 0
    assert cli.main(["export", str(base / "run"), "-o", str(base / "bundle"),
                     "--no-variants"]) == 0
    return base


def assert_only_text(page: Elements, where: str) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("script", "iframe"), f"{where}: a <{tag}> element"
        assert not any(a.startswith("on") for a in attrs), f"{where}: <{tag} {attrs}>"
        assert not any((v or "").strip().lower().startswith("javascript:")
                       for v in attrs.values()), f"{where}: <{tag} {attrs}>"
        if tag == "img":  # the report's own figures are inline data, nothing else is
            assert attrs.get("src", "").startswith("data:"), f"{where}: <img {attrs}>"
    text = "".join(page.text)
    for name in PAYLOADS:
        assert name in text, f"{where}: class name {name!r} not shown as text"


def test_model_card_renders_class_names_as_text(exported):
    import markdown
    card = (exported / "bundle" / "README.md").read_text(encoding="utf-8")
    page = Elements(markdown.markdown(card, extensions=["tables", "fenced_code"]))
    assert_only_text(page, "README.md")
    assert not any(tag == "img" for tag, _ in page.tags)
    assert any(tag == "table" for tag, _ in page.tags)  # the per-class table still is one
    rows = [line for line in card.splitlines() if line.startswith("| ") and "0." in line]
    assert all(line.count(" | ") == 4 for line in rows), "a name split a table row"


@pytest.mark.parametrize("page", ["bundle/report.html", "run/report.html"])
def test_report_pages_show_class_names_as_text(exported, page):
    assert_only_text(Elements((exported / page).read_text(encoding="utf-8")), page)


@pytest.mark.parametrize("name", PAYLOADS + ["a_b-c.d!e#f+g~h:i\\j{k} &amp; \"q\""])
def test_escaping_keeps_every_character(name):
    import markdown

    from cnnbp.report.card import text
    html = markdown.markdown(text(name))
    assert "".join(Elements(html).text) == name and Elements(html).tags == [("p", {})]
    html = markdown.markdown(f"| h |\n|---|\n| {text(name, cell=True)} |", extensions=["tables"])
    assert "".join(Elements(html).text).split() == ["h", *name.split()]
    assert [t for t, _ in Elements(html).tags].count("td") == 1
