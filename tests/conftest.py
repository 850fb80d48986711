"""Shared fixtures. Browser fixtures serve the built site on loopback and drive Debian's
headless Chromium through Playwright (no browser download: Playwright only provides the driver).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("INTERP_BOOK_SITE", REPO / "_build" / "html"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def site_dir() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(
            f"No built site at {SITE}. Build it first with `bash scripts/build.sh` "
            "(the README's test command does this for you)."
        )
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="session")
def site_url(site_dir: Path):
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Debian's chromium is not installed: run `apt-get install -y chromium` "
                "(scripts/test.sh installs it).")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, site_url):
    """open_page("chapters/induction/index.html") -> a Playwright Page, loaded, with
    `page.console_errors` (console errors and uncaught exceptions seen so far)."""
    pages = []

    def _open(path: str, wait_until: str = "load"):
        page = browser.new_page()
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda e: page.console_errors.append(str(e)))
        page.goto(f"{site_url}/{path.lstrip('/')}", wait_until=wait_until)
        pages.append(page)
        return page

    yield _open
    for page in pages:
        page.close()
