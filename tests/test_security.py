"""The HTTP boundary (guards.py): API key, CORS and origins, body limits, session ids, exit.

The boundary answers before any route runs, so most checks use the app in-process
without its lifespan (no bot workers); what needs sockets, a running pool or a process
exit runs against the real server.
"""

import asyncio
import hmac
import json
import re
import signal
import socket
import time
from urllib.parse import urlsplit

import aiohttp
import httpx
import pytest
from fastapi.testclient import TestClient

import guards
import server
from echo_bench.webrtc_client import EchoClient
from tests.conftest import run_server
from transports import pipecat_internals
from transports.webrtc import EchoWebRTCConnection

API_KEY = "test-api-key-0123456789abcdefghijklmnop"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
LISTED = "https://bench.example"
TEXT = {"Content-Type": "text/plain"}


@pytest.fixture
def app(configure):
    """The app in-process, no lifespan: only the boundary can answer."""

    def make(**env: str) -> TestClient:
        configure(**env)
        return TestClient(server.app, raise_server_exceptions=False)

    return make


# ---------------------------------------------------------------------------
# CORS


def preflight(client: TestClient, path: str, origin: str, method: str = "POST"):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_preflight_from_a_listed_origin_is_answered(app):
    # Preflights carry no credentials: answered with API_KEY set too.
    client = app(CORS_ORIGINS=f"{LISTED}, https://other.example", API_KEY=API_KEY)
    for path, method in [("/connect", "POST"), ("/api/offer", "PATCH"), ("/rooms/x", "DELETE")]:
        response = preflight(client, path, LISTED, method)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == LISTED
        allowed = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert {"GET", "POST", "PATCH", "DELETE"} <= allowed
        headers = response.headers["access-control-allow-headers"].lower()
        assert "authorization" in headers and "content-type" in headers
    assert preflight(client, "/connect", "https://other.example").status_code == 200


def test_preflight_from_another_origin_is_not_answered(app):
    client = app(CORS_ORIGINS=LISTED)
    response = preflight(client, "/connect", "https://evil.example")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_no_cors_origins_by_default(app):
    client = app()
    response = preflight(client, "/connect", LISTED)
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


def test_star_allows_every_origin(app):
    client = app(CORS_ORIGINS="*")
    response = preflight(client, "/connect", "https://anywhere.example")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"


def test_a_listed_page_can_read_the_boundary_s_errors(app):
    client = app(CORS_ORIGINS=LISTED, API_KEY=API_KEY)
    response = client.get("/rooms", headers={"Origin": LISTED})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == LISTED


def test_a_simple_request_from_another_origin_changes_nothing(app):
    """A page elsewhere can POST text/plain without a preflight: it gets 403."""
    client = app(CORS_ORIGINS=LISTED)
    for content_type in ("text/plain", None):
        headers = {"Origin": "https://evil.example"}
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post("/connect", headers=headers)
        assert response.status_code == 403, response.text
        assert "https://evil.example" in response.json()["detail"]
        assert "access-control-allow-origin" not in response.headers
    assert client.delete("/rooms/x", headers={"Origin": "null"}).status_code == 403


# ---------------------------------------------------------------------------
# Bodies


def test_a_body_over_max_body_bytes_is_413_without_reading_it(app):
    client = app(MAX_BODY_BYTES="1000")
    response = client.post("/connect", content=b"{" + b" " * 1000 + b"}", headers=json_type())
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 1000 bytes (MAX_BODY_BYTES)"}


def test_a_streamed_body_is_counted_as_it_arrives(app):
    """No Content-Length (chunked): the count, not the header, stops it."""
    client = app(MAX_BODY_BYTES="1000")

    def chunks():
        for _ in range(20):
            yield b" " * 100

    response = client.post("/api/offer", content=chunks(), headers=json_type())
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["detail"]


