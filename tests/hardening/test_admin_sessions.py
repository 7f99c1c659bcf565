"""Admin sessions end after ADMIN_SESSION_IDLE_SECONDS without a request (default 8 hours);
each request starts the time again (issue 11, item 11)."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.servers import ROOT

pytestmark = pytest.mark.django_db


def session_row(client) -> Session:
    with schema_context(client.tenant.schema_name):
        return Session.objects.get(session_key=client.session.session_key)


def set_expiry(client, when):
    with schema_context(client.tenant.schema_name):
        Session.objects.filter(session_key=client.session.session_key).update(expire_date=when)


def test_an_idle_session_ends_and_activity_keeps_it(admin_client):
    assert settings.SESSION_COOKIE_AGE == settings.ADMIN_SESSION_IDLE_SECONDS == 8 * 3600
    assert admin_client.get("/admin/").status_code == 200
    idle = timedelta(seconds=settings.ADMIN_SESSION_IDLE_SECONDS)
    expiry = session_row(admin_client).expire_date
    assert abs(expiry - (timezone.now() + idle)) < timedelta(minutes=1)

    set_expiry(admin_client, timezone.now() + timedelta(minutes=5))  # idle for 7 h 55 min
    assert admin_client.get("/admin/").status_code == 200
    assert session_row(admin_client).expire_date - timezone.now() > idle - timedelta(minutes=1)

    set_expiry(admin_client, timezone.now() - timedelta(seconds=1))  # idle for 8 hours
    response = admin_client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def django_setting(name: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            f"from django.conf import settings; print(settings.{name})",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_idle_time_is_configured_from_the_environment():
    done = django_setting("SESSION_COOKIE_AGE", ADMIN_SESSION_IDLE_SECONDS="900")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "900"
    for bad in ("8h", "10"):
        refused = django_setting("SESSION_COOKIE_AGE", ADMIN_SESSION_IDLE_SECONDS=bad)
        assert refused.returncode != 0
        assert "ADMIN_SESSION_IDLE_SECONDS" in refused.stderr
