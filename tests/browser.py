"""Headless Chromium for the browser tests: Debian's `chromium` driven by Playwright's Python API.

Tests that need it take the `chromium` fixture (skips, with the reason, unless /usr/bin/chromium
and the `playwright` package are installed; `.ci/run` installs chromium; `playwright install` is
never run) and open a browser with `launched(chromium)`.

Playwright's sync API runs an event loop in this thread while a browser is open, and Django refuses
database calls under a running loop: set up committed rows (and the live server) before launching,
and close the browser before any fixture touches the database again.
"""

from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def chromium():
    """Playwright's sync API, or a skip (before any server starts) when a part is missing."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium package to run browser tests"
        )
    return pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing: pip install -e '.[test]'"
    )


@contextmanager
def launched(chromium):
    with chromium.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page, server, path: str) -> None:
    """Sign `server`'s administrator in on the admin's login page, landing on `path`."""
    page.goto(f"{server.url}/admin/login/?next={path}")
    page.fill("#id_username", server.admin_username)
    page.fill("#id_password", server.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{path}")
