"""The operator's monitoring commands (CONTRACT section 9): audit, refresh, deactivate, report,
prune, flush; each with --tenant, a clear error and a non-zero exit on bad input."""

import io
import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring import usage
from monitoring.models import Alert, SecurityEvent, TokenPermissionUsage, TokenUsageDay
from tests.helpers import TENANTS, TenantClient, exchange
from tokens import services
from tokens.models import SpentRefreshToken, UserToken

pytestmark = pytest.mark.django_db

Kind = SecurityEvent.Kind


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def audit(*extra) -> dict:
    report = json.loads(run("audit_tokens", "--tenant", "alpha", "--format", "json", *extra))
    return {row["id"]: row for row in report["tokens"]}


def backdate(token, **fields):
    with schema_context("alpha"):
        UserToken.objects.filter(pk=token.pk).update(**fields)


# --- audit_tokens


def test_audit_flags_an_unused_permission(api_client):
    caller = api_client("alpha", ["view_users", "view_licenses"])
    assert caller.get("/v1/users").status_code == 200
    row = audit()[caller.user_token.pk]  # the command flushes pending usage first
    assert row["permissions"] == ["view_users", "view_licenses"]
    assert row["unused_permissions"] == ["view_licenses"]
    assert row["permission_last_used"]["view_licenses"] is None
    assert row["permission_last_used"]["view_users"] is not None
    assert row["flags"] == ["unused_permissions"]
    assert row["owner"] == caller.user_token.owner.username
    assert row["last_used_at"] is not None and row["days_since_refresh"] == 0


def test_audit_window_decides_what_is_unused(make_user_token):
    token, _ = make_user_token("alpha", ["view_users"])
    with schema_context("alpha"):
        TokenPermissionUsage.objects.create(
            user_token=token,
            permission="view_users",
            last_used_at=timezone.now() - timedelta(days=100),
        )
    assert audit()[token.pk]["unused_permissions"] == ["view_users"]  # default 90 days
    assert audit("--unused-days", "120")[token.pk]["unused_permissions"] == []


def test_audit_flags(make_user_token):
    now = timezone.now()
    never, _ = make_user_token("alpha", ["view_users"])
    old, _ = make_user_token("alpha", [])
    backdate(old, created_at=now - timedelta(days=120), last_used_at=now)
    refreshed, _ = make_user_token("alpha", [])
    backdate(refreshed, created_at=now - timedelta(days=120), refreshed_at=now - timedelta(days=3))
    expiring, _ = make_user_token("alpha", [], expires_at=now + timedelta(days=5))
    expired, _ = make_user_token("alpha", [], expires_at=now - timedelta(days=1))
    off, _ = make_user_token("alpha", ["view_users"])
    with schema_context("alpha"):
        services.deactivate_user_token(off, via="test")
    rows = audit()
    assert rows[never.pk]["flags"] == ["never_used", "unused_permissions"]
    assert "refresh_overdue" in rows[old.pk]["flags"] and rows[old.pk]["days_since_refresh"] == 120
    assert "refresh_overdue" not in rows[refreshed.pk]["flags"]
    assert rows[refreshed.pk]["days_since_refresh"] == 3
    assert "expiring_soon" in rows[expiring.pk]["flags"]
    assert "expired" in rows[expired.pk]["flags"]
    assert rows[off.pk]["flags"] == ["inactive"] and rows[off.pk]["active"] is False
    assert "refresh_overdue" in audit("--refresh-days", "2")[refreshed.pk]["flags"]


def test_audit_table(api_client):
    caller = api_client("alpha", ["view_users", "view_licenses"])
    caller.get("/v1/users")
    out = run("audit_tokens", "--tenant", "alpha")
    header = out.splitlines()[1]
    for column in ["ID", "OWNER", "PERMISSIONS", "UNUSED PERMISSIONS", "LAST USED", "FLAGS"]:
        assert column in header
    line = next(line for line in out.splitlines() if line.startswith(f"{caller.user_token.pk} "))
    assert "view_users,view_licenses" in line and "unused_permissions" in line


def test_audit_is_per_tenant(make_user_token):
    beta_token, _ = make_user_token("beta")
    assert beta_token.pk not in audit()


# --- refresh_user_token


def test_refresh_prints_the_new_secret_once_and_revokes_at_once(api_client, tenant_alpha):
    caller = api_client("alpha", ["view_users"])
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "refresh_user_token", str(caller.user_token.pk), "--tenant", "alpha", stdout=out, stderr=err
    )
    new_secret = out.getvalue().strip()
    assert out.getvalue().count(new_secret) == 1 and len(new_secret) == 36
    assert new_secret not in err.getvalue() and "invalid from now on" in err.getvalue()
    assert caller.get("/v1/users").status_code == 401  # the old access token, at once
    anonymous = TenantClient(tenant_alpha, TENANTS["alpha"])
    assert exchange(anonymous, caller.secret).status_code == 401
    assert exchange(anonymous, new_secret).status_code == 200
    with schema_context("alpha"):
        event = SecurityEvent.objects.get(kind=Kind.USER_TOKEN_REFRESHED)
    assert event.via == "command" and event.token_hint == new_secret[-4:]


