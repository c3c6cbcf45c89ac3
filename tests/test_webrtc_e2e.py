"""End to end over real WebRTC on 127.0.0.1: real server, real aiortc client peer."""

import asyncio
import time

import aiohttp
import httpx
import pytest

from echo_bench.webrtc_client import EchoClient, SignalTrack
from tests.audio import dominant_frequency, rms, tone
from tests.conftest import run_server

PONG_FIELDS = {
    "type",
    "client_timestamp",
    "server_receive_time",
    "server_send_time",
    "message_count",
    "seq",
}


async def _connected(url: str, http: aiohttp.ClientSession, **kwargs) -> EchoClient:
    client = EchoClient(**kwargs)
    await client.connect(url, http)
    return client


async def _ping_run(client: EchoClient, count: int, interval: float, junk: dict | None = None):
    """Send `count` pings at `interval`, optional junk before some seq; collect replies."""
    for seq in range(count):
        for message in (junk or {}).get(seq, []):
            client.send(message)
        client.send({"type": "ping", "timestamp": time.time(), "seq": seq, "extra": "ok"})
        await asyncio.sleep(interval)
    replies = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            replies.append((await client.next_message(within=0.5))[1])
        except TimeoutError:
            if sum(r["type"] == "pong" for r in replies) >= count:
                break
    return replies


async def test_200_pings_at_50_per_second_all_answered(server):
    async with aiohttp.ClientSession() as http:
        client = await _connected(f"{server.url}/api/offer", http)
        sent_before = time.time()
        replies = await _ping_run(client, 200, 0.02)
        await client.close()

    pongs = [r for r in replies if r["type"] == "pong"]
    assert len(pongs) == 200
    assert [p["seq"] for p in pongs] == list(range(200))
    assert [p["message_count"] for p in pongs] == list(range(1, 201))
    for pong in pongs:
        assert set(pong) == PONG_FIELDS
        assert sent_before <= pong["client_timestamp"] <= pong["server_receive_time"] + 1
        assert pong["server_receive_time"] <= pong["server_send_time"]
        assert pong["server_send_time"] - pong["server_receive_time"] < 0.05


async def test_malformed_messages_change_nothing_for_valid_pings(server):
    junk = {
        3: ["not json at all", "[1, 2, 3]", '"a string"'],
        5: [{"no": "type"}, {"type": "unknown-kind"}],
        7: [{"type": "ping"}, {"type": "ping", "timestamp": "yesterday"}],
        9: ['{"type": "ping", "timestamp": NaN}', {"type": "ping", "timestamp": True}],
        11: [{"type": "ping", "timestamp": 1.0, "pad": "x" * (70 * 1024)}],
    }
    async with aiohttp.ClientSession() as http:
        client = await _connected(f"{server.url}/api/offer", http)
        replies = await _ping_run(client, 20, 0.02, junk)
        await client.close()

    pongs = [r for r in replies if r["type"] == "pong"]
    errors = [r for r in replies if r["type"] == "error"]
    assert [p["seq"] for p in pongs] == list(range(20))
    assert [p["message_count"] for p in pongs] == list(range(1, 21))
    assert [e["error"] for e in errors] == [
        "ping has no timestamp",
        "ping timestamp must be a number, got str",
        "ping timestamp must be a finite number",
        "ping timestamp must be a number, got bool",
    ]
    # Logged on aiortc's tasks for this peer, with the session's room in the context.
    [dropped] = [line for line in server.log().splitlines() if "Dropping app message" in line]
    assert f"webrtc {client.pc_id}" in dropped
    # Text that is not a JSON object reaches the echo processor, which ignores it.
    assert "Error parsing JSON message" not in server.log()


async def test_session_leaves_rooms_within_5s_after_client_closes(server):
    async with aiohttp.ClientSession() as http:
        client = await _connected(f"{server.url}/api/offer", http)
        client.send({"type": "ping", "timestamp": time.time()})
        await client.next_message()
        rooms = server.wait_rooms(lambda rooms: any(r["id"] == client.pc_id for r in rooms))
        listed = next(r for r in rooms if r["id"] == client.pc_id)
        assert listed["platform"] == "webrtc"
        assert listed["mode"] == "pong"
        assert listed["clients"] == 1
        assert listed["pings_answered"] == 1
        assert listed["created_at"] < listed["expires_at"]
        await client.close()
        closed_at = time.monotonic()
        await asyncio.to_thread(
            server.wait_rooms, lambda rooms: all(r["id"] != client.pc_id for r in rooms), 5.0
        )
    assert time.monotonic() - closed_at < 5


