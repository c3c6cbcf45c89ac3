"""Debian's Chromium driven by Playwright, set up for WebRTC on 127.0.0.1.

Playwright's own browser download is never used: the browser is `/usr/bin/chromium`
(`CHROMIUM` overrides). Fake media devices, no permission prompts, audio without a user
gesture, host ICE candidates with their real addresses (not mDNS names) and loopback
candidates allowed, so that the page's WebRTC peer reaches an agent that offers only
127.0.0.1.
"""

import os
import shutil
from pathlib import Path

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch"]

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
]


def chromium_path() -> str | None:
    """The Chromium binary to drive, or None when none is installed."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def launch(playwright, **kwargs):
    """A headless Chromium browser (Playwright's `Browser`)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("no Chromium: apt-get install chromium (or set CHROMIUM)")
    return playwright.chromium.launch(
        executable_path=path, args=CHROMIUM_ARGS, headless=True, **kwargs
    )
