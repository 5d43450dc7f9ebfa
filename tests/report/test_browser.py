"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed by .ci/run) driven over the
DevTools protocol on a pipe (--remote-debugging-pipe: JSON messages, no websocket, no extra package). Checks: no
console error or exception, no network request besides the file itself, and every chart's area in a screenshot
is drawn (not blank)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pytest

import gradient_doctor as gd
from tests.report.test_report import train

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium; .ci/run does it as root)"
)


class Browser:
    """Headless Chromium with the DevTools protocol on fds 3 (commands in) and 4 (replies out)."""

    def __init__(self) -> None:
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def wire() -> None:  # in the child: the pipes become fds 3 and 4
            os.dup2(commands_r, 100)
            os.dup2(replies_w, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        self._profile = tempfile.mkdtemp()
        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             f"--user-data-dir={self._profile}", "--hide-scrollbars", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(commands_r)
        os.close(replies_w)
        self._buffer, self._id, self.events = b"", 0, []

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reply = self._next()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)
        raise TimeoutError(method)

    def _next(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:
            self.process.kill()
        self.process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._replies)
        shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def visit(browser: Browser, path) -> tuple[list[str], list[str], str, dict]:
    """Open `path`; return (errors, requested URLs, session, page size). Errors: console errors, uncaught
    exceptions, log entries of level error (failed loads, CSP violations)."""
    target = browser.send("Target.createTarget", url="about:blank")["targetId"]
    session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.send(f"{domain}.enable", session)
    browser.send("Emulation.setDeviceMetricsOverride", session, width=1200, height=900, deviceScaleFactor=1,
                 mobile=False)
    browser.events.clear()
    browser.send("Page.navigate", session, url=path.as_uri())
    for _ in range(100):  # wait for the load event
        if any(e.get("method") == "Page.loadEventFired" for e in browser.events):
            break
        browser.send("Runtime.evaluate", session, expression="1")
        time.sleep(0.05)
    else:
        raise AssertionError(f"{path} did not finish loading within 5 s (no Page.loadEventFired)")
    errors, urls = [], []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(str(params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(str(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
        elif method == "Network.requestWillBeSent":
            urls.append(params["request"]["url"])
    size = browser.send("Runtime.evaluate", session, returnByValue=True,
                        expression="({w: document.documentElement.scrollWidth, h: document.documentElement.scrollHeight})")
    return errors, urls, session, size["result"]["value"]


def test_the_harness_sees_a_script_error(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedFunction()</script></body></html>")
    errors, _, _, _ = visit(browser, page)
    assert any("undefinedFunction" in e for e in errors)


def test_report_opens_without_errors_offline_and_every_chart_is_drawn(browser, tmp_path):
    from PIL import Image

    trained = train(tmp_path)
    page = gd.report(trained.run, tmp_path / "report.html")
    errors, urls, session, size = visit(browser, page)
    assert errors == []
    assert urls == [page.as_uri()]  # offline: nothing else was fetched
    boxes = browser.send("Runtime.evaluate", session, returnByValue=True, expression="""
        [...document.querySelectorAll('figure[data-chart]')].map(f => {
            const r = f.querySelector('svg').getBoundingClientRect();
            return {chart: f.dataset.chart, x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height};
        })""")["result"]["value"]
    assert {b["chart"] for b in boxes} == {"grad_flow", "grad_norm_heatmap", "update_ratio_heatmap", "saturation",
                                           "dead", "loss", "ridge"}
    shot = browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                        clip={"x": 0, "y": 0, "width": size["w"], "height": size["h"], "scale": 1})
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")).astype(int)
    for b in boxes:
        assert b["w"] > 300 and b["h"] > 100, b
        # below the legend row: the marks, whose colour axes and text (grey) lack
        region = image[int(b["y"]) + 30 : int(b["y"] + b["h"]), int(b["x"]) : int(b["x"] + b["w"])]
        coloured = (region.max(axis=2) - region.min(axis=2) > 40).mean()
        assert coloured > 0.005, f"{b['chart']}: only {coloured:.3%} of its area is drawn in colour"
    # the heatmap's cells cover their grid: inside it, colour everywhere (NaN cells would be pale grey)
    grid = browser.send("Runtime.evaluate", session, returnByValue=True, expression="""
        (() => { const rs = [...document.querySelectorAll('figure[data-chart=grad_norm_heatmap] rect.cell')]
                 .map(c => c.getBoundingClientRect());
                 return [Math.min(...rs.map(r => r.left)) + scrollX, Math.min(...rs.map(r => r.top)) + scrollY,
                         Math.max(...rs.map(r => r.right)) + scrollX, Math.max(...rs.map(r => r.bottom)) + scrollY]; })()
        """)["result"]["value"]
    left, top, right, bottom = (int(round(v)) for v in grid)
    cells = image[top + 1 : bottom - 1, left + 1 : right - 1]
    assert cells.size and (np.abs(cells - 255).sum(axis=2) > 60).mean() > 0.99
