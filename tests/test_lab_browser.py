"""The lab's page in a real browser: headless Chromium loads it from a lab server on 127.0.0.1,
the test clicks Play and checks that the plotted points and the loss readout change, then types
a bad learning rate and checks the server's refusal is shown on the page.

The browser is driven through the Chrome DevTools Protocol over a pipe (--remote-debugging-pipe:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so no Python package is
needed.  Skipped where no Chromium is installed (Debian: apt-get install -y chromium).
"""
import json
import os
import select
import shutil
import subprocess
import threading
import time

import pytest

from tinygan.lab.server import LabServer

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = os.environ.get("TINYGAN_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
pytestmark = pytest.mark.skipif(BROWSER is None,
                                reason="no Chromium installed (Debian: apt-get install -y chromium)")
TIMEOUT = 30          # seconds for any one wait: a cold browser start on a busy 2-core machine


class DevTools:
    """A minimal Chrome DevTools Protocol client over the two pipes of --remote-debugging-pipe."""

    def __init__(self, url, user_data_dir):
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()
        args = [BROWSER, "--headless", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", f"--user-data-dir={user_data_dir}", "--window-size=1100,1100"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")           # Chromium refuses to sandbox itself as root

        def pipes_as_fd_3_and_4():                # where Chromium expects them
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.proc = subprocess.Popen(args + [url], pass_fds=(3, 4), preexec_fn=pipes_as_fd_3_and_4,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id = b"", 0

    def send(self, method, session=None, **params):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:                                # skip events until our answer comes
            while b"\0" not in self._buffer:
                wait = max(0.0, deadline - time.monotonic())
                ready, _, _ = select.select([self._from_browser], [], [], wait)
                chunk = os.read(self._from_browser, 1 << 20) if ready else b""
                if not chunk:
                    raise TimeoutError(f"no answer from the browser to {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def close(self):
        try:
            self.send("Browser.close")
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


class Page:
    def __init__(self, devtools: DevTools):
        self.dt = devtools
        deadline = time.monotonic() + TIMEOUT
        while True:
            pages = [t for t in devtools.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        attached = devtools.send("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)
        self.session = attached["sessionId"]

    def js(self, expression):
        result = self.dt.send("Runtime.evaluate", self.session, expression=expression, returnByValue=True,
                              awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, what):
        deadline = time.monotonic() + TIMEOUT
        while not self.js(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page did not get to: {what}")
            time.sleep(0.05)

    def click(self, element_id):
        """A real mouse click (press and release) at the middle of the element."""
        x, y = self.js(f"(() => {{ const r = document.getElementById('{element_id}').getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.dt.send("Input.dispatchMouseEvent", self.session, type=kind, x=x, y=y, button="left",
                         clickCount=1)

    def snapshot(self):
        return self.js("""({step: lab.state.step, frames: lab.frames,
                            readout: document.getElementById('loss-readout').textContent,
                            points: document.getElementById('points').toDataURL(),
                            fake: lab.state.fake.slice(0, 50),
                            error: document.getElementById('error').hidden ? null
                                   : document.getElementById('error').textContent})""")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """One browser for the file (its start takes most of the time) on a fresh lab server."""
    server = LabServer(("127.0.0.1", 0))      # listening already: the browser's request waits
    # the browser starts before the server's thread: preexec_fn runs in a forked copy of this
    # process, which is only safe while it has a single thread
    devtools = DevTools(server.url, tmp_path_factory.mktemp("chromium-profile"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        p = Page(devtools)
        p.wait_for("window.lab && window.lab.ready === true", "loaded options and the first state")
        yield p
        assert p.js("lab.errors") == []                # no script error on the page, all along
    finally:
        devtools.close()
        server.shutdown()
        server.server_close()


def test_play_moves_the_plotted_points_and_the_loss_readout(page):
    before = page.snapshot()
    assert before["step"] == 0 and before["error"] is None and before["readout"].startswith("step 0")
    page.click("play")
    page.wait_for("lab.state.step >= 30 && lab.frames >= 6", "30 training steps over at least 5 frames")
    page.click("play")                                          # pause
    page.wait_for("!lab.playing", "paused")
    after = page.snapshot()
    assert after["error"] is None
    assert after["readout"] != before["readout"] and after["readout"].startswith(f"step {after['step']}")
    assert after["fake"] != before["fake"]                      # new points from the server...
    assert after["points"] != before["points"]                  # ...and a different picture on the canvas


def test_a_refused_value_is_shown_on_the_page_while_it_plays_on(page):
    page.click("play")
    page.js("(() => { const el = document.getElementById('lr_g'); el.value = '-1';"
            " el.dispatchEvent(new Event('change')); })()")
    page.wait_for("!document.getElementById('error').hidden", "the error box shown")
    frames = page.js("lab.frames")
    page.wait_for(f"lab.frames >= {frames + 3}", "three more frames")     # the run goes on...
    page.click("play")
    page.wait_for("!lab.playing", "paused")
    message = page.js("document.getElementById('error').hidden ? null"
                      " : document.getElementById('error').textContent")
    assert message and "HTTP 400" in message and "lr_g must be a number" in message   # ...and it stays
    assert page.js("document.getElementById('lr_g').classList.contains('invalid')")
    assert page.js("lab.state.settings.lr_g") == 0.001                      # the old value trains on
    page.js("(() => { const el = document.getElementById('lr_g'); el.value = '0.002';"
            " el.dispatchEvent(new Event('change')); })()")
    page.wait_for("document.getElementById('error').hidden", "the error box gone once the value is fixed")
    assert page.js("lab.state.settings.lr_g") == 0.002


def test_points_drawn_with_the_mouse_become_the_data(page):
    page.js("(() => { const el = document.getElementById('dataset'); el.value = 'drawn';"
            " el.dispatchEvent(new Event('change')); })()")
    x0, y0, w = page.js("(() => { const r = document.getElementById('points').getBoundingClientRect();"
                        " return [r.x, r.y, r.width]; })()")
    # a horizontal stroke through the middle of the canvas, from a quarter to three quarters across
    stroke = [(x0 + w * (0.25 + 0.5 * i / 20), y0 + w / 2) for i in range(21)]
    events = [("mousePressed", stroke[0]), *(("mouseMoved", p) for p in stroke[1:]),
              ("mouseReleased", stroke[-1])]
    for kind, (x, y) in events:
        page.dt.send("Input.dispatchMouseEvent", page.session, type=kind, x=x, y=y, button="left",
                     clickCount=1)
    assert page.js("lab.drawn.length") >= 10
    page.click("draw-use")
    page.wait_for("lab.state.settings.dataset === 'drawn'", "reset on the drawing")
    real = page.js("lab.state.real")
    # the canvas spans [-3, 3]: the stroke is y = 0 for x in [-1.5, 1.5]; samples add noise of std 0.05
    assert all(abs(y) < 0.3 and -1.8 < x < 1.8 for x, y in real)
