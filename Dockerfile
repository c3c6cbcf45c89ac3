# syntax=docker/dockerfile:1
# Self-hosted echo agent: the FastAPI server (server.py) on port 8080, bots in-process.
#   docker build -t echo-agent .
#   docker run --env-file .env -p 8080:8080 echo-agent
# tests/test_docker.py replays this file outside Docker (COPY, uv sync, CMD, /health):
# a module added to the server must be COPY'd here too, or that test fails.
FROM python:3.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    PATH="/app/.venv/bin:$PATH"

RUN groupadd --system --gid 10001 echo \
    && useradd --system --uid 10001 --gid echo --no-create-home --home-dir /app echo

WORKDIR /app

# Dependencies first, from the committed lock: this layer is rebuilt only when they change.
# The service runs from its sources in /app, so the project itself is not installed.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project

COPY server.py bot.py config.py eager_tasks.py ice_addresses.py agent_core.py pool.py worker.py metrics.py guards.py ./
COPY processors/ processors/
COPY transports/ transports/
COPY static/ static/

USER 10001:10001

EXPOSE 8080

# The image has no curl: the check uses the venv's Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

CMD ["python", "server.py", "--host", "0.0.0.0", "--port", "8080"]
