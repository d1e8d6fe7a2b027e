"""The HTML pages in a real headless Chromium, driven over the DevTools protocol on a pipe.

`--remote-debugging-pipe` makes Chromium read protocol messages from fd 3 and write to fd 4 (each
JSON message ends with a NUL byte): no port, no network and no extra Python package. Debian's
`chromium` package is needed (CI installs it: apt-get install -y chromium).
"""
from __future__ import annotations

import html
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from reports.compare import compare_runs, write_compare
from reports.report import build_report
from reports.synthetic import make_run

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent: install Debian's "
                                    "chromium (apt-get install -y chromium) to test the HTML pages in a browser")
EVIL_MODEL = "<script>alert(1)</script>"
EVIL_FAMILY = 'x"><img src=y onerror=alert(2)>'
FAMS = {"mp3": ("perturbation", (1, 2)), EVIL_FAMILY: ("perturbation", (1,))}


class Browser:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, user_dir: Path):
        r_in, self._w = os.pipe()      # we write, Chromium reads on fd 3
        self._r, w_out = os.pipe()     # Chromium writes on fd 4, we read

        def fds():
            os.dup2(r_in, 3)
            os.dup2(w_out, 4)
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={user_dir}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(r_in)
        os.close(w_out)
        self._buf, self._id, self.events = b"", 0, []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable", "Network.enable"):
            self.call(domain, session=True)

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self._r], [], [], timeout)
        if ready:
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its debugging pipe")
            self._buf += chunk
        while b"\0" in self._buf:
            msg, self._buf = self._buf.split(b"\0", 1)
            self.events.append(json.loads(msg))

    def call(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 20.0):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for i, ev in enumerate(self.events):
                if ev.get("id") == self._id:
                    del self.events[i]
                    if "error" in ev:
                        raise RuntimeError(f"{method}: {ev['error']}")
                    return ev.get("result", {})
            self._pump(0.2)
        raise TimeoutError(f"no answer to {method} in {timeout} s")

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                      session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:60]}...: {r['exceptionDetails']}")
        return r["result"].get("value")

    def open(self, path: Path, timeout: float = 20.0) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        end = time.monotonic() + timeout
        handled = 0
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(f"{path} did not load in {timeout} s")
            dialogs = [e for e in self.events if e.get("method") == "Page.javascriptDialogOpening"]
            for _ in dialogs[handled:]:          # an alert() blocks the page: dismiss it, problems() reports it
                self.call("Page.handleJavaScriptDialog", {"accept": True}, session=True)
            handled = len(dialogs)
            self._pump(0.2)
        self.eval("Promise.all(Array.from(document.images).map(i => i.decode().catch(() => null)))")

    def click(self, selector: str) -> None:
        box = self.eval(f"(() => {{const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
                        " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1}, session=True)

    def set_width(self, width: int, height: int = 900) -> None:
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    def overflow(self) -> list[str]:
        """What scrolls sideways: the page itself, or any table box wider than its container."""
        return self.eval("(() => { const out = []; const d = document.documentElement;"
                         " if (d.scrollWidth > d.clientWidth) out.push('page ' + d.scrollWidth);"
                         " document.querySelectorAll('.scroll').forEach(e => { if (e.scrollWidth > e.clientWidth + 1)"
                         " out.push((e.querySelector('table') || {dataset: {}}).dataset.key + ' ' + e.scrollWidth); });"
                         " return out; })()")

    def screenshot(self, path: Path, width: int = 1400) -> None:
        """The whole page at ``width`` CSS pixels, as a PNG."""
        import base64

        self.set_width(width)
        h = int(self.eval("document.documentElement.scrollHeight"))
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                    "clip": {"x": 0, "y": 0, "width": width, "height": h,
                                                             "scale": 1}}, session=True, timeout=60)
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def problems(self) -> list[str]:
        """JS exceptions, console errors, dialogs (alert) and requests that are not file: or data:."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')}")
            elif m == "Page.javascriptDialogOpening":
                out.append(f"dialog: {p.get('message')}")
            elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(("file:", "data:")):
                out.append(f"request: {p['request']['url']}")
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (TimeoutError, RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("html")
    run = make_run(root / "run", models=("model-a", EVIL_MODEL), fams=FAMS, n_bonafide=20, n_spoof=25, n_boot=20)
    rep = build_report(run)
    return run, rep


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def test_untrusted_names_are_escaped(built):
    _, rep = built
    page = (rep.out / "report.html").read_text()
    assert html.escape(EVIL_MODEL) in page and EVIL_MODEL not in page
    assert html.escape(EVIL_FAMILY) in page and "<img src=y" not in page
    assert page.count("<script") == 1                  # only the page's own sorting script
    assert "a smoke test, not a benchmark" in page
    assert all(p.parent == rep.out / "plots" for k, p in rep.files.items() if k.startswith("plots/"))


@needs_chromium
def test_report_page_loads_cleanly_with_every_table_and_plot(built, browser):
    _, rep = built
    browser.open(rep.out / "report.html")
    assert browser.problems() == []
    n_plots = sum(k.startswith("plots/") and k.endswith(".png") for k in rep.files)
    assert n_plots == 7                                # overview + 2 families x (EER, DET, histograms)
    imgs = browser.eval("Array.from(document.images).map(i => [i.src.slice(0, 22), i.complete, i.naturalWidth])")
    assert len(imgs) == n_plots
    assert all(src == "data:image/png;base64," and done and w > 0 for src, done, w in imgs)
    titles = browser.eval("Array.from(document.querySelectorAll('table.sortable')).map(t => t.dataset.key)")
    assert sorted(titles) == sorted(t.key for t in rep.tables)
    assert browser.eval("document.body.innerText").count(EVIL_MODEL) >= 3
    assert "a smoke test, not a benchmark" in browser.eval("document.getElementById('banner').innerText")


@needs_chromium
def test_clicking_a_header_sorts_the_table(built, browser):
    _, rep = built
    browser.open(rep.out / "report.html")
    col = "table[data-key='eer-mp3']"
    values = f"Array.from(document.querySelectorAll(\"{col} tbody tr\")).map(r => Number(r.cells[3].dataset.v))"
    names = f"Array.from(document.querySelectorAll(\"{col} tbody tr\")).map(r => r.cells[0].innerText)"
    before = browser.eval(values)
    assert len(before) == 2
    browser.click(f"{col} th:nth-child(4)")
    asc = browser.eval(values)
    assert asc == sorted(before)
    assert browser.eval(f"document.querySelector(\"{col} th:nth-child(4)\").getAttribute('aria-sort')") == "ascending"
    browser.click(f"{col} th:nth-child(4)")
    assert browser.eval(values) == sorted(before, reverse=True)
    browser.click(f"{col} th:nth-child(1)")
    assert browser.eval(names) == sorted(["model-a", EVIL_MODEL])
    assert browser.problems() == []


@needs_chromium
def test_compare_page_loads_cleanly(built, browser, tmp_path):
    run, _ = built
    files = write_compare(compare_runs([run, run], n_boot=20), tmp_path / "cmp")
    browser.open(files["compare.html"])
    assert browser.problems() == []
    assert browser.eval("document.querySelectorAll('table.sortable').length") == 1 + len(FAMS)
    assert all(w > 0 for w in browser.eval("Array.from(document.images).map(i => i.naturalWidth)"))


@needs_chromium
def test_pages_fit_1400_pixels_without_sideways_scrolling(built, browser, tmp_path):
    run, rep = built
    other = make_run(tmp_path / "other", models=("model-a", EVIL_MODEL), fams=FAMS, n_bonafide=20, n_spoof=25,
                     n_boot=20, separation={"model-a": 1.2})
    files = write_compare(compare_runs([run, other], n_boot=20), tmp_path / "cmp")
    for page in (rep.out / "report.html", files["compare.html"]):
        browser.open(page)
        browser.set_width(1400)
        assert browser.overflow() == [], page
    # the legend and rows name models, not run folders: a model in both runs is "model (run K)"
    body = browser.eval("document.body.innerText")
    assert "model-a (run 2)" in body and "model-a@other" not in body
    browser.set_width(1400)


@needs_chromium
def test_the_browser_check_sees_script_errors_dialogs_and_requests(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><img src='http://127.0.0.1:9/x.png'>"
                   "<script>alert('hi'); missing.call()</script></body></html>")
    browser.open(bad)
    found = " | ".join(browser.problems())
    assert "ReferenceError" in found and "dialog: hi" in found and "request: http://127.0.0.1:9/x.png" in found
