"""The HTTP boundary: who may call, from which origin, with how big a body, and its contract.

`install(app)` wires it into the FastAPI app:

- `API_KEY`: when set, every route except `/health` and the page (`/`, its static files,
  the API docs) requires `Authorization: Bearer <key>`; 401 otherwise.
- Cross-origin requests: `CORS_ORIGINS` lists the origins whose pages may call the API
  (Starlette's CORS middleware answers their preflights). A state-changing request that a
  page of any other origin sends (a CORS "simple request" needs no preflight) gets 403.
- `MAX_BODY_BYTES`: a larger body gets 413, counted as it streams in (not only from
  `Content-Length`), so it is never read whole. A request body must be JSON (415).
- 405 answers name every method the path has (`Allow: POST, PATCH`).
- The OpenAPI document lists what the boundary answers (401, 403, 413, 415, 400 for
  invalid input instead of FastAPI's 422) on every operation it applies to.
"""

import hmac
import ipaddress
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from loguru import logger
from pydantic import BaseModel
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings, get_settings

__all__ = [
    "CORS_HEADERS",
    "CORS_METHODS",
    "PUBLIC_PATHS",
    "ErrorBody",
    "PlatformErrorBody",
    "errors",
    "install",
    "warn_if_open",
]

PUBLIC_PATHS = frozenset(
    {"/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
"""Paths open without the API key (besides static-file mounts): liveness, the page, the docs."""

CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
"""The methods the API uses, allowed to listed origins."""

CORS_HEADERS = ("Authorization", "Content-Type")
"""The request headers listed origins may send."""

_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_SECURITY_SCHEME = "bearer"


class ErrorBody(BaseModel):
    """Every error answer: what went wrong, for a person to read."""

    detail: str


class PlatformErrorBody(ErrorBody):
    """A cloud platform's API failed; `platform` names it."""

    platform: str


_DESCRIPTIONS = {
    400: "Invalid input: the detail names each field and what is wrong with it",
    401: "API_KEY is set and the request has no valid `Authorization: Bearer <key>`",
    403: "Sent by a page of an origin not listed in CORS_ORIGINS",
    404: "No such session or peer connection",
    409: "The session already has a peer",
    413: "The body is larger than MAX_BODY_BYTES",
    415: "The body is not `application/json`",
    502: "A platform's API failed; `platform` names it",
    503: "No capacity: MAX_SESSIONS sessions are running, or no bot worker could take it",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's own error statuses, each with its body model."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        model = PlatformErrorBody if status == 502 else ErrorBody
        response: dict[str, Any] = {"model": model, "description": _DESCRIPTIONS[status]}
        if status == 503:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds after which to retry (when the session limit is hit)",
                    "schema": {"type": "integer"},
                }
            }
        responses[status] = response
    return responses


def install(app: FastAPI) -> None:
    """Add the boundary's middleware and its OpenAPI document to `app`."""
    app.add_middleware(BoundaryMiddleware)
    # Outermost: preflights are answered before the key is asked for, and the
    # boundary's own 401/403/413/415 carry CORS headers a listed page can read.
    app.add_middleware(SettingsCORSMiddleware)
    documents: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        protected = _api_key(get_settings()) is not None
        if protected not in documents:
            app.openapi_schema = None  # FastAPI caches its own document there
            documents[protected] = _document_boundary(FastAPI.openapi(app), protected)
        return documents[protected]

    app.openapi = openapi


def warn_if_open(host: str, settings: Settings) -> None:
    """Log one warning when the server listens beyond loopback without an API key."""
    if _api_key(settings) is None and not _is_loopback(host):
        logger.warning(
            f"Listening on {host} without API_KEY: anyone who can reach this port can "
            "create, list, join and end sessions. Set API_KEY (see README, Security)."
        )


def _api_key(settings: Settings) -> bytes | None:
    key = settings.api_key.get_secret_value().strip() if settings.api_key else ""
    return key.encode() if key else None


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# Middleware


class SettingsCORSMiddleware:
    """Starlette's `CORSMiddleware` for the origins in `CORS_ORIGINS` (none: no CORS)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self._by_origins: dict[tuple[str, ...], CORSMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origins = tuple(get_settings().cors_origins)
        if scope["type"] != "http" or not origins:
            await self.app(scope, receive, send)
            return
        cors = self._by_origins.get(origins)
        if cors is None:
            cors = self._by_origins[origins] = CORSMiddleware(
                self.app,
                allow_origins=origins,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=("Retry-After", "WWW-Authenticate"),
                allow_private_network=True,
            )
        await cors(scope, receive, send)


class BoundaryMiddleware:
    """API key, origin, body type and body size checks, in that order; full `Allow` on 405.

    Pure ASGI, so that a body is counted while it streams in: past `MAX_BODY_BYTES` the
    client gets 413 at once, and the app sees a disconnect and stops reading.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        headers = Headers(scope=scope)
        method = scope["method"]

        key = _api_key(settings)
        if key is not None and not _is_public(scope):
            if problem := _key_problem(headers.get("authorization"), key):
                await _reject(scope, send, 401, problem, {"WWW-Authenticate": "Bearer"})
                return
        if method in _UNSAFE_METHODS and not _origin_allowed(headers, settings.cors_origins):
            origin = headers.get("origin")
            await _reject(scope, send, 403, f"origin {origin} is not allowed (CORS_ORIGINS)")
            return

        limit = settings.max_body_bytes
        length = _content_length(headers)
        if length is not None and length > limit:
            await _too_large(scope, send, limit)
            return
        has_body = (length or 0) > 0 or "transfer-encoding" in headers
        if method in _BODY_METHODS and has_body and not _is_json(headers.get("content-type")):
            media = headers.get("content-type") or "no Content-Type"
            await _reject(scope, send, 415, f"the body must be application/json, got {media}")
            return

        await self.app(scope, _LimitedBody(scope, receive, send, limit), _AllowAll(scope, send))


class _LimitedBody:
    """The request body as it streams in; past the limit, 413 to the client, EOF to the app."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int):
        self._scope = scope
        self._receive = receive
        self._send = send
        self._limit = limit
        self._received = 0
        self.exceeded = False

    async def __call__(self) -> Message:
        if self.exceeded:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                self.exceeded = True
                self._scope["guards.body_exceeded"] = True
                await _too_large(self._scope, self._send, self._limit)
                return {"type": "http.disconnect"}
        return message


class _AllowAll:
    """Sends the app's response; 405 names every method of the path, not only one route's.

    After a 413 for a body that grew past the limit, the app's own answer is dropped.
    """

    def __init__(self, scope: Scope, send: Send):
        self._scope = scope
        self._send = send

    async def __call__(self, message: Message) -> None:
        if self._scope.get("guards.body_exceeded"):
            return
        if message["type"] == "http.response.start" and message["status"] == 405:
            methods = _path_methods(self._scope)
            if methods:
                MutableHeaders(scope=message)["allow"] = ", ".join(methods)
        await self._send(message)


def _route_for(scope: Scope) -> Any:
    """The route Starlette's router would pick: the first full match, else the first partial."""
    partial = None
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return partial


def _is_public(scope: Scope) -> bool:
    return scope["path"] in PUBLIC_PATHS or isinstance(_route_for(scope), Mount)


def _path_methods(scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in scope["app"].router.routes:
        if getattr(route, "methods", None) and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods
    order = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return sorted(methods, key=lambda m: order.index(m) if m in order else len(order))


def _key_problem(authorization: str | None, key: bytes) -> str | None:
    """Why the request's credentials are refused, or None when they are the API key."""
    if not authorization:
        return "API key required: send Authorization: Bearer <API_KEY>"
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return "API key required: send Authorization: Bearer <API_KEY>"
    if not hmac.compare_digest(presented.strip().encode(), key):
        return "invalid API key"
    return None


def _origin_allowed(headers: Headers, allowed: Iterable[str]) -> bool:
    """Whether a request may change state: not from a browser page, same origin, or listed."""
    origin = headers.get("origin")
    if origin is None:
        return True
    allowed = set(allowed)
    if "*" in allowed or origin in allowed:
        return True
    netloc = urlsplit(origin).netloc.lower()
    hosts = {headers.get("host", "").lower(), headers.get("x-forwarded-host", "").lower()}
    return bool(netloc) and netloc in hosts


def _content_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    # Connection: close: the rest of the body is never read, so the connection is done.
    detail = f"request body larger than {limit} bytes (MAX_BODY_BYTES)"
    await _reject(scope, send, 413, detail, {"Connection": "close"})


async def _reject(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------
# OpenAPI


def _document_boundary(document: dict[str, Any], protected: bool) -> dict[str, Any]:
    """Add the boundary's answers to every operation; 400 replaces FastAPI's 422."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, PlatformErrorBody):
        schemas.setdefault(model.__name__, model.model_json_schema())
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

    def response(status: int, headers: dict | None = None) -> dict[str, Any]:
        described: dict[str, Any] = {"description": _DESCRIPTIONS[status], "content": error}
        if headers:
            described["headers"] = headers
        return described

    if protected:
        document["components"]["securitySchemes"] = {
            _SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "description": "API_KEY"}
        }
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", response(400))
            if "requestBody" in operation:
                responses.setdefault("413", response(413))
                responses.setdefault("415", response(415))
            if method.upper() in _UNSAFE_METHODS:
                responses.setdefault("403", response(403))
            if protected and path not in PUBLIC_PATHS:
                operation["security"] = [{_SECURITY_SCHEME: []}]
                www = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
                responses.setdefault("401", response(401, www))
    used = json.dumps(document.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}" not in used:
            schemas.pop(name, None)
    return document
