"""echo-bench runs without the agent's half: no Pipecat, no bot, server, processors,
transports or config. The console script runs with an import hook that refuses them."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BLOCKED = ("pipecat", "bot", "server", "processors", "transports", "config", "worker", "pool")

SITECUSTOMIZE = f"""
import atexit, importlib.abc, json, os, sys

BLOCKED = {BLOCKED!r}
refused = []


class RefuseAgentModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            refused.append(name)
            raise ImportError(f"{{name}} is not importable here: echo-bench must not need it")
        return None


sys.meta_path.insert(0, RefuseAgentModules())


@atexit.register
def record():
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    with open(os.environ["IMPORT_RECORD"], "w") as file:
        json.dump({{"refused": refused, "loaded": loaded}}, file)
"""


def echo_bench_without_the_agent(
    tmp_path: Path, *args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    record = tmp_path / "imports.json"
    script = Path(sys.executable).with_name("echo-bench")
    run = subprocess.run(
        [str(script), *args],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(hook), "IMPORT_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    return run, json.loads(record.read_text())


def test_the_hook_refuses_pipecat(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    run = subprocess.run(
        [sys.executable, "-c", "import pipecat"],
        env={"PYTHONPATH": str(hook), "IMPORT_RECORD": str(tmp_path / "r.json")},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 1
    assert "pipecat is not importable here" in run.stderr


def test_ping_reports_pongs_without_pipecat(server, tmp_path):
    out = tmp_path / "ping.json"
    run, imports = echo_bench_without_the_agent(
        tmp_path,
        "ping", "--server", server.url, "--platform", "webrtc", "--count", "20",
        "--interval", "0.02", "--ice-address", "127.0.0.1", "--json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert imports == {"refused": [], "loaded": []}
    summary = json.loads(out.read_text())["summary"]
    assert summary["received"] == 20
    assert summary["server_processing_ms"]["count"] == 20


@pytest.mark.timeout(120)
def test_converse_local_passes_without_pipecat(tmp_path):
    run, imports = echo_bench_without_the_agent(
        tmp_path, "converse", "--platform", "local", "--duration", "4"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert imports == {"refused": [], "loaded": []}
    assert "PASS customer -> support" in run.stdout