def test_refresh_refuses_unknown_and_other_tenants_tokens(make_user_token):
    beta_token, _ = make_user_token("beta")
    with pytest.raises(CommandError, match="No User Token"):
        run("refresh_user_token", str(beta_token.pk), "--tenant", "alpha")
    with pytest.raises(CommandError, match="No User Token 999999"):
        run("refresh_user_token", "999999", "--tenant", "alpha")
    with pytest.raises(CommandError, match="not an integer"):
        run("refresh_user_token", "abc", "--tenant", "alpha")


# --- deactivate_tokens


def test_deactivate_dry_run_changes_nothing_and_the_real_run_exactly_the_stale(make_user_token):
    now = timezone.now()
    used_long_ago, _ = make_user_token("alpha", name="used long ago")
    backdate(
        used_long_ago, created_at=now - timedelta(days=200), last_used_at=now - timedelta(days=40)
    )
    never_used_old, _ = make_user_token("alpha", name="never used, old")
    backdate(never_used_old, created_at=now - timedelta(days=40))
    used_lately, _ = make_user_token("alpha", name="used lately")
    backdate(
        used_lately, created_at=now - timedelta(days=200), last_used_at=now - timedelta(days=2)
    )
    never_used_new, _ = make_user_token("alpha", name="never used, new")
    already_off, _ = make_user_token("alpha", name="already off")
    backdate(already_off, created_at=now - timedelta(days=100), is_active=False)

    def active():
        with schema_context("alpha"):
            return set(UserToken.objects.filter(is_active=True).values_list("pk", flat=True))

    before = active()
    dry = run("deactivate_tokens", "--tenant", "alpha", "--unused-days", "30", "--dry-run")
    assert active() == before
    assert "Dry run: 2 User Token(s)" in dry and "Nothing was changed" in dry
    assert "used long ago" in dry and "never used, old" in dry and "used lately" not in dry

    done = run("deactivate_tokens", "--tenant", "alpha", "--unused-days", "30")
    assert before - active() == {used_long_ago.pk, never_used_old.pk}
    assert {used_lately.pk, never_used_new.pk} <= active()
    assert "Deactivated 2 User Token(s)" in done
    with schema_context("alpha"):
        events = SecurityEvent.objects.filter(kind=Kind.USER_TOKEN_DEACTIVATED)
        assert {(e.user_token_id, e.via) for e in events} == {
            (used_long_ago.pk, "command"),
            (never_used_old.pk, "command"),
        }
    assert "Deactivated 0" in run("deactivate_tokens", "--tenant", "alpha", "--unused-days", "30")


def test_deactivate_needs_the_number_of_days():
    with pytest.raises(CommandError, match="unused-days"):
        run("deactivate_tokens", "--tenant", "alpha")
    with pytest.raises(CommandError, match="must be at least 1"):
        run("deactivate_tokens", "--tenant", "alpha", "--unused-days", "0")


# --- security_report


def test_security_report(api_client, tenant_alpha, address, settings):
    settings.ALERT_FAILED_AUTH_THRESHOLD = 2
    anonymous = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)
    unknown = "00000000-0000-4000-8000-000000000abc"
    exchange(anonymous, unknown)
    exchange(anonymous, unknown)
    anonymous.get("/v1/users", HTTP_AUTHORIZATION="Bearer nonsense")
    caller = api_client("alpha", ["view_users"])
    caller.get("/v1/user-tokens")
    with schema_context("alpha"):
        SecurityEvent.objects.create(
            kind=Kind.RATE_LIMIT_HIT,
            reason="abuse",
            address=address,
            count=7,
            details={"scope": "token_exchange"},
        )
        SecurityEvent.objects.create(
            kind=Kind.EXCHANGE_FAILED,
            reason="unknown_token",
            address=address,
            created_at=timezone.now() - timedelta(days=3),  # outside --since 24h
            details={"stage": "exchange"},
        )

    report = json.loads(run("security_report", "--tenant", "alpha", "--format", "json"))
    failed = {(r["address"], r["reason"]): r["count"] for r in report["failed_authentications"]}
    stages = {(r["reason"], r["stage"]) for r in report["failed_authentications"]}
    assert stages == {("unknown_token", "exchange"), ("invalid_jwt", "access")}
    assert failed[(address, "unknown_token")] == 2
    assert failed[(address, "invalid_jwt")] == 1
    (denial,) = report["permission_denials"]
    assert denial["missing"] == ["edit_user_tokens"] and denial["endpoint"] == "GET /v1/user-tokens"
    assert denial["user_token"] == caller.user_token.pk
    (hit,) = report["rate_limit_hits"]
    assert (hit["limit"], hit["scope"], hit["count"]) == ("abuse", "token_exchange", 7)
    (alert,) = report["alerts"]
    assert address in alert["message"] and report["open_alerts"] == 1
    assert report["summary"]["exchange_failed"] == {"events": 1, "occurrences": 2}  # folded

    wider = json.loads(
        run("security_report", "--tenant", "alpha", "--since", "7d", "--format", "json")
    )
    assert {(r["address"], r["reason"]): r["count"] for r in wider["failed_authentications"]}[
        (address, "unknown_token")
    ] == 3

    table = run("security_report", "--tenant", "alpha", "--since", "30m")
    for heading in [
        "Failed authentications by address and reason",
        "Permission denials",
        "Rate-limit hits",
        "Alerts raised",
    ]:
        assert heading in table
    assert address in table and "unknown_token" in table


