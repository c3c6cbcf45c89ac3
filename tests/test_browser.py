"""The benchmark page and the official Pipecat JS client, in real Chromium.

Debian's Chromium (not Playwright's download) runs headless with fake media devices; the
agent is the real server (uvicorn subprocess on 127.0.0.1, ICE on 127.0.0.1 only).
- the page at `/` in autorun mode: 200/200 pongs from the browser's own WebRTC stack, the
  audio round trip of tone bursts in loopback mode, the JSON download, the API key;
- `@pipecat-ai/client-js` + `small-webrtc-transport` (pinned in web/, bundled into
  tests/browser/): `startBotAndConnect` through `POST /start`, `onBotReady`, pongs through
  `sendClientRequest('ping', ...)`;
- CORS: the page served from another origin works against an agent that lists that origin,
  and fails against one that does not.
"""

import functools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.browser.chromium import chromium_path, launch
from tests.conftest import run_server

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "static"
BROWSER_ASSETS = Path(__file__).resolve().parent / "browser"
RESULT = "window.echoBenchResult || window.echoBenchError"

if chromium_path() is None:
    # CI installs Chromium (.ci/run); there a missing browser is a failure, not a skip.
    if os.environ.get("CI"):
        raise RuntimeError("Chromium is missing: .ci/run must apt-get install chromium")
    pytest.skip("no Chromium installed (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


class Page:
    """A browser page that records page errors and console errors."""

    def __init__(self, browser):
        self.context = browser.new_context(accept_downloads=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on(
            "console",
            lambda message: message.type == "error" and self.console_errors.append(message.text),
        )

    def autorun(self, url: str, timeout: float = 40.0):
        """Open the page at `url` and wait for its result (or its error message)."""
        self.page.goto(url)
        self.page.wait_for_function(RESULT, timeout=timeout * 1000)
        return self.page.evaluate("window.echoBenchResult"), self.page.evaluate(
            "window.echoBenchError"
        )

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser) -> Iterator[Page]:
    opened = Page(browser)
    yield opened
    opened.close()


# ---------------------------------------------------------------------------
# The page at /


def test_page_and_its_files_are_served(server):
    page = httpx.get(f"{server.url}/", timeout=5)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Echo agent benchmark</title>" in page.text
    # Cross-origin isolated, so that performance.now() has 5 us resolution.
    assert page.headers["cross-origin-opener-policy"] == "same-origin"
    assert page.headers["cross-origin-embedder-policy"] == "require-corp"
    for name in ("app.js", "bench.js", "stats.js", "plot.js", "recorder-worklet.js"):
        script = httpx.get(f"{server.url}/static/{name}", timeout=5)
        assert script.status_code == 200, name
        assert "javascript" in script.headers["content-type"], name
        assert script.text == (STATIC / name).read_text(), name
    # The mount does not shadow the API: unknown paths still get the API's JSON 404.
    missing = httpx.get(f"{server.url}/no-such-route", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    assert httpx.get(f"{server.url}/health", timeout=5).json()["status"] == "ok"


def test_autorun_pong_gets_every_pong_and_downloads_json(server, page):
    result, error = page.autorun(f"{server.url}/?autorun=1&pings=200&interval=10&mode=pong")
    assert error is None, error
    assert result["sent"] == 200
    assert result["received"] == 200
    assert result["lost"] == 0
    assert result["duplicates"] == 0
    rtt = result["rtt_ms"]
    assert 0 < rtt["min"] <= rtt["p50"] <= rtt["p95"] <= rtt["p99"] <= rtt["max"] < 5000
    assert result["jitter_ms"] is not None
    assert result["server_processing_ms"]["count"] == 200
    assert "audio_rtt_ms" not in result
    assert result["cross_origin_isolated"] is True
    assert page.errors == []
    assert page.console_errors == []
    # The bot counted the page's pings and ended when the page left.
    session = result["session_id"]
    server.wait_rooms(lambda rooms: all(r["id"] != session for r in rooms), timeout=10)

    # The summary table shows the run; the download holds every sample.
    table = page.page.inner_text("#summary")
    assert "Received\t200" in table
    with page.page.expect_download() as download_info:
        page.page.click("#download")
    record = json.loads(Path(download_info.value.path()).read_text())
    assert record["kind"] == "browser"
    assert record["params"]["pings"] == 200
    assert record["session_id"] == session
    assert [s["seq"] for s in record["samples"]] == list(range(200))
    assert all(s["status"] == "ok" and s["rtt_ms"] > 0 for s in record["samples"])
    assert record["summary"]["rtt_ms"] == result["rtt_ms"]


def test_autorun_loopback_measures_the_audio_round_trip(server, page):
    result, error = page.autorun(
        f"{server.url}/?autorun=1&pings=50&interval=10&mode=loopback&bursts=5&burst_interval=400"
    )
    assert error is None, error
    assert (result["sent"], result["received"]) == (50, 50)
    assert result["bursts"] == {"sent": 5, "detected": 5, "missed": 0}
    audio = result["audio_rtt_ms"]
    # Opus both ways, two jitter buffers and the bot: tens to hundreds of ms, never 0.
    assert 20 < audio["min"] <= audio["p50"] <= audio["max"] < 400
    assert -20 < result["received_level_dbfs"] < -3
    assert page.errors == []
    assert page.console_errors == []


def test_loopback_run_against_a_bot_that_sends_no_audio_says_so(server, page):
    # The page asks for loopback, the bot is made a pong bot (no audio): pings work, then
    # the page says that no audio came back instead of reporting figures.
    page.page.route(
        "**/connect",
        lambda route: route.continue_(post_data=json.dumps({"platforms": ["webrtc"]})),
    )
    result, error = page.autorun(
        f"{server.url}/?autorun=1&pings=5&interval=10&mode=loopback&bursts=2&join_timeout=2000"
    )
    assert result is None
    assert error == "no audio came back from the bot within 2 s"
    assert page.page.inner_text("#error") == error
    assert page.errors == []


def test_page_sends_the_api_key(tmp_path, page):
    key = "browser-test-key-0123456789abcdef"
    with run_server(tmp_path, API_KEY=key, JOIN_TIMEOUT="10") as server:
        result, error = page.autorun(f"{server.url}/?autorun=1&pings=20&interval=10")
        assert result is None
        assert "HTTP 401" in error
        assert "API key" in page.page.inner_text("#error")

        result, error = page.autorun(f"{server.url}/?autorun=1&pings=20&interval=10&key={key}")
        assert error is None, error
        assert (result["sent"], result["received"]) == (20, 20)
        # Typed into the page and remembered in this browser (localStorage) on request.
        page.page.goto(f"{server.url}/")
        page.page.fill("#key", key)
        page.page.check("#remember")
        page.page.fill("#pings", "10")
        page.page.fill("#interval", "10")
        page.page.click("#start")
        page.page.wait_for_function(RESULT, timeout=30000)
        assert page.page.evaluate("window.echoBenchResult.received") == 10
        page.page.goto(f"{server.url}/")
        assert page.page.input_value("#key") == key
        assert page.page.evaluate("localStorage.getItem('echoAgent.apiKey')") == key
    assert key not in server.log()


# ---------------------------------------------------------------------------
# The official Pipecat JS client


def test_pipecat_js_client_connects_through_start_and_pings(server, page):
    # The test page is served on the agent's own origin (intercepted, never on disk there).
    base = f"{server.url}/__pipecat_test__/"
    page.page.route(
        f"{base}*",
        lambda route: route.fulfill(
            path=str(BROWSER_ASSETS / route.request.url.removeprefix(base).split("?")[0])
        ),
    )
    page.page.goto(f"{base}pipecat-client.html")
    result = page.page.evaluate(
        "options => window.pipecatPing(options)",
        {"startUrl": f"{server.url}/start", "mode": "pong", "pings": 50},
    )
    assert result["botReady"] is not None, result
    assert result["botReady"]["version"].startswith("2.")
    assert len(result["pongs"]) == 50
    for seq, pong in enumerate(result["pongs"]):
        assert pong["type"] == "pong"
        assert pong["seq"] == seq
        assert isinstance(pong["client_timestamp"], int | float)
        assert pong["server_send_time"] >= pong["server_receive_time"]
    counts = [pong["message_count"] for pong in result["pongs"]]
    assert counts == sorted(counts) and len(set(counts)) == 50
    assert all(0 < rtt < 5000 for rtt in result["rtts"])
    assert result["errors"] == []
    assert page.errors == []


# ---------------------------------------------------------------------------
# CORS


class _StaticHandler(SimpleHTTPRequestHandler):
    """Serves static/ as the agent does: `/` is the page, `/static/...` its files."""

    def translate_path(self, path):
        path = path.split("?", 1)[0]
        if path == "/":
            path = "/index.html"
        return super().translate_path(path.removeprefix("/static"))

    def log_message(self, *args):
        pass


@contextmanager
def static_origin() -> Iterator[str]:
    """The page's files from another origin: a plain HTTP server on a free port."""
    handler = functools.partial(_StaticHandler, directory=str(STATIC))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_cors_only_for_listed_origins(tmp_path, page):
    with static_origin() as allowed, static_origin() as other:
        with run_server(tmp_path, CORS_ORIGINS=allowed, JOIN_TIMEOUT="10") as server:
            preflight = {
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            }
            answered = httpx.options(
                f"{server.url}/connect", headers={"Origin": allowed, **preflight}, timeout=5
            )
            assert answered.status_code == 200
            assert answered.headers["access-control-allow-origin"] == allowed
            refused = httpx.options(
                f"{server.url}/connect", headers={"Origin": other, **preflight}, timeout=5
            )
            assert "access-control-allow-origin" not in refused.headers

            # The page from the listed origin runs the whole benchmark cross-origin
            # (/connect, the offer, trickled candidates).
            result, error = page.autorun(
                f"{allowed}/?autorun=1&pings=30&interval=10&server={server.url}"
            )
            assert error is None, error
            assert (result["sent"], result["received"]) == (30, 30)
            assert page.errors == []

            # From an origin not listed, the browser refuses to read the answers.
            result, error = page.autorun(
                f"{other}/?autorun=1&pings=30&interval=10&server={server.url}"
            )
            assert result is None
            assert "POST" in error and "/connect" in error and "CORS_ORIGINS" in error
