"""Issue 23's acceptance in a real browser: headless Debian chromium, driven by selenium through the
system's chromedriver, opens the page of a real `catdog-runtime VIDEO --realtime --serve` process and
must see the MJPEG <img> decode frames and the label follow the Server-Sent Events, then leaves a
screenshot in reports/serve/browser.png. The token flow is checked where it matters, in a browser: the
<img> and the EventSource cannot send an Authorization header, so the HttpOnly cookie that /?token=T
sets is the only way they get in.

Never skipped: a missing chromium or chromedriver fails with the apt packages to install (.ci/run
installs them). No torch here: the torch-free venv runs tests/runtime."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from testkit.runtime import write_video
from testkit.serve import ServerProc

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REPORT = Path(__file__).resolve().parents[3] / "reports" / "serve" / "browser.png"
WAIT_S = 60.0  # a bound, not a sleep: every wait below polls and returns as soon as its condition holds
TOKEN = "browser-test-token"
RELEASE_S = 3.0  # how soon a page that was left must give its MJPEG viewer slot back

# What the page shows: the stream <img>'s decoded size, the SSE count, the label, bars and stage rows.
STATE_JS = """
const img = document.getElementById("stream"), label = document.getElementById("label");
return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
        updates: Number(document.getElementById("updates").dataset.count), label: label.textContent,
        bars: document.querySelectorAll("#bars .bar").length, stages: document.querySelectorAll("#stages tr").length};
"""


def _binaries() -> tuple[str, str]:
    # The system's browser and driver, never one selenium would download: CI is offline-tolerant and
    # a skipped browser test would let a broken page through, so absence is a failure that says what to do.
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: the browser test needs Debian's chromium and its driver; "
                    "install them with `apt-get install -y chromium chromium-driver` (.ci/run does)", pytrace=False)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(tmp_path, monkeypatch):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: it comes with the runtime-test and dev extras "
                    "(pip install -e '.[runtime-test]')", pytrace=False)
    chromium, chromedriver = _binaries()
    # An explicit driver path and binary already keep Selenium Manager from resolving anything; SE_OFFLINE
    # makes sure it never reaches for the network if some selenium version consults it anyway.
    monkeypatch.setenv("SE_OFFLINE", "1")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
                 "--disable-gpu", "--disable-dev-shm-usage",  # containers: no GPU, a small /dev/shm
                 f"--user-data-dir={tmp_path / 'chromium-profile'}",  # no state shared with another run
                 "--window-size=1280,800", "--no-first-run", "--no-default-browser-check", "--disable-extensions"):
        opts.add_argument(flag)
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=opts)
    try:
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)  # the fetch() probes below are async scripts
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos) -> Path:
    # 320x240 at 10 fps for 60 s under --realtime: many times a test's few seconds, so the run is
    # still playing (and the server still up) whenever the browser looks; each test stops its run.
    # Each photo holds for 2 s, as a camera's scene would: the stream and the panel then show the same one.
    held = [p for p in photos for _ in range(20)]
    return write_video(tmp_path_factory.mktemp("browser") / "clip.avi", held, 600, fps=10.0, size=(320, 240))


def _serve(models, clip, *extra) -> ServerProc:
    return ServerProc(clip, "--realtime", *extra)  # the shipped model: the screenshot is docs/serving.md's


def _stop(server: ServerProc, driver) -> str:
    """Stop the run (SIGTERM, as an operator would) and hand back its stderr; killed if it does not
    stop, so no test leaves a process behind."""
    try:
        # The page leaves first (its pagehide closes the MJPEG and event streams): a server stopped
        # under open streams waits out uvicorn's graceful timeout and logs the cancelled responses'
        # tracebacks, since Serving.stop closes the hub, which ends those streams, only after the
        # server thread; the assertion on stderr is about the run, not that shutdown order.
        try:
            driver.get("about:blank")
        except Exception:  # a dead browser must not keep the server from being stopped
            pass
        _, _, err = server.stop(timeout=30)
        return err
    finally:
        server.kill()


def _until(what: str, check, server: ServerProc):
    """Poll `check` (-> (ok, what it saw)) until ok; fail after WAIT_S with what it last saw."""
    deadline = time.monotonic() + WAIT_S
    last = None
    while time.monotonic() < deadline:
        ok, last = check()
        if ok:
            return last
        assert server.p.poll() is None, f"the server exited ({server.p.returncode}): {''.join(server.err)}"
        time.sleep(0.2)
    pytest.fail(f"{what} within {WAIT_S:.0f} s: {last}; server stderr: {''.join(server.err)}")


def _wait_live(driver, server: ServerProc, after: int = 0) -> dict:
    """The <img> has decoded frames and the label followed at least two events since `after` (the
    first may be the prediction the server already had; the second proves the events are live)."""
    def live():
        s = driver.execute_script(STATE_JS)
        ok = (s["complete"] and s["width"] > 0 and s["updates"] >= after + 2
              and s["label"] not in ("", "waiting..."))
        return ok, s

    return _until("the page did not go live", live, server)


def _viewers(server: ServerProc, headers: dict | None = None) -> int:
    _, _, body = server.request("GET", "/metrics", headers=headers)
    line = next(x for x in body.decode().splitlines() if x.startswith("catdog_stream_viewers "))
    return int(float(line.split()[1]))


def _body_json(driver) -> dict:
    # Chromium shows a JSON response as text in a <pre>: what a person who opened the link would read.
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.TAG_NAME, "body").text
    try:
        return json.loads(text)
    except ValueError:
        pytest.fail(f"expected the one-line JSON error, the browser shows: {text[:500]!r}")


def _status(driver, path: str) -> int:
    """The HTTP status of a same-origin fetch from the open page (selenium does not expose the
    status of a navigation); fetch sends the page's cookies, as the <img> and EventSource do."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(String(e)));", path)


