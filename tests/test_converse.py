"""`echo-bench converse`: the real console script on the local platform, credential errors,
the Daily room lifecycle against a fake REST API, and the cloud runs when credentials exist."""

import json
import os
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from config import Settings
from echo_bench.cli import main
from echo_bench.participants import ParticipantError
from echo_bench.rooms import ConverseError, Speaker
from echo_bench.tones import Voice
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
ECHO_BENCH = Path(sys.executable).with_name("echo-bench")
SECRET = "not-a-real-secret-but-treat-it-as-one-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Daily or LiveKit credential."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAILY_", "LIVEKIT_"))}
    return {**env, **extra}


def converse(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [str(ECHO_BENCH), "converse", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def directions(result_json: Path) -> dict[str, dict]:
    data = json.loads(result_json.read_text())
    return {f"{d['sender']} -> {d['receiver']}": d for d in data["directions"]}


# --- the local platform, through the real console script --------------------------------


def test_local_conversation_passes_with_figures(tmp_path):
    out = tmp_path / "result.json"
    run = converse("--platform", "local", "--duration", "5", "--json", str(out), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Conversation proof: local room local-" in run.stdout
    assert "PASS customer -> support" in run.stdout
    assert "PASS support -> customer" in run.stdout
    # Connection events and live statistics are logged.
    assert "customer: connection connected" in run.stderr
    assert "support: subscribed to customer-" in run.stderr
    assert "after 5 s: customer -> support:" in run.stderr

    data = json.loads(out.read_text())
    assert data["passed"] is True and data["platform"] == "local"
    found = directions(out)
    for label, tone_hz in (("customer -> support", 440), ("support -> customer", 550)):
        d = found[label]
        assert d["tone_hz"] == tone_hz
        assert d["chunks_sent"] > 250 and d["bytes_sent"] == d["chunks_sent"] * 960 * 2
        assert d["frames_received"] > 250 and d["bytes_received"] > 250 * 1920
        assert d["transport"]["rtp_packets_received"] > 250
        assert d["talk_frames"] > 50
        assert d["heard_percent"] >= 90
        assert d["dominant_hz"] == pytest.approx(tone_hz, abs=2)
    assert found["customer -> support"]["sender_identity"].startswith("customer-")
    assert found["customer -> support"]["receiver_identity"].startswith("support-agent-")


def test_a_silent_support_fails_and_names_its_direction(tmp_path):
    out = tmp_path / "result.json"
    run = converse(
        "--platform",
        "local",
        "--duration",
        "5",
        "--silent",
        "support",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed: support -> customer" in run.stderr
    assert "customer -> support" not in run.stderr.split("failed:")[-1]
    assert "FAIL support -> customer: customer heard support's 550 Hz in 0.0 %" in run.stdout
    assert "PASS customer -> support" in run.stdout
    found = directions(out)
    assert found["customer -> support"]["passed"] is True
    silent = found["support -> customer"]
    assert silent["passed"] is False and silent["tone_frames"] == 0
    # Audio still flowed (silence), it just never carried the tone.
    assert silent["frames_received"] > 250 and silent["dominant_hz"] is None


# --- credentials and platform errors --------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "names"),
    [
        ("livekit", ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]),
        ("daily", ["DAILY_API_KEY"]),
    ],
)
def test_missing_credentials_give_one_clear_line(tmp_path, platform, names):
    run = converse("--platform", platform, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"echo-bench converse: {platform} credentials missing")
    for name in names:
        assert name in lines[0]


def test_config_file_fills_in_what_the_environment_lacks(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"livekit": {"url": "ws://127.0.0.1:1", "api_key": "k"}}))
    env = clean_env(LIVEKIT_API_KEY="from-env")
    run = converse("--platform", "livekit", "--config", str(config), cwd=tmp_path, env=env)
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "set LIVEKIT_API_SECRET in the environment, or livekit.api_secret in a --config file"
        )
    )


