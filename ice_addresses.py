"""Which host addresses aiortc offers as ICE candidates.

A neutral module: the agent (`transports.webrtc`) and the client half (`echo_bench`,
`benchmarks/bare_echo.py`) both use it, and it imports neither of them nor Pipecat.
"""

import aioice.ice
from loguru import logger

__all__ = ["restrict_ice_addresses"]

_aioice_host_addresses = aioice.ice.get_host_addresses


def restrict_ice_addresses(addresses: list[str]) -> None:
    """Offer only these host addresses as ICE candidates (all interfaces when empty).

    aiortc leaves loopback out by default; `["127.0.0.1"]` keeps a session on loopback.
    aioice looks the function up at gathering time, so replacing it is how its host
    candidates are chosen.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _aioice_host_addresses
        return

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in addresses if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = configured
    logger.info(f"WebRTC ICE host candidates restricted to {', '.join(addresses)}")
