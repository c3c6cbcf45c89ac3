"""Settings of the echo agent, read from the environment and `.env`, and its log format.

This is the only module that reads the environment.
"""

import os
import sys
from functools import lru_cache
from typing import Annotated, Literal

from loguru import logger
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class PlatformNotConfiguredError(Exception):
    """A platform was asked for but some of its variables are not set."""

    def __init__(self, platform: str, missing: list[str]):
        self.platform = platform
        self.missing = missing
        super().__init__(f"{platform} is not configured: set {', '.join(missing)}")


class Settings(BaseSettings):
    """Typed settings; secrets are `SecretStr` so they never print by accident."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    api_host: str = "0.0.0.0"
    api_port: int = 8080
    log_level: str = "INFO"

    daily_api_key: SecretStr | None = None
    daily_api_url: str = "https://api.daily.co/v1"
    daily_agent_name: str = "echo-daily"
    daily_private_rooms: bool = False

    livekit_url: str | None = None
    livekit_api_key: SecretStr | None = None
    livekit_api_secret: SecretStr | None = None
    livekit_agent_name: str = "echo-livekit"

    room_ttl: float = Field(600.0, gt=0)
    join_timeout: float = Field(60.0, gt=0)
    max_sessions: int = Field(50, ge=1)
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)

    webrtc_ice_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The HTTP boundary (guards.py).
    api_key: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(256 * 1024, ge=1)
    max_messages_per_second: int = Field(1000, ge=1)  # per session (agent_core.MessageBound)

    session_launcher: Literal["local", "pipecat-cloud"] = "local"
    pipecat_cloud_api_key: SecretStr | None = None
    pipecat_cloud_agent_name: str | None = None
    pipecat_cloud_api_url: str = "https://api.pipecat.daily.co/v1/public"
    pipecat_cloud_private_api_key: SecretStr | None = None

    @field_validator("webrtc_ice_addresses", "cors_origins", mode="before")
    @classmethod
    def _split_addresses(cls, value):
        if isinstance(value, str):
            return [a.strip() for a in value.split(",") if a.strip()]
        return value

    def missing(self, platform: str) -> list[str]:
        """The variables a platform still needs; empty when it is configured."""
        required = {
            "daily": {"DAILY_API_KEY": self.daily_api_key},
            "livekit": {
                "LIVEKIT_URL": self.livekit_url,
                "LIVEKIT_API_KEY": self.livekit_api_key,
                "LIVEKIT_API_SECRET": self.livekit_api_secret,
            },
            "webrtc": {},
            "pipecat-cloud": {
                "PIPECAT_CLOUD_API_KEY": self.pipecat_cloud_api_key,
                "PIPECAT_CLOUD_AGENT_NAME": self.pipecat_cloud_agent_name,
            },
        }[platform]
        if platform == "daily" and self.session_launcher == "pipecat-cloud":
            # Pipecat Cloud creates the Daily rooms for the bots it runs.
            required = {
                "PIPECAT_CLOUD_API_KEY": self.pipecat_cloud_api_key,
                "PIPECAT_CLOUD_AGENT_NAME": self.pipecat_cloud_agent_name,
            }
        return [name for name, value in required.items() if not _is_set(value)]

    def is_configured(self, platform: str) -> bool:
        """Whether every variable of the platform is set."""
        return not self.missing(platform)

    def require(self, platform: str) -> None:
        """Raise `PlatformNotConfiguredError` naming what the platform lacks."""
        if missing := self.missing(platform):
            raise PlatformNotConfiguredError(platform, missing)


def _is_set(value: str | SecretStr | None) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value and value.strip())


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache to reload)."""
    return Settings()


LOG_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
    "{extra[platform]} {extra[room]} | <cyan>{name}</cyan>:<cyan>{line}</cyan> - "
    "<level>{message}</level>"
)


def configure_logging(level: str) -> None:
    """One stderr sink that shows each line's platform and room (empty outside sessions)."""
    logger.remove()
    logger.configure(extra={"platform": "", "room": ""})
    logger.add(sys.stderr, level=level, format=LOG_FORMAT)