def test_unreadable_config_is_one_line(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    run = converse("--platform", "daily", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.strip() == f"echo-bench converse: --config {config} is not valid JSON"


def test_unreachable_livekit_server_fails_clearly_without_leaking_the_secret(tmp_path):
    config = tmp_path / "config.json"
    url = f"ws://127.0.0.1:{free_port()}"
    config.write_text(
        json.dumps({"livekit": {"url": url, "api_key": "devkey", "api_secret": SECRET}})
    )
    run = converse("--platform", "livekit", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 3
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("echo-bench converse: livekit: customer could not join room converse-")
    assert SECRET not in run.stdout + run.stderr
    assert "eyJ" not in run.stdout + run.stderr  # no access token either


def test_unreachable_daily_api_fails_clearly(tmp_path):
    config = tmp_path / "config.json"
    api_url = f"http://127.0.0.1:{free_port()}/v1"
    config.write_text(json.dumps({"daily": {"api_key": SECRET, "api_url": api_url}}))
    run = converse("--platform", "daily", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 3
    assert run.stderr.strip().splitlines()[-1] == (
        "echo-bench converse: daily: Daily API unreachable creating the room (ClientConnectorError)"
    )
    assert SECRET not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--duration", "2"], "--duration: must be at least 4 s"),
        (["--customer-hz", "500", "--support-hz", "550"], "at least 100 Hz apart"),
        (["--support-hz", "20"], "--support-hz must be between 100 and 8000 Hz"),
        (["--min-heard", "0"], "--min-heard must be a percentage"),
    ],
)
def test_bad_arguments_are_refused(capsys, args, problem):
    try:
        code = main(["converse", "--platform", "local", *args])
    except SystemExit as e:  # argparse's own refusal
        code = e.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert problem in captured.err


# --- the Daily room lifecycle against a fake REST API on 127.0.0.1 ------------------------


@asynccontextmanager
async def fake_daily_api():
    requests: list[tuple[str, str, dict | None]] = []

    async def create_room(request):
        body = await request.json()
        requests.append(("POST", "/rooms", body))
        name = body["name"]
        return web.json_response(
            {
                "id": "room-id",
                "name": name,
                "api_created": True,
                "privacy": body.get("privacy", "public"),
                "url": f"https://fake.daily.co/{name}",
                "created_at": "2026-01-01T00:00:00.000Z",
                "config": body.get("properties", {}),
            }
        )

    async def create_token(request):
        body = await request.json()
        requests.append(("POST", "/meeting-tokens", body))
        return web.json_response({"token": f"token-{len(requests)}"})

    async def delete_room(request):
        requests.append(("DELETE", f"/rooms/{request.match_info['name']}", None))
        return web.json_response({"deleted": True})

    app = web.Application()
    app.router.add_post("/v1/rooms", create_room)
    app.router.add_post("/v1/meeting-tokens", create_token)
    app.router.add_delete("/v1/rooms/{name}", delete_room)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/v1", requests
    finally:
        await runner.cleanup()


class FakeParticipant:
    """Stands in for the daily-python participant (no Daily servers here)."""

    joined: list[tuple[str, str, str]] = []
    left: list[str] = []
    fail_for: str | None = None

    def __init__(self, voice: Voice, *, label: str, name: str, listen_to: str, received):
        self.role = label

    async def connect(self, url: str, token: str, connect_timeout: float) -> None:
        if self.role == self.fail_for:
            raise ParticipantError(f"daily: {self.role} could not join")
        FakeParticipant.joined.append((self.role, url, token))

    async def close(self) -> None:
        FakeParticipant.left.append(self.role)


def speakers() -> tuple[Speaker, Speaker]:
    customer = Speaker("customer", "customer-1", Voice(440, [], 48000), "support-agent-1")
    support = Speaker("support", "support-agent-1", Voice(550, [], 48000), "customer-1")
    return customer, support


@pytest.fixture
def fake_participants(monkeypatch):
    from echo_bench import rooms
    from echo_bench.participants import daily

    monkeypatch.setattr(daily, "DailyParticipant", FakeParticipant)
    FakeParticipant.joined, FakeParticipant.left, FakeParticipant.fail_for = [], [], None
    return rooms


async def test_daily_room_is_private_tokened_and_deleted_at_the_end(fake_participants):
    customer, support = speakers()
    async with fake_daily_api() as (api_url, requests):
        async with fake_participants.join_daily(customer, support, SECRET, api_url, 5, 10) as room:
            assert room.name.startswith("converse-")
            created = requests[0][2]
            assert requests[0][:2] == ("POST", "/rooms")
            assert created["name"] == room.name and created["privacy"] == "private"
            url = f"https://fake.daily.co/{room.name}"
            roles = {role: (u, token) for role, u, token in FakeParticipant.joined}
            assert roles["customer"][0] == url and roles["support"][0] == url
            assert roles["customer"][1] != roles["support"][1]
            owners = [
                r[2]["properties"].get("is_owner") for r in requests if r[1] == "/meeting-tokens"
            ]
            assert sorted(owners, key=bool) == [False, True]
            assert not [r for r in requests if r[0] == "DELETE"]
        assert requests[-1] == ("DELETE", f"/rooms/{room.name}", None)
        assert sorted(FakeParticipant.left) == ["customer", "support"]


async def test_daily_room_is_deleted_when_a_join_fails(fake_participants):
    customer, support = speakers()
    FakeParticipant.fail_for = "support"
    async with fake_daily_api() as (api_url, requests):
        with pytest.raises(ConverseError, match="support could not join"):
            async with fake_participants.join_daily(customer, support, SECRET, api_url, 5, 10):
                pytest.fail("joined although support failed")
        name = requests[0][2]["name"]
        assert requests[-1] == ("DELETE", f"/rooms/{name}", None)
        assert sorted(FakeParticipant.left) == [
            "customer",
            "support",
        ]  # a failed join is released too


# --- the cloud platforms, when credentials are set ------------------------------------


def missing(platform: str) -> list[str]:
    return Settings().missing(platform)


def with_credentials(platform: str, name: str):
    """`platform` as a parameter, skipped with the missing variables named when unset."""
    return pytest.param(
        platform,
        marks=pytest.mark.skipif(
            bool(missing(platform)),
            reason=f"{name} credentials not set ({', '.join(missing(platform))}); "
            f"set them to run the conversation through {name}",
        ),
    )


@pytest.mark.parametrize(
    "platform", [with_credentials("livekit", "LiveKit"), with_credentials("daily", "Daily")]
)
def test_cloud_conversation_passes(tmp_path, platform):
    out = tmp_path / "result.json"
    run = converse(
        "--platform",
        platform,
        "--duration",
        "10",
        "--json",
        str(out),
        cwd=ROOT,
        env=dict(os.environ),
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert all(d["heard_percent"] >= 90 for d in directions(out).values())
