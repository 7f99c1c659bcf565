"""Logs, security events and command outputs never hold a User Token secret or a JWT."""

import io
import logging
import re
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.log import log_response
from django_tenants.utils import schema_context

from monitoring.models import Alert, SecurityEvent
from tests.helpers import TENANTS, TenantClient, exchange
from tokens import services
from tokens.logging import REDACTED, RedactSecretsFilter, redact

pytestmark = pytest.mark.django_db

UUID_RE = re.compile(r"(?i)[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
SECRET = "3f2a9c1e-4b7d-4e8f-9a0b-1c2d3e4f5a6b"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1dGlkIjoxfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


def assert_clean(text: str, secrets, where: str):
    for secret in secrets:
        for form in {secret, secret.upper(), secret.replace("-", "")}:
            assert form not in text, f"a secret in {where}"
    assert not UUID_RE.search(text), f"a User-Token-like value in {where}: {UUID_RE.search(text)}"
    assert not JWT_RE.search(text), f"a JWT in {where}"


# --- The redaction itself


@pytest.mark.parametrize(
    "text",
    [
        f"token {SECRET}",
        f"token {SECRET.upper()}",
        f"token={SECRET.replace('-', '')}&x=1",
        f"urn:uuid:{SECRET}",
        f"Bearer {JWT}",
        f"/v1/users/{SECRET}/",
        f"{{'refresh_token': '{JWT}'}}",
    ],
)
def test_redact_removes_tokens(text):
    cleaned = redact(text)
    assert REDACTED in cleaned
    assert_clean(cleaned, [SECRET, JWT], "redacted text")
    assert redact(cleaned) == cleaned


def test_redact_keeps_ordinary_text():
    digest = "a" * 64
    text = f"User Token 42 refreshed via admin; digest {digest}; licence ABCD-EFGH-1234"
    assert redact(text) == text


def test_the_handler_filter_redacts_message_args_exception_and_extras():
    try:
        raise ValueError(f"could not use {SECRET}")
    except ValueError:
        exc_info = sys.exc_info()
    # Built directly, bypassing the record factory: the handler filter alone must clean it.
    record = logging.LogRecord(
        "thirdparty", logging.ERROR, __file__, 1, "got %s and %r", (SECRET, {"t": JWT}), exc_info
    )
    record.token = JWT
    assert RedactSecretsFilter().filter(record)
    text = logging.Formatter("%(message)s %(token)s").format(record)
    assert_clean(text, [SECRET, JWT], "formatted record")
    assert "ValueError" in text and record.exc_info is None


def test_every_handler_in_settings_carries_the_filter():
    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact_secrets" in handler.get("filters", []), name
    console = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    assert any(isinstance(f, RedactSecretsFilter) for h in console for f in h.filters)


def test_records_are_redacted_at_creation_for_any_logger_and_handler(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("some.library").info("header Authorization: Bearer %s", JWT)
    try:
        {}["x"]
    except KeyError:
        logging.getLogger("other").exception("failed with %s", SECRET)
    assert_clean(caplog.text, [SECRET, JWT], "caplog")
    assert caplog.text.count(REDACTED) == 2


def test_django_request_errors_are_redacted(caplog):
    caplog.set_level(logging.DEBUG)
    request = RequestFactory().get(f"/v1/users/{SECRET}")
    try:
        raise RuntimeError(f"boom with {JWT}")
    except RuntimeError as exc:
        log_response(
            "%s: %s",
            "Internal Server Error",
            request.path,
            response=HttpResponse(status=500),
            request=request,
            exception=exc,
        )
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert_clean(caplog.text, [SECRET, JWT], "django.request")
    assert "Internal Server Error: /v1/users/" in caplog.text and "RuntimeError" in caplog.text
    assert record.exc_info is None


# --- A whole scenario


class Collect(logging.Handler):
    """Every record any logger emits, formatted with its exception text."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def every_log_record(caplog):
    """caplog at DEBUG, plus a handler on the root logger and on every logger that does not
    propagate to it (django, django.server...)."""
    caplog.set_level(logging.DEBUG)
    collect = Collect()
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in loggers:
        logger.addHandler(collect)
    yield collect
    for logger in loggers:
        logger.removeHandler(collect)


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_whole_scenario_leaks_no_secret(
    every_log_record,
    caplog,
    api_client,
    make_user_token,
    tenant_alpha,
    alpha_client,
    admin_password,
    address,
    settings,
):
    settings.ALERT_FAILED_AUTH_THRESHOLD = 3
    settings.ALERT_DENIED_THRESHOLD = 2
    secrets = []  # every User Token secret and JWT of the scenario
    anonymous = TenantClient(tenant_alpha, TENANTS["alpha"], REMOTE_ADDR=address)

    # Exchange, use, renew.
    admin_caller = api_client("alpha", ["edit_user_tokens", "view_users", "view_licenses"])
    secrets += [admin_caller.secret, *_jwts(admin_caller.tokens)]
    assert admin_caller.get("/v1/users").status_code == 200
    renewed = anonymous.post(
        "/v1/auth/refresh",
        {"refresh_token": admin_caller.tokens["refresh_token"]},
        content_type="application/json",
    )
    assert renewed.status_code == 200
    secrets += _jwts(renewed.json())

    # Failures: unknown secret, forged JWT, a spent refresh token, a secret in the URL,
    # a JWT in the query string, a refresh token used as an access token.
    target, target_secret = make_user_token("alpha", ["view_users"])
    secrets.append(target_secret)
    unknown = "9b1c2d3e-0f4a-4b5c-8d6e-7f8091a2b3c4"
    secrets.append(unknown)
    assert exchange(anonymous, unknown).status_code == 401
    bad = admin_caller.tokens["access_token"][:-3] + "xyz"
    assert anonymous.get("/v1/users", HTTP_AUTHORIZATION=f"Bearer {bad}").status_code == 401
    spent = anonymous.post(
        "/v1/auth/refresh",
        {"refresh_token": admin_caller.tokens["refresh_token"]},
        content_type="application/json",
    )
    assert spent.status_code == 401
    # The replay revoked admin_caller's JWTs (reuse detection): a fresh caller from here on.
    admin_caller = api_client("alpha", ["edit_user_tokens", "view_users", "view_licenses"])
    secrets += [admin_caller.secret, *_jwts(admin_caller.tokens)]
    assert anonymous.get(f"/v1/users/{target_secret}").status_code in (401, 404)
    assert (
        anonymous.get(f"/v1/users?access_token={renewed.json()['access_token']}").status_code == 401
    )
    refresh_as_access = f"Bearer {renewed.json()['refresh_token']}"
    assert anonymous.get("/v1/users", HTTP_AUTHORIZATION=refresh_as_access).status_code == 401
    assert anonymous.get("/v1/auth/me", HTTP_USER_AGENT=f"bot {target_secret}").status_code == 401

    # Denials (an alert), a refresh through the API, one in the admin, a deactivation.
    narrow = api_client("alpha", ["view_users"])
    secrets += [narrow.secret, *_jwts(narrow.tokens)]
    for _ in range(2):
        assert narrow.get("/v1/user-tokens").status_code == 403
    refreshed = admin_caller.post(f"/v1/user-tokens/{target.pk}/refresh")
    assert refreshed.status_code == 200
    secrets.append(refreshed.json()["user_token"])
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    page = alpha_client.post(f"/admin/tokens/usertoken/{target.pk}/refresh/", follow=True)
    assert page.status_code == 200
    secrets += UUID_RE.findall(page.content.decode())  # the secret shown once
    assert alpha_client.get("/admin/monitoring/securitydashboard/").status_code == 200
    assert alpha_client.get("/admin/monitoring/securityevent/").status_code == 200
    with schema_context("alpha"):
        services.deactivate_user_token(narrow.user_token, actor=None, via="admin")

    # The operator's commands.
    outputs = {}
    for command in (
        ["audit_tokens", "--tenant", "alpha"],
        ["audit_tokens", "--tenant", "alpha", "--format", "json"],
        ["security_report", "--tenant", "alpha", "--since", "1h"],
        ["security_report", "--tenant", "alpha", "--since", "1h", "--format", "json"],
        ["deactivate_tokens", "--tenant", "alpha", "--unused-days", "1", "--dry-run"],
        ["flush_usage", "--tenant", "alpha"],
        ["prune_security_events", "--tenant", "alpha"],
    ):
        outputs[" ".join(command)] = run(*command)
    new_out, new_err = run("refresh_user_token", str(target.pk), "--tenant", "alpha")
    new_secret = new_out.strip()
    assert UUID_RE.fullmatch(new_secret)  # printed once, alone, on stdout
    secrets.append(new_secret)

    # Nothing anywhere holds a secret or a JWT.
    assert len(secrets) >= 12
    for name, (out, err) in outputs.items():
        assert_clean(out + err, secrets, f"output of {name}")
    assert_clean(new_err, secrets, "stderr of refresh_user_token")
    assert_clean("\n".join(every_log_record.lines), secrets, "log records")
    assert_clean(caplog.text, secrets, "caplog")
    assert any(
        r.levelno == logging.WARNING and "Security alert" in r.getMessage() for r in caplog.records
    )
    with schema_context("alpha"):
        stored = list(SecurityEvent.objects.all())
        alerts = list(Alert.objects.values_list("message", flat=True))
    kinds = {event.kind for event in stored}
    assert kinds >= {
        "token_exchanged",
        "token_pair_refreshed",
        "exchange_failed",
        "authentication_failed",
        "permission_denied",
        "user_token_refreshed",
        "user_token_deactivated",
    }
    for event in stored:
        text = " ".join(
            str(v)
            for v in [event.reason, event.user_agent, event.path, event.method, event.details]
        )
        assert_clean(text, secrets, f"security event {event.kind}")
    assert_clean(" ".join(alerts), secrets, "alerts")


def _jwts(body: dict) -> list[str]:
    return [body["access_token"], body["refresh_token"]]
