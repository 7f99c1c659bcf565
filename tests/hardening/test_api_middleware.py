"""API paths skip the browser middleware (config/middleware.py); browser pages keep all of it."""

import pytest

from tests.helpers import TENANTS, TenantClient

pytestmark = pytest.mark.django_db


def test_an_api_answer_keeps_its_headers_and_sets_no_cookie(api_client):
    client = api_client("alpha", ["view_licenses"])
    response = client.get("/v1/auth/me")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(response.content))
    assert response["X-Frame-Options"] == "DENY"
    assert not response.cookies  # no session, no CSRF cookie
    assert not hasattr(response.wsgi_request, "session")


def test_browser_pages_keep_sessions_and_csrf(tenant_alpha, admin_password):
    browser = TenantClient(tenant_alpha, TENANTS["alpha"], enforce_csrf_checks=True)
    page = browser.get("/admin/login/")
    assert page.status_code == 200 and "csrftoken" in page.cookies
    forged = browser.post("/admin/login/", {"username": "alpha-admin", "password": admin_password})
    assert forged.status_code == 403  # no CSRF token
    assert browser.login(username="alpha-admin", password=admin_password)
    assert browser.get("/admin/").status_code == 200  # the session works
