"""The import-layers contract, read from the sources (every import, also inside functions).

The agent: server (server.py, pool.py, worker.py) -> bot -> transports -> processors ->
agent_core; nothing imports upward, and transports do not import processors (what both
need is in agent_core). config is read by the server, bot and transports only;
ice_addresses and eager_tasks are neutral. The instrument's client half (echo_bench, the bare aiortc
echo) imports no agent module at all: it shares only the wire format with what it
measures.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS = [  # top to bottom
    {"server", "pool", "worker"},
    {"bot"},
    {"transports"},
    {"processors"},
    {"agent_core"},
]
AGENT = set().union(*LAYERS) | {"config"}
NEUTRAL = {"eager_tasks", "ice_addresses"}
MAY_READ_CONFIG = {"server", "pool", "worker", "bot", "transports"}


def top_name(module: str) -> str:
    return module.split(".")[0]


def imports_of(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(ROOT).parts[0] if len(path.relative_to(ROOT).parts) > 1 else ""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(top_name(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(package if node.level else top_name(node.module or ""))
    return names


def sources(name: str) -> list[Path]:
    """The files of a top-level module or package of the repository."""
    if (ROOT / f"{name}.py").exists():
        return [ROOT / f"{name}.py"]
    return sorted((ROOT / name).rglob("*.py"))


def layer_of(name: str) -> int | None:
    return next((i for i, layer in enumerate(LAYERS) if name in layer), None)


AGENT_FILES = [
    (name, path) for name in sorted(AGENT | NEUTRAL) for path in sources(name) if path.exists()
]


@pytest.mark.parametrize(
    ("name", "path"), AGENT_FILES, ids=[str(p.relative_to(ROOT)) for _, p in AGENT_FILES]
)
def test_agent_modules_import_only_downward(name, path):
    imported = imports_of(path) & (AGENT | NEUTRAL)
    imported.discard(name)
    if name in NEUTRAL or name == "config":
        assert not imported & AGENT, f"{name} must import no agent module, imports {imported}"
        return
    if "config" in imported:
        assert name in MAY_READ_CONFIG, f"{path.name} reads config: settings come in as arguments"
    mine = layer_of(name)
    upward = {m for m in imported if layer_of(m) is not None and layer_of(m) < mine}
    assert not upward, f"{path.relative_to(ROOT)} imports a higher layer: {sorted(upward)}"
    if name == "transports":
        assert "processors" not in imported, (
            f"{path.relative_to(ROOT)} imports processors: shared pieces belong in agent_core"
        )


CLIENT_FILES = [*sources("echo_bench"), ROOT / "benchmarks" / "bare_echo.py"]


@pytest.mark.parametrize("path", CLIENT_FILES, ids=[str(p.relative_to(ROOT)) for p in CLIENT_FILES])
def test_the_client_half_imports_no_agent_module(path):
    agent = imports_of(path) & AGENT
    assert not agent, f"{path.relative_to(ROOT)} imports agent modules {sorted(agent)}"


def test_the_contract_sees_every_layer():
    # A renamed module would silently drop out of the contract.
    for name in (AGENT | NEUTRAL) - {"pool", "worker"}:  # the worker modules are optional
        assert sources(name), f"no sources for {name}"
    assert imports_of(ROOT / "bot.py") >= {"transports", "processors", "agent_core"}
