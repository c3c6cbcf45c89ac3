"""The page's screenshot for the README: docs/page.png, taken after a loopback autorun.

uv run python -m tests.browser.screenshot [--out docs/page.png]
"""

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.chromium import launch
from tests.conftest import ROOT, run_server

RESULT = "window.echoBenchResult || window.echoBenchError"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "page.png")
    args = parser.parse_args()
    query = "autorun=1&mode=loopback&pings=300&interval=20&bursts=10&burst_interval=500"
    with tempfile.TemporaryDirectory() as tmp, run_server(Path(tmp), LOG_LEVEL="WARNING") as srv:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{srv.url}/?{query}")
            page.wait_for_function(RESULT, timeout=120_000)
            error = page.evaluate("window.echoBenchError")
            if error:
                print(f"run failed: {error}", file=sys.stderr)
                return 1
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
