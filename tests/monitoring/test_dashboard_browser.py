"""The security dashboard in headless Chromium, with a month of demo activity; saves
test-artifacts/dashboard-demo-activity.png (test_admin_screens_browser.py saves dashboard.png).

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` package (the `test` extra);
skipped with the reason otherwise. Never runs `playwright install`.
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Max
from django_tenants.utils import schema_context

from monitoring.demo_activity import seed_security_activity
from monitoring.models import Alert, SecurityEvent
from tests.browser import ARTIFACTS, launched

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_activity(chromium, live_tenant_server, django_db_blocker):
    """A month of committed demo activity in alpha (the live server sees only committed rows),
    removed afterwards: the tokens go with the server's owner, events and alerts here."""
    with django_db_blocker.unblock(), schema_context("alpha"):
        first_event = (SecurityEvent.objects.aggregate(m=Max("id"))["m"] or 0) + 1
        first_alert = (Alert.objects.aggregate(m=Max("id"))["m"] or 0) + 1
        owner = get_user_model().objects.get(pk=live_tenant_server.owner_id)
        activity = seed_security_activity(owner)
    connection.set_schema_to_public()
    yield activity
    with django_db_blocker.unblock(), schema_context("alpha"):
        SecurityEvent.objects.filter(id__gte=first_event).delete()
        Alert.objects.filter(id__gte=first_alert).delete()
    connection.set_schema_to_public()


@pytest.fixture
def browser(chromium, demo_activity):
    with launched(chromium) as browser:
        yield browser


def test_dashboard_in_a_browser(live_tenant_server, demo_activity, browser):
    server = live_tenant_server
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    missing = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)

    page.goto(f"{server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", server.admin_username)
    page.fill("#id_password", server.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    page.click("text=Security dashboard")  # linked from the admin index
    page.wait_for_url("**/admin/monitoring/securitydashboard/")

    assert page.locator("svg.dashboard-chart").count() == 5
    assert page.locator("svg.dashboard-requests rect.dashboard-bar").count() == 30
    assert page.locator("#dashboard-alerts tr.dashboard-alert").count() == 2  # open ones only
    tokens_table = page.inner_text("#dashboard-tokens")
    for token in demo_activity.tokens:
        assert token.name in tokens_table
    assert "refresh overdue" in tokens_table and "never used" in tokens_table  # in words
    # The stylesheet is served from static/, and applied.
    bar_fill = page.eval_on_selector(
        "svg.dashboard-failures rect.dashboard-bar", "bar => getComputedStyle(bar).fill"
    )
    assert bar_fill == "rgb(186, 33, 33)"
    assert errors == [] and missing == []

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "dashboard-demo-activity.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
