"""The HTML report in a real browser: headless Chromium driven over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: the DevTools protocol runs over two
pipes (file descriptors 3 and 4, one JSON message per NUL-terminated frame), so the test needs
nothing beyond the standard library and the browser. It loads the page from a ``file://`` URL
and asserts: no console error or uncaught exception, no network request other than the page
itself and ``data:`` URIs, every ``<img>`` decoded with a non-zero natural size, and a
screenshot that is not blank.

When ``chromium`` is missing, the set-up installs it with ``apt-get install -y chromium`` where
that is possible (root, apt-get present); where it is not, the tests skip and say why. The
harness itself is tested on a page that breaks every rule, so that a passing report is not a
harness that sees nothing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import io
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEFAULT_CHROMIUM = "/usr/bin/chromium"


def _find_chromium() -> str | None:
    if os.access(DEFAULT_CHROMIUM, os.X_OK):
        return DEFAULT_CHROMIUM
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _install_chromium() -> str:
    """Try ``apt-get install -y chromium``; returns why it could not, or ``""``."""
    apt = shutil.which("apt-get")
    if apt is None:
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "installing needs root"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "install", "-y", "chromium"], [apt, "update"], [apt, "install", "-y", "chromium"]):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"{' '.join(cmd)} failed: {err}"
        if cmd[-1] == "chromium" and done.returncode == 0:
            return ""
    return f"apt-get install -y chromium failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary, installed with apt-get when missing and possible; else skip."""
    path = _find_chromium()
    if path is None:
        why = _install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(
                f"headless Chromium is not installed and could not be installed ({why or 'not found after install'}); "
                "install it with 'apt-get install -y chromium' to run the browser tests"
            )
    return path


# -- a DevTools protocol client over pipes ------------------------------------------------------------------


def _high_fd(fd: int) -> int:
    """A duplicate of ``fd`` numbered 10 or above (so that dup2 onto 3 and 4 cannot clobber it)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


@dataclass
class PageReport:
    """What the browser saw of one page."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    screenshot: bytes = b""
    loaded: bool = False


class Browser:
    """Headless Chromium with the DevTools protocol on a pipe (``--remote-debugging-pipe``)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_child_r, to_child_w = (_high_fd(fd) for fd in os.pipe())
        from_child_r, from_child_w = (_high_fd(fd) for fd in os.pipe())

        def child_fds() -> None:  # runs in the child before exec: its fds 3 and 4 are the pipes
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        args = [
            binary,
            "--headless=new",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--mute-audio",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=child_fds,
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._out = os.fdopen(to_child_w, "wb", buffering=0)
        self._in = os.fdopen(from_child_r, "rb", buffering=0)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._events: list[dict[str, Any]] = []
        self._next_id = 0
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(65536)
            if not chunk:
                self._messages.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                frame, buf = buf.split(b"\0", 1)
                self._messages.put(json.loads(frame))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile are kept."""
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._get(deadline, method)
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return dict(m.get("result", {}))
            self._events.append(m)

    def _get(self, deadline: float, what: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from Chromium to {what}; stderr: {''.join(self._stderr)[-2000:]}")
        try:
            m = self._messages.get(timeout=left)
        except queue.Empty:
            raise TimeoutError(
                f"no answer from Chromium to {what}; stderr: {''.join(self._stderr)[-2000:]}"
            ) from None
        if m is None:
            raise RuntimeError(f"Chromium closed the pipe; stderr: {''.join(self._stderr)[-2000:]}")
        return m

    def wait_event(self, method: str, *, session: str, timeout: float = 60.0) -> dict[str, Any]:
        for m in self._events:
            if m.get("method") == method and m.get("sessionId") == session:
                return m
        deadline = time.monotonic() + timeout
        while True:
            m = self._get(deadline, method)
            self._events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                m = self._messages.get(timeout=left)
            except queue.Empty:
                return
            if m is None:
                return
            self._events.append(m)

    def events(self, session: str) -> list[dict[str, Any]]:
        return [m for m in self._events if m.get("sessionId") == session]

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close", timeout=10.0)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        for f in (self._out, self._in):
            with contextlib.suppress(OSError):
                f.close()


_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  src: i.getAttribute('src').slice(0, 40), complete: i.complete,
  width: i.naturalWidth, height: i.naturalHeight})))"""


def load_page(binary: str, page: Path, profile: Path, *, width: int = 1280, height: int = 1600) -> PageReport:
    """Load ``page`` from its file:// URL and report requests, errors, images and a screenshot."""
    url = page.resolve().as_uri()
    out = PageReport()
    browser = Browser(binary, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_event("Page.loadEventFired", session=session, timeout=90.0)
        out.loaded = True
        browser.drain(1.0)  # late requests or console messages
        value = browser.send(
            "Runtime.evaluate", {"expression": _IMAGES_JS, "returnByValue": True}, session=session
        )["result"]["value"]
        out.images = json.loads(value)
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
        out.screenshot = base64.b64decode(shot["data"])
        for m in browser.events(session):
            method, params = m.get("method"), m.get("params", {})
            if method == "Network.requestWillBeSent":
                out.requests.append(str(params["request"]["url"]))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.errors.append(
                    f"exception: {details.get('text')} {details.get('exception', {}).get('description', '')}"
                )
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
    finally:
        browser.close()
    return out


def outside_requests(report: PageReport, page: Path) -> list[str]:
    """Requests other than the page itself and ``data:`` URIs."""
    own = page.resolve().as_uri()
    return [u for u in report.requests if u != own and not u.startswith("data:")]


def blank(png: bytes) -> bool:
    """Whether a screenshot is one flat colour (or nearly)."""
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float)
    return bool(img.std() < 2.0 or (img < 200).mean() < 0.002)


