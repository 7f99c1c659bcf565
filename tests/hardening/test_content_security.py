"""A Content-Security-Policy on the admin and /v1/docs pages (issue 11, item 11), and pages that
still work under it: no inline script or style anywhere, checked in the HTML and in Chromium."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

from config.content_security import POLICY
from tests.browser import launched
from tests.licensing.factories import make_license

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
INLINE_STYLE = re.compile(r"<style\b|\sstyle=", re.I)
EVENT_HANDLER = re.compile(r"\son[a-z]+=", re.I)


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


def assert_no_inline_code(html: str, url: str):
    assert not INLINE_SCRIPT.search(html), url
    assert not INLINE_STYLE.search(html), url
    assert not EVENT_HANDLER.search(html), url


@pytest.mark.django_db
def test_admin_and_docs_pages_carry_the_policy_and_no_inline_code(admin_client, in_alpha):
    license = make_license()
    pages = [
        "/admin/",
        "/admin/tokens/usertoken/add/",
        "/admin/monitoring/securitydashboard/",
        "/admin/licensing/license/",
        f"/admin/licensing/license/{license.pk}/change/",
        "/v1/docs",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        policy = directives(response["Content-Security-Policy"])
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'", url
        assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"
        assert_no_inline_code(response.content.decode(), url)
    script = admin_client.get("/v1/docs?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")

    anonymous = Client(HTTP_HOST="alpha.localhost")
    assert anonymous.get("/admin/login/")["Content-Security-Policy"] == POLICY
    # JSON answers of the API need none.
    assert "Content-Security-Policy" not in anonymous.get("/v1/auth/me")


@pytest.mark.django_db
def test_the_platform_admin_carries_the_policy(admin_password):
    with schema_context("public"):
        get_user_model().objects.create_superuser("csp-operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="csp-operator", password=admin_password)
    for url in ("/admin/", "/admin/tenants/tenant/", "/admin/tenants/tenant/add/"):
        response = client.get(url)
        assert response["Content-Security-Policy"] == POLICY, url
        assert_no_inline_code(response.content.decode(), url)


@pytest.mark.browser
def test_pages_work_in_a_browser_under_the_policy(chromium, live_tenant_server):
    server = live_tenant_server
    with launched(chromium) as browser:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        violations, errors = [], []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda error: errors.append(str(error)))

        page.goto(f"{server.url}/admin/login/?next=/admin/tokens/usertoken/add/")
        page.fill("#id_username", server.admin_username)
        page.fill("#id_password", server.admin_password)
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/tokens/usertoken/add/")
        page.click("button[data-preset=read_only]")  # presets.js runs under the policy
        assert (
            page.eval_on_selector_all("input[name=permissions]:checked", "boxes => boxes.length")
            == 3
        )

        page.goto(f"{server.url}/admin/monitoring/securitydashboard/")
        page.wait_for_selector("svg.dashboard-chart")
        page.goto(f"{server.url}/admin/auth/user/add/")  # the admin's own scripts
        page.wait_for_selector("#id_username")

        page.goto(f"{server.url}/v1/docs")
        page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)  # Swagger UI rendered
        assert "Licensing platform API" in page.inner_text(".swagger-ui .info")
    assert violations == [] and errors == []
