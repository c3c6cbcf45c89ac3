"""The browser's ping p50 against echo-bench's, on the same server, in one run.

    uv run python -m tests.browser.compare [--blocks 5] [--pings 200]

One agent (server.py on 127.0.0.1, ICE on loopback) and, in alternating blocks, the
benchmark page in headless Chromium (`/?autorun=1`, the browser's own WebRTC stack) and
echo-bench's aiortc client (`ping_offer_url` on a `/connect` offer URL), with the same
count and interval. Prints each block's p50 and the ratio of the medians of the blocks'
p50s (browser / echo-bench); `--markdown FILE` appends the table to FILE.
"""

import argparse
import asyncio
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from playwright.async_api import async_playwright

from echo_bench.clients import configure_ice
from echo_bench.ping import ping_offer_url
from tests.browser.chromium import CHROMIUM_ARGS, chromium_path
from tests.conftest import run_server

RESULT = "window.echoBenchResult || window.echoBenchError"


async def browser_block(page, server: str, pings: int, interval: float) -> dict:
    url = f"{server}/?autorun=1&mode=pong&pings={pings}&interval={interval * 1000:g}"
    await page.goto(url)
    await page.wait_for_function(RESULT, timeout=(pings * interval + 60) * 1000)
    error = await page.evaluate("window.echoBenchError")
    if error:
        raise RuntimeError(f"browser run failed: {error}")
    result = await page.evaluate("window.echoBenchResult")
    return {"p50": result["rtt_ms"]["p50"], "received": result["received"], "sent": result["sent"]}


async def echo_bench_block(http, server: str, pings: int, interval: float) -> dict:
    async with http.post(f"{server}/connect", json={"platforms": ["webrtc"]}) as response:
        response.raise_for_status()
        offer_url = (await response.json())["webrtc"]["offer_url"]
    run = await ping_offer_url(offer_url, http, count=pings, interval=interval)
    summary = run.summary()
    return {"p50": summary["rtt_ms"]["p50"], "received": summary["received"], "sent": pings}


async def compare(server: str, blocks: int, pings: int, interval: float) -> list[dict]:
    configure_ice(["127.0.0.1"])
    rows = []
    async with async_playwright() as playwright, aiohttp.ClientSession() as http:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True
        )
        page = await browser.new_page()
        for block in range(blocks):
            # Alternate which client goes first, so neither always runs on a warmer server.
            order = ["browser", "echo-bench"] if block % 2 == 0 else ["echo-bench", "browser"]
            row = {"block": block + 1}
            for client in order:
                if client == "browser":
                    row[client] = await browser_block(page, server, pings, interval)
                else:
                    row[client] = await echo_bench_block(http, server, pings, interval)
            rows.append(row)
            print(
                f"block {block + 1}: browser p50 {row['browser']['p50']:.3f} ms "
                f"({row['browser']['received']}/{pings}), echo-bench p50 "
                f"{row['echo-bench']['p50']:.3f} ms ({row['echo-bench']['received']}/{pings})",
                flush=True,
            )
        await browser.close()
    return rows


def report(rows: list[dict], pings: int, interval: float, version: str) -> str:
    browser = statistics.median(r["browser"]["p50"] for r in rows)
    bench = statistics.median(r["echo-bench"]["p50"] for r in rows)
    lines = [
        f"Browser vs echo-bench ping p50, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()}, {version}, {len(rows)} blocks of {pings} pings every "
        f"{interval * 1000:g} ms, alternating, one server on 127.0.0.1",
        "",
        "| block | browser p50 (ms) | echo-bench p50 (ms) | ratio |",
        "|---|---|---|---|",
    ]
    for r in rows:
        b, e = r["browser"]["p50"], r["echo-bench"]["p50"]
        lines.append(f"| {r['block']} | {b:.3f} | {e:.3f} | {b / e:.2f} |")
    lines += [
        f"| median | {browser:.3f} | {bench:.3f} | **{browser / bench:.2f}** |",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between pings")
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    args = parser.parse_args()
    if chromium_path() is None:
        print("no Chromium: apt-get install chromium", file=sys.stderr)
        return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, run_server(Path(tmp), LOG_LEVEL="WARNING") as srv:
        rows = asyncio.run(compare(srv.url, args.blocks, args.pings, args.interval))
    version = "Chromium (Debian) " + _chromium_version()
    text = report(rows, args.pings, args.interval, version)
    print(text)
    print(f"({time.monotonic() - started:.0f} s)")
    if args.markdown:
        with args.markdown.open("a") as out:
            out.write(text + "\n")
    return 0


def _chromium_version() -> str:
    out = subprocess.run([chromium_path(), "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if len(out.split()) > 1 else "?"


if __name__ == "__main__":
    sys.exit(main())