def test_connect_with_a_body_requires_json(app):
    client = app()
    body = json.dumps({"platforms": ["webrtc"]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post("/connect", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert "application/json" in response.json()["detail"]


def json_type() -> dict:
    return {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------
# API key


def test_without_api_key_the_api_is_open(app):
    # With the lifespan: the route itself answers, with no Authorization header.
    with app() as client:
        response = client.get("/rooms")
        assert response.status_code == 200
        assert response.json() == {"rooms": []}


@pytest.mark.parametrize(
    "authorization,detail",
    [
        (None, "API key required: send Authorization: Bearer <API_KEY>"),
        (f"Basic {API_KEY}", "API key required: send Authorization: Bearer <API_KEY>"),
        ("Bearer ", "API key required: send Authorization: Bearer <API_KEY>"),
        ("Bearer wrong-key", "invalid API key"),
        (f"Bearer {API_KEY}x", "invalid API key"),
    ],
)
def test_missing_or_wrong_key_is_401(app, authorization, detail):
    client = app(API_KEY=API_KEY)
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("GET", "/rooms"), ("POST", "/connect"), ("DELETE", "/rooms/x")]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json() == {"detail": detail}
        assert response.headers["www-authenticate"] == "Bearer"


def test_an_empty_api_key_means_no_key(app):
    with app(API_KEY="  ") as client:
        assert client.get("/rooms").status_code == 200  # reached the route, as when open


def test_the_key_is_compared_in_constant_time(app, monkeypatch):
    calls = []
    compare = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(guards.hmac, "compare_digest", spy)
    client = app(API_KEY=API_KEY)
    assert client.get("/rooms", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert calls == [(b"nope", API_KEY.encode())]


def test_health_page_static_files_and_docs_are_open(app):
    client = app(API_KEY=API_KEY)
    assert client.get("/health").json() == {"status": "ok", "service": "echo-agent-api"}
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    static = [r for r in server.app.routes if getattr(r, "path", "") == "/static"]
    assert static, "the page's static files are mounted at /static"
    script = re.search(r'src="(/static/[^"]+)"', page.text)
    assert script and client.get(script.group(1)).status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_unknown_paths_and_metrics_need_the_key(app):
    client = app(API_KEY=API_KEY)
    assert client.get("/metrics").status_code == 401
    assert client.get("/nothing-here").status_code == 401


def test_405_names_every_method_of_the_path(app):
    client = app()
    for path in ("/api/offer", "/sessions/abc/api/offer"):
        response = client.get(path)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST, PATCH"
    assert client.put("/connect").headers["allow"] == "POST"
    assert client.post("/rooms/abc").headers["allow"] == "DELETE"


def test_warning_when_listening_beyond_loopback_without_a_key(configure, logs, monkeypatch):
    monkeypatch.setattr(server.uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(server, "configure_logging", lambda level: None)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        for host, key, warned in [
            ("0.0.0.0", None, True),
            ("192.168.1.20", None, True),
            ("0.0.0.0", API_KEY, False),
            ("127.0.0.1", None, False),
            ("localhost", None, False),
            ("::1", None, False),
        ]:
            configure(**({"API_KEY": key} if key else {}))
            logs.clear()
            server.main(["--host", host, "--port", "9"])
            warnings = [line for line in logs if line.startswith("WARNING|")]
            assert len(warnings) == (1 if warned else 0), (host, key, warnings)
            if warned:
                assert f"Listening on {host} without API_KEY" in warnings[0]
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------
# The real server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    with run_server(
        tmp_path_factory.mktemp("keyed"), API_KEY=API_KEY, WORKERS="1", JOIN_TIMEOUT="10"
    ) as running:
        yield running


def operations(url: str) -> list[tuple[str, str]]:
    document = httpx.get(f"{url}/openapi.json", timeout=5).json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, ops in document["paths"].items()
        for method in ops
    ]


def test_every_operation_but_health_needs_the_key(keyed):
    ops = operations(keyed.url)
    assert ("GET", "/health") in ops and ("POST", "/connect") in ops and len(ops) >= 9
    for method, path in ops:
        if path == "/health":
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = httpx.request(method, f"{keyed.url}{path}", json={}, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert "detail" in response.json()
        authorized = httpx.request(method, f"{keyed.url}{path}", json={}, headers=AUTH)
        assert authorized.status_code != 401, (method, path)
    # The authorized POST /connect and /start with {} made one webrtc session each.
    rooms = httpx.get(f"{keyed.url}/rooms", headers=AUTH).json()["rooms"]
    assert [r["platform"] for r in rooms] == ["webrtc", "webrtc"]
    assert httpx.get(f"{keyed.url}/metrics", headers=AUTH).status_code == 200
    assert API_KEY not in keyed.log()
    assert "wrong" not in keyed.log()


def test_session_ids_carry_128_random_bits(keyed):
    ids = []
    for _ in range(2):
        response = httpx.post(
            f"{keyed.url}/connect", json={"platforms": ["webrtc"]}, headers=AUTH, timeout=10
        )
        assert response.status_code == 200, response.text
        ids.append(response.json()["webrtc"]["session_id"])
    for session_id in ids:
        random_part = session_id.rsplit("-", 1)[1]
        assert re.fullmatch(r"[0-9a-f]{32}", random_part), session_id  # 32 hex = 128 bits
    assert ids[0] != ids[1]
    for session_id in ids:
        deleted = httpx.delete(f"{keyed.url}/rooms/{session_id}", headers=AUTH, timeout=10)
        assert deleted.json() == {"deleted": session_id}


async def test_offer_session_ids_carry_128_random_bits(keyed):
    async with aiohttp.ClientSession(headers=AUTH) as http:
        client = EchoClient()
        try:
            await client.connect(f"{keyed.url}/api/offer", http)
        finally:
            await client.close()
    suffix = client.pc_id.rsplit("-", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{32}", suffix), client.pc_id


def test_peer_ids_are_minted_from_128_random_bits_also_on_an_ice_restart(monkeypatch):
    # Pipecat's own pc_id ends in a uuid4 (122 random bits), which looks the same.
    minted = iter(["ab" * 16, "cd" * 16])
    calls = []

    def token_hex(nbytes):
        calls.append(nbytes)
        return next(minted)

    monkeypatch.setattr(pipecat_internals.secrets, "token_hex", token_hex)
    connection = EchoWebRTCConnection()
    assert connection.pc_id.endswith("-" + "ab" * 16)
    connection._initialize()  # what Pipecat's renegotiate(restart_pc=True) runs
    assert connection.pc_id.endswith("-" + "cd" * 16)
    assert calls == [16, 16]


def raw_http(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a request head and part of a body, never finishing it; return the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_the_real_server_answers_413_before_the_body_is_complete(tmp_path):
    with run_server(tmp_path, WORKERS="1") as running:
        host = urlsplit(running.url).netloc
        # Content-Length says 100 MB and nothing follows: answered from the header.
        head = f"POST /connect HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
        answer = raw_http(running.url, head + "Content-Length: 100000000\n")
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"262144 bytes (MAX_BODY_BYTES)" in answer

        # Chunked, past 256 KiB, the body never finished: answered from the count.
        chunk = b"x" * 65536
        body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4))
        body += b"1\r\nx\r\n"
        head = f"POST /api/offer HTTP/1.1\nHost: {host}\nContent-Type: application/json\n"
        answer = raw_http(running.url, head + "Transfer-Encoding: chunked\n", body)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

        # Exactly 256 KiB is read and judged on its contents.
        filler = 262144 - len(json.dumps({"sdp": "", "type": "offer"}))
        offer = json.dumps({"sdp": "v" * filler, "type": "offer"})
        assert len(offer) == 262144
        response = httpx.post(f"{running.url}/api/offer", content=offer, headers=json_type())
        assert response.status_code == 400
        assert response.json()["detail"].startswith("invalid offer")
        assert httpx.get(f"{running.url}/health").status_code == 200


def test_empty_connect_stays_fine_and_text_plain_creates_nothing(tmp_path):
    with run_server(tmp_path, WORKERS="1") as running:
        body = '{"platforms": ["webrtc"]}'
        text = httpx.post(f"{running.url}/connect", content=body, headers=TEXT)
        assert text.status_code == 415
        assert running.rooms() == []
        charset = {"Content-Type": "application/json; charset=utf-8"}
        typed = httpx.post(f"{running.url}/connect", content=body, headers=charset, timeout=10)
        assert typed.status_code == 200, typed.text
        empty = httpx.post(f"{running.url}/connect", timeout=10)
        assert empty.status_code == 200, empty.text
        assert set(empty.json()) == {"webrtc"}
        same_origin = httpx.post(
            f"{running.url}/connect", headers={"Origin": running.url}, timeout=10
        )
        assert same_origin.status_code == 200, same_origin.text
        assert len(running.rooms()) == 3


async def test_sigterm_with_live_sessions_exits_0_within_10s(tmp_path):
    with run_server(tmp_path, WORKERS="1") as running:
        async with aiohttp.ClientSession() as http:
            clients = [EchoClient() for _ in range(3)]
            for client in clients:
                await client.connect(f"{running.url}/api/offer", http)
                client.send({"type": "ping", "timestamp": 1.0})
                assert (await client.next_message(within=5))[1]["type"] == "pong"
            async with http.post(f"{running.url}/connect", json={}) as reserved:
                assert reserved.status == 200
            assert len(running.rooms()) == 4
            started = time.monotonic()
            running.process.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(running.process.wait, 10)
            elapsed = time.monotonic() - started
            for client in clients:
                await client.close()
        assert returncode == 0, running.log()[-2000:]
        assert elapsed < 10
        assert "Shutting down: ending 4 session(s)" in running.log()
