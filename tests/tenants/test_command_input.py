"""Operator commands refuse what they cannot hold (over-long names and emails, huge limits, far
dates, domains the tenant resolution could never match) with a CommandError, never a traceback;
and what they print from tenant data has its control characters escaped."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import schema_context

from monitoring.models import Alert
from tenants.models import Tenant
from tokens.management.output import printable

pytestmark = pytest.mark.django_db

PROVISION = {
    "--tenant": "delta",
    "--name": "Delta Ltd",
    "--domain": "delta.localhost",
    "--admin-username": "dora",
    "--admin-email": "dora@delta.localhost",
}


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def provision(**changes):
    options = {**PROVISION, **changes}
    return run("provision_tenant", *[part for pair in options.items() for part in pair])


@pytest.mark.parametrize(
    "changes",
    [
        {"--name": "N" * 201},
        {"--admin-email": "a" * 250 + "@example.com"},
        {"--admin-username": "u" * 151},
        {"--domain": "Delta.localhost"},
        {"--domain": "www.delta.localhost"},
        {"--domain": "d" * 300 + ".localhost"},
        {"--request-limit": str(2**31)},
        {"--request-limit": str(10**40)},
        {"--expires": "9999-12-31"},
        {"--expires": "9999-12-31T23:00:00-05:00"},
        {"--expires": "99999-01-01"},
    ],
    ids=lambda changes: ",".join(f"{k}={v[:20]}" for k, v in changes.items()),
)
def test_provision_tenant_refuses_what_it_cannot_hold(changes):
    with pytest.raises(CommandError):
        provision(**changes)
    assert not Tenant.objects.filter(schema_name="delta").exists()


@pytest.mark.parametrize(
    "args",
    [
        ("--request-limit", str(2**31)),
        ("--request-limit", str(10**40)),
        ("--expires", "9999-12-31"),
        ("--expires", "9999-12-31T23:30:00-01:00"),
    ],
)
def test_set_tenant_license_refuses_what_it_cannot_hold(args):
    with pytest.raises(CommandError):
        run("set_tenant_license", "--tenant", "alpha", *args)
    assert Tenant.objects.get(schema_name="alpha").request_limit == 100_000


@pytest.mark.parametrize(
    "args",
    [
        ("deactivate_tokens", "--unused-days", "1000000", "--dry-run"),
        ("deactivate_tokens", "--unused-days", str(10**30)),
        ("audit_tokens", "--unused-days", "1000000"),
        ("audit_tokens", "--refresh-days", "1000000"),
        ("prune_security_events", "--days", "1000000", "--dry-run"),
        ("security_report", "--since", "1000000d"),
        ("security_report", "--since", "99999999999h"),
        ("refresh_user_token", str(2**64)),
    ],
    ids=lambda args: " ".join(args)[:40],
)
def test_token_commands_refuse_far_dates_and_huge_numbers(args):
    with pytest.raises(CommandError):
        run(*args, "--tenant", "alpha")


def test_the_resolver_matches_hosts_in_any_case(alpha_client):
    response = alpha_client.post(
        "/v1/licenses/validate", {"key": "x"}, "application/json", HTTP_HOST="ALPHA.localhost"
    )
    assert response.status_code == 200


# --- Control characters in printed names and messages

NASTY = "crm\x1b[2J\x1b]0;owned\x07\u202eevil\r\nfake line\x9b"


def test_printable_escapes_control_and_invisible_characters():
    assert printable("plain name é") == "plain name é"
    escaped = printable(NASTY)
    assert escaped.isprintable() and "\\x1b" in escaped and "\\u202e" in escaped
    assert "\\r\\n" in escaped and "\\x9b" in escaped


def test_commands_print_token_names_and_alert_messages_escaped(make_user_token):
    token, _ = make_user_token("alpha", ["view_users"], name=NASTY)
    with schema_context("alpha"):
        Alert.objects.create(
            kind=Alert.Kind.FAILED_AUTHENTICATION, count=1, window_seconds=60, message=NASTY
        )
    outputs = [
        run("audit_tokens", "--tenant", "alpha"),
        run("audit_tokens", "--tenant", "alpha", "--format", "json"),
        run("security_report", "--tenant", "alpha"),
        run("security_report", "--tenant", "alpha", "--format", "json"),
        run("refresh_user_token", str(token.pk), "--tenant", "alpha"),
    ]
    for output in outputs:
        assert "\x1b" not in output and "\u202e" not in output and "\x9b" not in output
        assert "\x07" not in output and "\r" not in output
    assert json.loads(outputs[1])["tokens"]


# --- commands name the commands they suggest with the project's interpreter

SUGGESTED = ".venv/bin/python manage.py"


def test_an_unknown_token_points_to_audit_tokens_with_the_venv_python():
    with pytest.raises(CommandError) as refused:
        run("refresh_user_token", "999999", "--tenant", "alpha")
    assert f"{SUGGESTED} audit_tokens --tenant alpha" in str(refused.value)


def test_the_demo_and_cull_machines_suggest_the_venv_python():
    from django.core.management import load_command_class

    from demo.management.commands.demo import ready_text

    assert f"{SUGGESTED} createsuperuser" in ready_text(8000, "pw")
    assert f"{SUGGESTED} cull_machines --all-tenants" in (
        load_command_class("licensing", "cull_machines").help
    )
