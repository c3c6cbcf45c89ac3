"""Errors raised by the platform modules; server.py maps each to an HTTP status."""


class PlatformAPIError(Exception):
    """A platform's API failed (HTTP error, timeout, unexpected response)."""

    def __init__(self, platform: str, message: str):
        self.platform = platform
        super().__init__(f"{platform}: {message}")


class InvalidOfferError(ValueError):
    """A WebRTC offer that cannot start a session."""