@pytest.mark.parametrize("since", ["yesterday", "0h", "5x", "-3d", "24"])
def test_security_report_refuses_a_bad_period(since):
    with pytest.raises(CommandError, match="--since must look like"):
        run("security_report", "--tenant", "alpha", f"--since={since}")


# --- prune_security_events


def test_prune_keeps_the_retention_period(make_user_token):
    token, _ = make_user_token("alpha")
    old = timezone.now() - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS + 1)
    with schema_context("alpha"):
        SecurityEvent.objects.all().delete()
        stale = SecurityEvent.objects.create(kind=Kind.EXCHANGE_FAILED, created_at=old)
        recent = SecurityEvent.objects.create(kind=Kind.EXCHANGE_FAILED)
        acknowledged = Alert.objects.create(
            kind=Alert.Kind.FAILED_AUTHENTICATION,
            status=Alert.Status.ACKNOWLEDGED,
            created_at=old,
            count=10,
            window_seconds=300,
            message="old",
        )
        still_open = Alert.objects.create(
            kind=Alert.Kind.FAILED_AUTHENTICATION,
            created_at=old,
            count=10,
            window_seconds=300,
            message="old but open",
        )
        TokenUsageDay.objects.create(user_token=token, day=old.date(), requests=5)
        SpentRefreshToken.objects.create(
            jti="spent-long-ago", user_token=token, expires_at=timezone.now() - timedelta(days=1)
        )

    dry = run("prune_security_events", "--tenant", "alpha", "--dry-run")
    assert "would delete 1 security events, 1 acknowledged alerts, 1 daily usage rows" in dry
    out = run("prune_security_events", "--tenant", "alpha")
    assert "1 security events" in out and "1 spent refresh tokens" in out
    with schema_context("alpha"):
        assert list(SecurityEvent.objects.values_list("pk", flat=True)) == [recent.pk]
        assert list(Alert.objects.values_list("pk", flat=True)) == [still_open.pk]
        assert not TokenUsageDay.objects.exists() and not SpentRefreshToken.objects.exists()
        assert not SecurityEvent.objects.filter(pk=stale.pk).exists()
        assert not Alert.objects.filter(pk=acknowledged.pk).exists()
    assert "0 security events" in run("prune_security_events", "--tenant", "alpha", "--days", "1")


# --- flush_usage and the common options


def test_flush_usage_for_every_tenant(api_client):
    alpha = api_client("alpha", ["view_users"])
    beta = api_client("beta", ["view_users"])
    alpha.get("/v1/users")
    beta.get("/v1/users")
    out = run("flush_usage", "--all-tenants")
    assert "alpha: 1 request(s)" in out and "beta: 1 request(s)" in out
    with schema_context("beta"):
        assert TokenUsageDay.objects.get(user_token_id=beta.user_token.pk).requests == 1
    with pytest.raises(CommandError, match="one of the arguments --tenant --all-tenants"):
        run("flush_usage")
    with schema_context("alpha"):
        assert usage.flush_tenant() == (0, 0)


@pytest.mark.parametrize(
    "command",
    [
        ["audit_tokens"],
        ["security_report"],
        ["deactivate_tokens", "--unused-days", "5"],
        ["refresh_user_token", "1"],
        ["prune_security_events"],
        ["flush_usage"],
    ],
)
def test_every_command_names_an_unknown_tenant(command):
    with pytest.raises(CommandError, match="No tenant 'nope'. Known tenants: alpha, beta"):
        run(*command, "--tenant", "nope")
    with pytest.raises(CommandError, match="public schema is not a tenant"):
        run(*command, "--tenant", "public")


def test_bad_input_exits_non_zero_from_the_shell():
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "audit_tokens", "--tenant", "alpha", "--format", "xml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=settings.BASE_DIR,
    )
    assert result.returncode != 0
    assert "invalid choice: 'xml'" in result.stderr and result.stdout == ""


def test_drain_records_writes_the_buffered_exchange_events(alpha_client, make_user_token):
    _, secret = make_user_token("alpha", ["view_users"])
    assert exchange(alpha_client, secret).status_code == 200
    assert exchange(alpha_client, secret).status_code == 200
    with schema_context("alpha"):
        exchanged = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.TOKEN_EXCHANGED)
        before = exchanged.count()
        assert run("drain_records", "--tenant", "alpha") == "2 buffered record(s) written.\n"
        assert exchanged.count() == before + 2
    assert run("drain_records") == "0 buffered record(s) written.\n"
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        run("drain_records", "--tenant", "nobody")
    with pytest.raises(CommandError, match="must be at least 1"):
        run("drain_records", "--every", "0")