# -- tests ----------------------------------------------------------------------------------------------


def test_the_harness_sees_a_page_that_breaks_every_rule(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bad</title></head><body>"
        "<img src='http://127.0.0.1:9/x.png' alt='remote'>"
        "<img src='data:image/png;base64,AAAA' alt='broken'>"
        "<script>console.error('from the page'); throw new Error('boom');</script>"
        "</body></html>",
        encoding="utf-8",
    )
    seen = load_page(chromium, bad, tmp_path / "profile")
    assert seen.loaded
    assert any(u.startswith("http://127.0.0.1:9/") for u in outside_requests(seen, bad))
    assert any("from the page" in e for e in seen.errors)
    assert any("boom" in e for e in seen.errors)
    assert any(img["width"] == 0 for img in seen.images)


def test_blank_detects_a_flat_screenshot() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, format="PNG")
    assert blank(buf.getvalue())


def test_report_in_headless_chromium(
    chromium: str, tmp_path: Path, report_fit, report_check, report_grid
) -> None:
    from bayesct.report.html import write_html_report

    page = write_html_report(
        report_fit, check=report_check, grid=report_grid, path=tmp_path / "report.html", sensitivity=False
    )
    seen = load_page(chromium, page, tmp_path / "profile")
    assert seen.loaded
    assert seen.errors == []
    assert outside_requests(seen, page) == []
    assert len(seen.images) >= 4
    for img in seen.images:
        assert img["src"].startswith("data:image/")
        assert img["complete"] and img["width"] > 0 and img["height"] > 0, img
    assert not blank(seen.screenshot)


def test_failed_fit_report_in_headless_chromium(chromium: str, tmp_path: Path, report_fit) -> None:
    """The page without a check or grid (and with the warning banner) loads as cleanly."""
    from tests.report.conftest import failed

    from bayesct.report.html import write_html_report

    page = write_html_report(failed(report_fit), path=tmp_path / "failed.html", sensitivity=False)
    seen = load_page(chromium, page, tmp_path / "profile")
    assert seen.errors == []
    assert outside_requests(seen, page) == []
    assert all(img["width"] > 0 for img in seen.images)
    assert not blank(seen.screenshot)
