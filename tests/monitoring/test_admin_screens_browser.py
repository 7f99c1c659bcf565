"""The tenant admin at a 1366x768 screen in headless Chromium: the User Token list, the licence
list and the security dashboard fit its width, with their status and expiry columns in view;
saves test-artifacts/token-list.png, licence-list.png and dashboard.png.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` package (the `test` extra);
skipped with the reason otherwise. Never runs `playwright install`. Reads column headers by
their words (status/active, expir), not by their exact set, which the list admins may change.
"""

import re

import pytest

from tests.browser import ARTIFACTS, launched
from tests.monitoring.test_dashboard_browser import demo_activity  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1366, 768
STATUS = re.compile(r"status|active", re.IGNORECASE)
EXPIRY = re.compile(r"expir", re.IGNORECASE)


@pytest.fixture
def browser(chromium, demo_activity, committed_licence):  # noqa: F811
    committed_licence()  # rows committed before the browser's event loop starts
    with launched(chromium) as browser:
        yield browser


def fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url} is {width} px wide"


def column_in_view(page, pattern: re.Pattern, table: str = "#result_list") -> None:
    """A header matching pattern is on screen, not clipped by the list's scrolling box: the
    element at its centre is the header itself (or inside it)."""
    headers = page.locator(f"{table} thead th")
    matching = [
        headers.nth(n)
        for n in range(headers.count())
        if pattern.search(headers.nth(n).inner_text())
    ]
    assert matching, f"no {pattern.pattern} column on {page.url}"
    shown = [
        header.evaluate(
            """th => { window.scrollTo(0, th.getBoundingClientRect().top + window.scrollY - 100);
                       const r = th.getBoundingClientRect();
                       const x = r.left + r.width / 2, y = r.top + r.height / 2;
                       const hit = document.elementFromPoint(x, y);
                       return r.right <= window.innerWidth && hit !== null && th.contains(hit); }"""
        )
        for header in matching
    ]
    assert any(shown), f"the {pattern.pattern} column of {page.url} is out of view"


def test_tenant_admin_lists_and_dashboard_fit_1366(live_tenant_server, browser):
    server = live_tenant_server
    page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
    page.goto(f"{server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", server.admin_username)
    page.fill("#id_password", server.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    ARTIFACTS.mkdir(exist_ok=True)

    page.goto(f"{server.url}/admin/tokens/usertoken/")
    assert page.locator("#result_list tbody tr").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "token-list.png"))  # before the checks: to look at
    fits(page)
    column_in_view(page, STATUS)
    column_in_view(page, EXPIRY)

    page.goto(f"{server.url}/admin/licensing/license/")
    assert page.locator("#result_list tbody tr").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "licence-list.png"))
    fits(page)
    column_in_view(page, STATUS)
    column_in_view(page, EXPIRY)

    page.goto(f"{server.url}/admin/monitoring/securitydashboard/")
    assert page.locator("svg.dashboard-chart").count() == 5
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    fits(page)
    column_in_view(page, EXPIRY, table="#dashboard-tokens table")
    for name in ("token-list.png", "licence-list.png", "dashboard.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