def _screenshot(driver, path: Path) -> None:
    # Atomic: a reader (or a failed run) never sees half a PNG at the published name.
    path.parent.mkdir(parents=True, exist_ok=True)
    png = driver.get_screenshot_as_png()
    fd, tmp = tempfile.mkstemp(prefix=".browser-", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(png)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make the report unreadable to other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def test_page_goes_live_in_chromium(browser, models, clip):
    server = _serve(models, clip)
    err = ""
    try:
        base = f"http://127.0.0.1:{server.port}"
        browser.get(base + "/")
        assert browser.title == "catdog-edge live"
        state = _wait_live(browser, server)
        assert (state["width"], state["height"]) == (320, 240), state  # the run's frames, full size
        assert state["label"] in ("cat", "dog"), state  # the shipped model's classes
        assert state["bars"] == 2 and state["stages"] >= 2, state  # a bar per class; FPS + stage rows
        # The events go on after the first two (one long SSE response, not a page that stopped).
        state = _wait_live(browser, server, after=state["updates"])
        _screenshot(browser, REPORT)
        assert REPORT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # A blank or error page compresses to a few KB; the page with a decoded 320x240 frame does not.
        assert REPORT.stat().st_size > 20_000, REPORT.stat().st_size
        # The console, read once (reading empties it): no failed request (a /favicon.ico 404 was one),
        # no script error.
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe

        # Leaving the page gives its viewer slot (one of --max-viewers) back at once, though chromium
        # keeps the page alive in its back/forward cache: left open there, the stream held the slot
        # until chromium evicted the page for the bytes it kept receiving (~8 s at this clip's rate,
        # minutes on a slow camera). Coming back restores the page, and its stream and events with it.
        assert _viewers(server) == 1
        browser.execute_script("window.catdogKept = true")  # survives only a restore from that cache
        browser.get("about:blank")
        left = time.monotonic()
        _until("the viewer slot was not given back", lambda: (_viewers(server) == 0, _viewers(server)), server)
        assert time.monotonic() - left < RELEASE_S, f"the slot came back only after {time.monotonic() - left:.1f} s"
        browser.back()
        assert browser.execute_script("return window.catdogKept === true"), \
            "chromium reloaded the page instead of restoring it from the back/forward cache"
        _wait_live(browser, server, after=browser.execute_script(STATE_JS)["updates"])
        assert _viewers(server) == 1
    finally:
        err = _stop(server, browser)
    assert "Traceback" not in err, err


def test_token_flow_in_chromium(browser, models, clip):
    server = _serve(models, clip, "--token", TOKEN)
    err = ""
    try:
        base = f"http://127.0.0.1:{server.port}"
        # Without the token: the one-line JSON 401, and nothing of the page (no stream, no events).
        browser.get(base + "/")
        assert "token" in _body_json(browser)["error"]
        assert _status(browser, "/") == 401
        assert _status(browser, "/stream.mjpg") == 401 and _status(browser, "/api/events") == 401
        browser.get(base + "/?token=wrong")
        assert _body_json(browser) == {"error": "wrong token"}
        assert browser.get_cookie("catdog_session") is None
        # With it: a redirect to / that drops the token from the address bar and sets the session cookie.
        browser.get(base + f"/?token={TOKEN}")
        assert browser.current_url == base + "/", browser.current_url
        cookie = browser.get_cookie("catdog_session")
        assert cookie is not None and cookie["httpOnly"], cookie
        assert cookie["value"] != TOKEN  # a value derived from the token, not the token
        assert "catdog_session" not in browser.execute_script("return document.cookie")  # out of scripts' reach
        # The <img> and the EventSource carry only the cookie, and that is enough for both.
        state = _wait_live(browser, server)
        assert (state["width"], state["height"]) == (320, 240), state
        assert _status(browser, "/api/latest") == 200
        assert _viewers(server, {"Authorization": f"Bearer {TOKEN}"}) == 1
    finally:
        err = _stop(server, browser)
    assert "Traceback" not in err, err
