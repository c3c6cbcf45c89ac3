"""Errors raised by the platform modules; server.py maps each to an HTTP status."""


class PlatformAPIError(Exception):
    """A platform's API failed (HTTP error, timeout, unexpected response)."""

    def __init__(self, platform: str, message: str):
        self.platform = platform
        super().__init__(f"{platform}: {message}")


class InvalidOfferError(ValueError):
    """A WebRTC offer that cannot start a session."""


class UnknownPeerError(KeyError):
    """Trickled ICE candidates for a peer connection that does not exist (or ended)."""

    status_code = 404  # what Pipecat's request handler raised (an HTTPException) for this

    def __init__(self, pc_id: str):
        self.pc_id = pc_id
        super().__init__(f"no peer connection {pc_id!r}")
