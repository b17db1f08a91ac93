"""A real headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-
pipe``): no driver binary, no port, no extra Python package. ``open_page`` loads a URL and
returns what a person would notice: console errors, failed or external requests, images that
did not decode, and a screenshot."""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def executable() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class Visit:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)        # every URL the page asked for
    failed: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)         # alt, complete, naturalWidth
    screenshot: bytes = field(default=b"", repr=False)
    pdf: bytes = field(default=b"", repr=False)               # the page printed


class Chromium:
    def __init__(self, timeout: float = 60.0):
        exe = executable()
        assert exe, "chromium is not installed"
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="cnnbp-chromium-")
        to_chrome_r, self._w = os.pipe()
        self._r, from_chrome_w = os.pipe()

        def wire():  # Chromium reads commands on fd 3 and writes replies on fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._r], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self._read_message(deadline)
            self.events.append(e)
            if e.get("method") == method:
                return e

    def new_page(self) -> str:
        """A blank page with the Page, Runtime, Log and Network events on; its session id."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=session)
        return session

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


def open_page(url: str, settle: float = 0.5) -> Visit:
    """Load ``url`` in a fresh headless Chromium and report what happened."""
    browser = Chromium()
    try:
        session = browser.new_page()
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session)
        browser.events.clear()
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        time.sleep(settle)  # late console messages and requests
        images = browser.send("Runtime.evaluate", {
            "expression": "JSON.stringify([...document.images].map(i => ({alt: i.alt, "
                          "complete: i.complete, naturalWidth: i.naturalWidth})))",
            "returnByValue": True}, session=session)["result"]["value"]
        shot = browser.send("Page.captureScreenshot", {"format": "png",
                                                       "captureBeyondViewport": True},
                            session=session)["data"]
        pdf = browser.send("Page.printToPDF", {"printBackground": True}, session=session)["data"]
        visit = Visit(images=json.loads(images), screenshot=base64.b64decode(shot),
                      pdf=base64.b64decode(pdf))
        for e in browser.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                visit.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                     for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                visit.console_errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                visit.console_errors.append(p["entry"]["text"])
            elif m == "Network.requestWillBeSent":
                visit.requests.append(p["request"]["url"])
            elif m == "Network.loadingFailed":
                visit.failed.append(p.get("errorText", "failed"))
        return visit
    finally:
        browser.close()


def save(visit: Visit, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(visit.screenshot)
    return path


def at_width(url: str, width: int, scripts: list[str], shot: Path) -> list:
    """Load ``url`` at ``width`` CSS pixels (a phone's below 600), run each script in turn
    (promises awaited), save a full-page screenshot to ``shot`` and return the scripts'
    values; a script that throws fails the caller's assertion with its details."""
    browser = Chromium()
    try:
        session = browser.new_page()
        browser.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600},
            session=session)
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        values = []
        for script in scripts:
            done = browser.send("Runtime.evaluate", {"expression": script, "awaitPromise": True,
                                                     "returnByValue": True}, session=session)
            assert "exceptionDetails" not in done, done
            values.append(done["result"].get("value"))
        data = browser.send("Page.captureScreenshot", {"captureBeyondViewport": True},
                            session=session)["data"]
        shot.parent.mkdir(parents=True, exist_ok=True)
        shot.write_bytes(base64.b64decode(data))
        return values
    finally:
        browser.close()