async def test_loopback_mode_returns_the_clients_1khz_tone(server):
    async with aiohttp.ClientSession() as http:
        microphone = SignalTrack(tone(1000))
        client = await _connected(
            f"{server.url}/api/offer?mode=loopback", http, microphone=microphone
        )
        await asyncio.sleep(3)
        await client.close()
    samples = client.received.samples()[48000:]  # skip the first second
    assert len(samples) >= 48000
    assert rms(samples) > 1000
    assert abs(dominant_frequency(samples) - 1000) < 10


async def test_tone_mode_plays_the_requested_frequency(server):
    async with aiohttp.ClientSession() as http:
        client = await _connected(
            f"{server.url}/api/offer?mode=tone&tone_hz=440", http, receive_audio=True
        )
        await asyncio.sleep(2.5)
        await client.close()
    samples = client.received.samples()[24000:]
    assert len(samples) >= 48000
    assert rms(samples) > 1000
    assert abs(dominant_frequency(samples) - 440) < 5


async def test_pong_mode_sends_no_audio(server):
    async with aiohttp.ClientSession() as http:
        client = await _connected(f"{server.url}/api/offer", http, receive_audio=True)
        await asyncio.sleep(1.5)
        await client.close()
    samples = client.received.samples()
    assert rms(samples) == 0.0


@pytest.mark.parametrize(
    ("query", "body", "message"),
    [
        ("", {"sdp": "garbage", "type": "offer"}, "invalid offer"),
        ("", {"sdp": "v=0\r\n", "type": "offer"}, "invalid offer"),
        ("", {"sdp": "v=0\r\n", "type": "answer"}, "type must be 'offer'"),
        ("", {"type": "offer"}, "sdp: Field required"),
        ("?mode=karaoke", None, "mode"),
        ("?mode=tone&tone_hz=19", None, "tone_hz"),
        ("?mode=tone&tone_hz=20001", None, "tone_hz"),
        ("?tone_hz=abc", None, "tone_hz"),
    ],
)
async def test_bad_offers_get_400_and_start_no_bot(server, query, body, message):
    if body is None:
        client = EchoClient()
        await client.pc.setLocalDescription(await client.pc.createOffer())
        body = {"sdp": client.pc.localDescription.sdp, "type": "offer"}
        await client.pc.close()
    before = server.rooms()
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/api/offer{query}", json=body, timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert server.rooms() == before


def test_trickle_ice_for_unknown_peer_is_404(server):
    response = httpx.patch(
        f"{server.url}/api/offer",
        json={
            "pc_id": "nope",
            "candidates": [{"candidate": "", "sdp_mid": "0", "sdp_mline_index": 0}],
        },
        timeout=5,
    )
    assert response.status_code == 404


def test_health(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "service": "echo-agent-api"}


async def test_no_warning_per_ping_in_the_log(server):
    async with aiohttp.ClientSession() as http:
        client = await _connected(f"{server.url}/api/offer", http)
        before = server.log().count("WARNING")
        await _ping_run(client, 30, 0.01)
        after = server.log().count("WARNING")
        await client.close()
    assert after - before < 3


async def test_session_ends_when_no_client_joins(tmp_path):
    with run_server(tmp_path, JOIN_TIMEOUT="2") as short:
        client = EchoClient()
        await client.pc.setLocalDescription(await client.pc.createOffer())
        offer = {"sdp": client.pc.localDescription.sdp, "type": "offer"}
        offered_at = time.monotonic()
        async with httpx.AsyncClient() as http:
            response = await http.post(f"{short.url}/api/offer", json=offer, timeout=10)
        assert response.status_code == 200
        pc_id = response.json()["pc_id"]
        # The answer is never applied: the peer never connects.
        assert [r["id"] for r in short.rooms()] == [pc_id]
        await asyncio.to_thread(short.wait_rooms, lambda rooms: rooms == [], 6.0)
        assert 1.5 < time.monotonic() - offered_at < 5
        await client.pc.close()
        assert "no client joined within 2 s" in short.log()


async def test_session_ends_at_expiry_even_while_pinging(tmp_path):
    with run_server(tmp_path, ROOM_TTL="3") as short:
        async with aiohttp.ClientSession() as http:
            client = await _connected(f"{short.url}/api/offer", http)
            started = time.monotonic()
            while short.rooms() and time.monotonic() - started < 8:
                client.send({"type": "ping", "timestamp": time.time()})
                await asyncio.sleep(0.1)
            await client.close()
        assert short.rooms() == []
        assert 2 < time.monotonic() - started < 6
        assert "session expired" in short.log()
