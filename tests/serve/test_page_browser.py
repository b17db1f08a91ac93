"""The page at ``/`` in a real headless Chromium, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no driver or websocket library needed): it lists the models,
uploads an image through the file input and shows the classify endpoint's top-1, with no
console errors and no request to another origin. The screenshot is kept under pytest's tmp dir.
"""
import base64
import json

import numpy as np
import pytest

from tests.browser import Chromium, executable
from tests.serve.conftest import post
from tests.serve.test_server import png_bytes

pytestmark = pytest.mark.skipif(executable() is None, reason="needs Debian's chromium")


UPLOAD = """
(async () => {
  const until = async (find, what) => {
    for (let i = 0; i < 300; i++) { const el = find(); if (el) return el;
      await new Promise(r => setTimeout(r, 50)); }
    throw new Error("timed out waiting for " + what);
  };
  const card = await until(() => document.querySelector('section[data-model="digits"]'),
                           "the digits card");
  const names = [...document.querySelectorAll("section[data-model]")].map(s => s.dataset.model);
  const bytes = Uint8Array.from(atob("%s"), c => c.charCodeAt(0));
  const input = card.querySelector('input[type="file"]');
  const files = new DataTransfer();
  files.items.add(new File([bytes], "d.png", {type: "image/png"}));
  input.files = files.files;
  input.dispatchEvent(new Event("change"));
  const cell = await until(() => card.querySelector(".result table td") ||
                                 card.querySelector(".result .err"), "the result");
  return JSON.stringify({names, top1: cell.textContent});
})()
"""


def test_page_uploads_an_image_and_shows_the_top1(server, tmp_path):
    image = png_bytes((np.random.default_rng(5).random((8, 8)) * 255).astype("uint8"))
    status, _, body = post(f"{server.url}/v2/models/digits/classify?top_k=1", image,
                           {"content-type": "image/png"})
    assert status == 200
    expected = json.loads(body)["top_k"][0]["label"]
    browser = Chromium()
    try:
        session = browser.new_page()
        browser.send("Page.navigate", {"url": f"{server.url}/"}, session=session)
        result = browser.send("Runtime.evaluate", {
            "awaitPromise": True, "expression": UPLOAD % base64.b64encode(image).decode()},
            session=session)
        assert "exceptionDetails" not in result, result
        got = json.loads(result["result"]["value"])
        shot = browser.send("Page.captureScreenshot", session=session)["data"]
        (tmp_path / "serve_page.png").write_bytes(base64.b64decode(shot))
    finally:
        browser.close()
    assert got["names"] == ["digits", "mnist1d"] and got["top1"] == expected, got
    errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] == "error")
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    assert not errors, errors
    urls = [e["params"]["request"]["url"] for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"]
    assert urls and all(u.startswith(server.url) or u.startswith(("blob:", "data:"))
                        for u in urls), urls
