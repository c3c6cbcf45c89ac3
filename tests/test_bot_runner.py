"""`python bot.py` without `-u`: Pipecat's development runner, its prebuilt UI, the echo mode."""

import asyncio
import os
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from pipecat.runner.types import DailyRunnerArguments

import bot
from echo_bench.webrtc_client import EchoClient
from tests.audio import dominant_frequency, rms
from tests.conftest import ROOT, free_port, stop_process


@contextmanager
def runner(tmp_path: Path, *options: str) -> Iterator[str]:
    """`python bot.py --transport webrtc --host 127.0.0.1 --port P OPTIONS`; yields its URL."""
    port = free_port()
    log_path = tmp_path / "runner.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "LIVEKIT_"))},
        "WEBRTC_ICE_ADDRESSES": "127.0.0.1",
    }
    command = [sys.executable, str(ROOT / "bot.py"), "--transport", "webrtc"]
    command += ["--host", "127.0.0.1", "--port", str(port), *options]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"runner exited:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{url}/client/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"runner not up:\n{log_path.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        stop_process(process)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()


async def test_runner_serves_the_prebuilt_ui_and_a_bot_in_the_chosen_mode(tmp_path):
    with runner(tmp_path, "--mode", "tone", "--tone-hz", "440") as url:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, allow_redirects=False) as root:
                assert root.status == 307 and root.headers["location"] == "/client/"
            async with http.get(f"{url}/client/") as page:
                html = await page.text()
            assert "<title>Pipecat UI</title>" in html
            script = html.split('src="./', 1)[1].split('"', 1)[0]
            async with http.get(f"{url}/client/{script}") as asset:
                assert asset.status == 200 and "javascript" in asset.content_type

            client = EchoClient(receive_audio=True)
            try:
                await client.connect(f"{url}/api/offer", http)
                for seq in range(5):
                    client.send({"type": "ping", "timestamp": 10.0 + seq, "seq": seq})
                    _, pong = await client.next_message(within=5)
                    assert (pong["type"], pong["seq"], pong["client_timestamp"]) == (
                        "pong",
                        seq,
                        10.0 + seq,
                    )
                deadline = time.monotonic() + 10
                while len(client.received.samples()) < 3 * 48000:
                    assert time.monotonic() < deadline, "no tone from the bot"
                    await asyncio.sleep(0.1)
            finally:
                await client.close()
    samples = client.received.samples()[48000:]
    assert rms(samples) > 1000
    assert abs(dominant_frequency(samples) - 440) < 10


async def test_a_session_body_s_mode_wins_over_the_runner_s(tmp_path):
    """The runner's /start body reaches the bot: pong mode there, no audio track."""
    with runner(tmp_path, "--mode", "tone") as url:
        async with aiohttp.ClientSession() as http:
            start = {"transport": "webrtc", "body": {"mode": "pong"}}
            async with http.post(f"{url}/start", json=start) as response:
                assert response.status == 200, await response.text()
                session_id = (await response.json())["sessionId"]
            client = EchoClient(receive_audio=True)
            try:
                await client.connect(f"{url}/sessions/{session_id}/api/offer", http)
                client.send({"type": "ping", "timestamp": 1.0})
                assert (await client.next_message(within=5))[1]["type"] == "pong"
                await asyncio.sleep(2)
            finally:
                await client.close()
    assert rms(np.asarray(client.received.samples())) < 1  # pong mode sends no tone


def test_help_names_the_echo_options_and_the_runner_s():
    shown = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    for option in ("--mode", "--tone-hz", "--transport", "--host", "--port"):
        assert option in shown.stdout


def test_runner_defaults_fill_only_what_the_body_leaves_out():
    cli = Namespace(echo_mode="tone", echo_tone_hz=440.0)

    def args(body):
        runner_args = DailyRunnerArguments(room_url="https://x.daily.co/r", token=None, body=body)
        runner_args.cli_args = cli
        return bot._with_runner_defaults(runner_args).body

    assert args(None) == {"mode": "tone", "tone_hz": 440.0}
    assert args({}) == {"mode": "tone", "tone_hz": 440.0}
    assert args({"mode": "loopback"}) == {"mode": "loopback", "tone_hz": 440.0}
    assert args({"mode": "tone", "tone_hz": 600}) == {"mode": "tone", "tone_hz": 600}
    assert args("not an object") == "not an object"  # left for parse_body to refuse
    plain = DailyRunnerArguments(room_url="https://x.daily.co/r", token=None, body=None)
    assert bot._with_runner_defaults(plain).body is None  # Pipecat Cloud: no cli_args
