"""A real headless Chromium, driven over the Chrome DevTools protocol, looking at
pages served with Jenkins' Content Security Policy for archived artifacts.

What it proves about a page:
- which CSP violations the browser reported (the console's security messages
  and DevTools' ContentSecurityPolicy issues), and
- what an element looks like on screen: a screenshot of its box, decoded here
  (a small PNG decoder, no imaging library needed), so a test can count the
  pixels that are not background.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request
import zlib
from base64 import b64decode
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

# What Jenkins sends with archived artifacts (hudson.model.DirectoryBrowserSupport.CSP).
JENKINS_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'self';"

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-port=0", "--remote-allow-origins=*",
)


def find_chromium() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CspServer:
    """Serves one folder on loopback, every response with Jenkins' CSP header."""

    def __init__(self, root: Path, csp: str = JENKINS_CSP):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def end_headers(self):
                self.send_header("Content-Security-Policy", csp)
                self.send_header("X-Content-Type-Options", "nosniff")
                super().end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "CspServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """One headless Chromium with a fresh profile, and one page to drive."""

    def __init__(self, executable: str, width: int = 1000, height: int = 3000):
        import websocket  # websocket-client (requirements-dev.txt)

        self.profile = tempfile.mkdtemp(prefix="mltp-chromium-")
        self.proc = subprocess.Popen([executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._devtools_port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        self.events: List[Dict[str, Any]] = []
        for domain in ("Page", "Log", "Runtime", "Audits", "DOM"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def _devtools_port(self, timeout: float = 30.0) -> int:
        marker = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.is_file():
                lines = marker.read_text().split()
                if lines:
                    return int(lines[0])
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("chromium did not open its DevTools port")

    def call(self, method: str, **params) -> Dict[str, Any]:
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30.0) -> Dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.settle()

    def settle(self, seconds: float = 0.5) -> None:
        """Collect the events that trail the load (console messages, issues)."""
        deadline = time.monotonic() + seconds
        import websocket

        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                message = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            if "method" in message:
                self.events.append(message)
        self.ws.settimeout(30)

    def csp_violations(self) -> List[str]:
        """Every CSP violation the browser reported for the page, as text."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("source") == "security" or "Content Security Policy" in entry.get("text", ""):
                    found.append(entry.get("text", ""))
            elif event["method"] == "Runtime.consoleAPICalled":
                text = " ".join(str(a.get("value", "")) for a in params.get("args", []))
                if "Content Security Policy" in text:
                    found.append(text)
            elif event["method"] == "Audits.issueAdded":
                issue = params.get("issue", {})
                if issue.get("code") == "ContentSecurityPolicyIssue":
                    details = issue.get("details", {}).get("contentSecurityPolicyIssueDetails", {})
                    found.append(f"CSP issue: {details.get('violatedDirective')} {details.get('contentSecurityPolicyViolationType')}")
        return found

    def box(self, selector: str) -> Optional[Tuple[float, float, float, float]]:
        """x, y, width, height of the element on the page; None when there is none."""
        root = self.call("DOM.getDocument", depth=-1)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector).get("nodeId")
        if not node:
            return None
        quad = self.call("DOM.getBoxModel", nodeId=node)["model"]["border"]
        xs, ys = quad[0::2], quad[1::2]
        return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)

    def computed_style(self, selector: str, name: str) -> Optional[str]:
        """The value the browser computed for one CSS property of the element
        (what the page's stylesheet, if it was applied, made of it)."""
        root = self.call("DOM.getDocument", depth=-1)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector).get("nodeId")
        if not node:
            return None
        self.call("CSS.enable")
        for prop in self.call("CSS.getComputedStyleForNode", nodeId=node)["computedStyle"]:
            if prop["name"] == name:
                return prop["value"]
        return None

    def pixels(self, selector: str) -> "Image":
        x, y, width, height = self.box(selector) or (0, 0, 0, 0)
        if not width or not height:
            raise AssertionError(f"{selector} has no box on the page")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": x, "y": y, "width": width, "height": height, "scale": 1})
        return decode_png(b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class Image:
    def __init__(self, width: int, height: int, rows: List[List[Tuple[int, int, int]]]):
        self.width, self.height, self.rows = width, height, rows

    def count(self, predicate) -> int:
        return sum(1 for row in self.rows for pixel in row if predicate(pixel))

    def not_background(self, background=(255, 255, 255), tolerance: int = 16) -> int:
        return self.count(lambda p: max(abs(a - b) for a, b in zip(p, background)) > tolerance)

    def near(self, colour: Tuple[int, int, int], tolerance: int = 40) -> int:
        return self.count(lambda p: max(abs(a - b) for a, b in zip(p, colour)) <= tolerance)


def decode_png(data: bytes) -> Image:
    """8-bit RGB or RGBA, not interlaced: what Chromium's screenshots are."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    pos = 0
    for _ in range(height):
        kind = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, channels)])
        previous = line
    return Image(width, height, rows)


def chromium_or_reason() -> Tuple[Optional[str], str]:
    """The browser to use, or why there is none (the Makefile's `chromium` target installs it)."""
    path = os.environ.get("MLTP_CHROMIUM") or find_chromium()
    if path:
        return path, ""
    return None, "chromium is not installed and could not be: run `make chromium` as root (apt-get install chromium)"
