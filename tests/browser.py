"""Headless Chromium for the console's tests and benchmark: Debian's build (`scripts/services.sh` installs it),
driven by Playwright through its executable path. Playwright's own browser downloads are never used."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("FLEET_TEST_CHROMIUM", "/usr/bin/chromium")
# No sandbox (we run as root in CI), no GPU, and nothing that phones home: no network but this machine.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@contextlib.contextmanager
def chromium() -> Iterator:
    """Headless Debian Chromium through Playwright."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
