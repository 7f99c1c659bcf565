"""The admin-login and abuse throttles are exact under concurrency: 40 simultaneous wrong attempts
from one address evaluate at most the limit (each is counted before the check, then decided)."""

import re
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.contrib.auth.signals import user_login_failed

pytestmark = [pytest.mark.live, pytest.mark.django_db]

ATTEMPTS = 40
LIMIT = 5
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"


def concurrently(call, count=ATTEMPTS):
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: call(), range(count)))


def test_concurrent_wrong_admin_passwords_evaluate_at_most_the_limit(settings, live_tenant_server):
    settings.ADMIN_LOGIN_RATE = f"{LIMIT}/15m"
    page = live_tenant_server.request("GET", "/admin/login/")
    cookie = SimpleCookie(page.headers["Set-Cookie"])["csrftoken"].value
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    body = urlencode(
        {
            "username": live_tenant_server.admin_username,
            "password": "wrong",
            "csrfmiddlewaretoken": form_token,
            "next": "/admin/",
        }
    )
    checked = []

    def count_check(sender, **kwargs):
        checked.append(1)

    user_login_failed.connect(count_check, dispatch_uid="test-concurrent-login")
    try:
        answers = concurrently(
            lambda: live_tenant_server.request(
                "POST",
                "/admin/login/",
                body=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Cookie": f"csrftoken={cookie}",
                },
            )
        )
    finally:
        user_login_failed.disconnect(dispatch_uid="test-concurrent-login")
    statuses = [answer.status for answer in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) == LIMIT, statuses
    assert len(checked) == LIMIT


def test_concurrent_wrong_secrets_evaluate_at_most_the_limit(settings, live_tenant_server):
    settings.ABUSE_FAILURE_RATE = f"{LIMIT}/d"
    answers = concurrently(
        lambda: live_tenant_server.request(
            "POST", "/v1/auth/token", json={"user_token": UNKNOWN_UUID}
        )
    )
    statuses = [answer.status for answer in answers]
    assert statuses.count(401) == LIMIT, statuses
    assert statuses.count(429) == ATTEMPTS - LIMIT
