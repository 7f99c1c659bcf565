"""The licence list at 1366 px in a real browser: status and expiry visible without scrolling.

Needs Debian's `chromium` and the `playwright` package (see tests/browser.py); skipped otherwise.
"""

import pytest

from tests.browser import ARTIFACTS, launched

pytestmark = pytest.mark.browser


def test_licence_list_fits_1366_px_with_status_and_expiry(
    chromium, live_tenant_server, committed_licence
):
    server = live_tenant_server
    licence = committed_licence()
    with launched(chromium) as browser:
        page = browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
        page.goto(f"{server.url}/admin/login/?next=/admin/licensing/license/")
        page.fill("#id_username", server.admin_username)
        page.fill("#id_password", server.admin_password)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/licensing/license/")
        assert licence.key in page.content()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1366, f"the licence list is {width} px wide"
        # The table scrolls inside its own box: the cells must end within that box, on screen.
        visible = page.locator("#changelist .results").bounding_box()
        right = min(1366, visible["x"] + visible["width"])
        for selector in ("td.field-status_badge", "td.field-expiry_date"):
            box = page.locator(selector).first.bounding_box()
            assert box is not None and box["x"] + box["width"] <= right + 1, (selector, box, right)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "licence-list-1366.png"))
