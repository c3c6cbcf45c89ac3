"""echo-bench's Daily and LiveKit clients.

Against the real clouds only when their credentials are set (DAILY_API_KEY;
LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET), skipped otherwise. The plumbing
that needs no cloud (callbacks, a refused connection on 127.0.0.1) always runs.
"""

import asyncio
import json
import os
import time

import numpy as np
import pytest

from echo_bench import cli
from echo_bench.participants import ParticipantError
from echo_bench.participants.daily import DailyParticipant, _Events
from echo_bench.participants.livekit import LiveKitParticipant
from tests.conftest import free_port, run_server

CREDENTIALS = {
    "daily": ["DAILY_API_KEY"],
    "livekit": ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"],
}


def missing(platform: str) -> list[str]:
    return [name for name in CREDENTIALS[platform] if not os.environ.get(name, "").strip()]


def cloud(platform: str):
    return pytest.mark.skipif(
        bool(missing(platform)),
        reason=f"{platform} cloud test: set {', '.join(missing(platform))} to run it",
    )


@pytest.fixture(scope="module")
def cloud_server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("clouds"), clouds=True) as running:
        yield running


@pytest.mark.parametrize("platform", [pytest.param(p, marks=cloud(p)) for p in CREDENTIALS])
def test_ping_through_the_cloud(platform, cloud_server, tmp_path, capsys):
    json_path = tmp_path / f"{platform}.json"
    code = cli.main(
        ["ping", "--server", cloud_server.url, "--platform", platform, "--count", "20",
         "--interval", "0.05", "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    data = json.loads(json_path.read_text())
    summary = data["summary"]
    assert summary["sent"] == 20
    assert summary["received"] == 20
    assert 0 < summary["rtt_ms"]["p50"] < 2000
    assert summary["server_processing_ms"]["count"] == 20
    assert 0 < summary["net_rtt_ms"]["p50"] <= summary["rtt_ms"]["p50"]
    assert summary["clock_offset_ms"]["bound"] > 0
    setup = data["sessions"][0]["summary"]["setup_ms"]
    assert set(setup) == {"connect", "join", "first_pong", "total"}
    assert setup["total"] >= setup["connect"] + setup["join"] + setup["first_pong"]


@pytest.mark.parametrize("platform", [pytest.param(p, marks=cloud(p)) for p in CREDENTIALS])
def test_audio_through_the_cloud(platform, cloud_server, tmp_path, capsys):
    json_path = tmp_path / f"{platform}-audio.json"
    code = cli.main(
        ["audio", "--server", cloud_server.url, "--platform", platform, "--count", "3",
         "--json", str(json_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads(json_path.read_text())["summary"]
    assert summary["detected"] == 3
    assert 20 < summary["latency_ms"]["max"] < 1000


async def test_livekit_client_refused_on_a_closed_port_is_a_participant_error():
    client = LiveKitParticipant()
    with pytest.raises(ParticipantError, match="LiveKit room"):
        await client.connect(f"ws://127.0.0.1:{free_port()}", "not-a-token", join_timeout=10)
    await client.close()


async def test_livekit_client_keeps_json_object_packets_only():
    client = LiveKitParticipant()

    class Packet:
        def __init__(self, data):
            self.data = data

    for data in [b'{"type": "pong", "seq": 1}', b"[1, 2]", b"\xff\xfe", b"not json"]:
        client._on_data(Packet(data))
    arrival, message = await asyncio.wait_for(client.next_message(), 1)
    assert message == {"type": "pong", "seq": 1}
    assert arrival > 0
    assert client.messages.empty()


async def test_daily_client_callbacks_reach_the_loop():
    client = DailyParticipant(receive_audio=True)
    client._loop = asyncio.get_running_loop()
    events = _Events(client, client._loop)

    class Audio:
        sample_rate = 48000
        num_channels = 2
        audio_frames = np.arange(8, dtype=np.int16).tobytes()

    await asyncio.to_thread(client._on_audio, "bot", Audio(), "microphone")
    before = time.perf_counter()
    await asyncio.to_thread(events.on_app_message, {"type": "pong", "seq": 0}, "bot")
    await asyncio.to_thread(events.on_app_message, "not an object", "bot")
    await asyncio.sleep(0.01)
    arrival, message = await asyncio.wait_for(client.next_message(), 1)
    assert message == {"type": "pong", "seq": 0}
    assert before < arrival < time.perf_counter()
    assert client.messages.empty()
    [(arrival, block)] = client.received.blocks
    assert arrival > 0
    assert block.tolist() == [0, 2, 4, 6]  # left channel of the interleaved stereo
