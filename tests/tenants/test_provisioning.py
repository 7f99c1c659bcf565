import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db


def provision(*extra, **kwargs):
    out = io.StringIO()
    call_command(
        "provision_tenant",
        "--tenant",
        kwargs.get("tenant", "gamma"),
        "--name",
        "Gamma GmbH",
        "--domain",
        kwargs.get("domain", "gamma.localhost"),
        "--admin-username",
        "gina",
        "--admin-email",
        "gina@gamma.localhost",
        *extra,
        stdout=out,
    )
    return out.getvalue()


def test_provision_tenant_creates_schema_domain_admin_and_licence(admin_password):
    output = provision(
        "--request-limit", "50", "--request-period", "hour", "--expires", "2027-12-31"
    )
    assert "gamma" in output
    tenant = Tenant.objects.get(schema_name="gamma")
    assert (tenant.request_limit, tenant.request_period) == (50, "hour")
    assert tenant.expires_at.isoformat() == "2028-01-01T00:00:00+00:00"
    assert schema_exists("gamma")
    assert Domain.objects.get(domain="gamma.localhost").tenant == tenant
    with schema_context("gamma"):
        admin = get_user_model().objects.get(username="gina")
        assert admin.is_superuser and admin.is_staff and admin.check_password(admin_password)
    response = Client(HTTP_HOST="gamma.localhost").get("/admin/login/")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"tenant": "Bad-Name"}, "Invalid tenant"),
        ({"tenant": "public"}, "reserved"),
        ({"tenant": "alpha"}, "already exists"),
        ({"domain": "alpha.localhost"}, "already belongs"),
        ({"domain": "not a host"}, "Invalid domain"),
    ],
)
def test_bad_arguments_fail_clearly_and_create_nothing(args, message):
    before = set(Tenant.objects.values_list("schema_name", flat=True))
    with pytest.raises(CommandError, match=message):
        provision(**args)
    assert set(Tenant.objects.values_list("schema_name", flat=True)) == before
    assert not schema_exists("gamma")


def test_bad_expiry_and_weak_password_are_refused(monkeypatch):
    with pytest.raises(CommandError, match="Invalid expiry"):
        provision("--expires", "2027-02-30")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")
    with pytest.raises(CommandError, match="too short"):
        provision()
    assert not schema_exists("gamma")


def test_every_bad_input_is_reported_at_once(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")
    out = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command(
            "provision_tenant",
            *("--tenant", "Bad-Name", "--name", " ", "--domain", "alpha.localhost"),
            *("--admin-username", "gina", "--admin-email", "not-an-email"),
            *("--expires", "2027-02-30"),
            stdout=out,
        )
    message = str(refused.value)
    for problem in (
        "Invalid expiry",
        "Invalid tenant 'Bad-Name'",
        "already belongs",
        "name must not be empty",
        "Invalid admin email",
        "too short",
    ):
        assert problem in message, problem
    assert not schema_exists("gamma") and not Tenant.objects.filter(name=" ").exists()


def test_a_missing_password_is_listed_with_the_other_problems(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD")
    with pytest.raises(CommandError) as refused:
        provision(domain="Gamma.localhost")
    assert "DJANGO_SUPERUSER_PASSWORD" in str(refused.value)
    assert "use lower case" in str(refused.value)
    assert not schema_exists("gamma")


@pytest.mark.parametrize(
    ("extra", "url"),
    [
        ((), "http://gamma.localhost/admin/"),
        (("--port", "8000"), "http://gamma.localhost:8000/admin/"),
        (("--port", "80"), "http://gamma.localhost/admin/"),
    ],
)
def test_the_admin_url_printed_carries_the_port(extra, url):
    assert f"ready at {url} " in provision(*extra)


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_refused(port):
    with pytest.raises(CommandError):
        provision("--port", port)
    assert not schema_exists("gamma")


def test_missing_password_without_a_terminal_is_an_error(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD")
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD"):
        provision()


def test_failure_after_schema_creation_leaves_nothing_behind(monkeypatch):
    User = get_user_model()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(User.objects), "create_superuser", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        provision()
    assert not Tenant.objects.filter(schema_name="gamma").exists()
    assert not Domain.objects.filter(domain="gamma.localhost").exists()
    assert not schema_exists("gamma")


def test_set_tenant_license_changes_only_what_is_given(tenant_alpha):
    out = io.StringIO()
    call_command("set_tenant_license", "--tenant", "alpha", "--request-limit", "7", stdout=out)
    tenant_alpha.refresh_from_db()
    assert tenant_alpha.request_limit == 7 and tenant_alpha.request_period == "minute"
    call_command("set_tenant_license", "--tenant", "alpha", "--expires", "2030-01-01", stdout=out)
    call_command("set_tenant_license", "--tenant", "alpha", "--request-period", "day", stdout=out)
    tenant_alpha.refresh_from_db()
    assert tenant_alpha.request_limit == 7 and tenant_alpha.request_period == "day"
    assert tenant_alpha.expires_at.year == 2030
    call_command("set_tenant_license", "--tenant", "alpha", "--expires", "never", stdout=out)
    tenant_alpha.refresh_from_db()
    assert tenant_alpha.expires_at is None


def test_an_expiry_in_the_past_needs_force(tenant_alpha):
    before = tenant_alpha.expires_at
    with pytest.raises(CommandError, match="--force"):
        call_command("set_tenant_license", "--tenant", "alpha", "--expires", "2020-01-01")
    tenant_alpha.refresh_from_db()
    assert tenant_alpha.expires_at == before
    out = io.StringIO()
    try:
        call_command(
            "set_tenant_license",
            "--tenant",
            "alpha",
            "--expires",
            "2020-01-01",
            "--force",
            stdout=out,
        )
        tenant_alpha.refresh_from_db()
        assert tenant_alpha.expires_at.year == 2020 and "expires 2020-01-02" in out.getvalue()
    finally:  # through the command, so the tenant cache hears of it
        restore = before.isoformat() if before else "never"
        call_command("set_tenant_license", "--tenant", "alpha", "--expires", restore, stdout=out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody", "--request-limit", "5"], "No tenant 'nobody'"),
        (["--tenant", "public", "--request-limit", "5"], "not a tenant"),
        (["--tenant", "alpha"], "Nothing to change"),
        (["--tenant", "alpha", "--expires", "soon"], "Invalid expiry"),
    ],
)
def test_set_tenant_license_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("set_tenant_license", *args)


def test_command_line_exit_status_is_non_zero_on_bad_input():
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "set_tenant_license",
            "--tenant",
            "alpha",
            "--request-limit",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "must be at least 1" in result.stderr
