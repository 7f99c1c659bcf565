"""Failure behaviour of the API: every bad or unlucky request gets a body of CONTRACT section 6."""

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

from tests.helpers import assert_error, assert_invalid
from tests.servers import ROOT

pytestmark = pytest.mark.django_db

LIMIT = 1024 * 1024  # MAX_REQUEST_BYTES' default
# What a browser sends: DEBUG's technical error page would be HTML for it.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"


@pytest.fixture
def client(tenant_alpha):
    # Django's test client re-raises a view's exception; a real server answers with a response.
    return Client(HTTP_HOST="alpha.localhost", raise_request_exception=False)


# --- body too large


def json_body_of(size: int) -> bytes:
    prefix, suffix = b'{"user_token": "', b'"}'
    return prefix + b"a" * (size - len(prefix) - len(suffix)) + suffix


def test_default_limit_is_one_mebibyte(settings):
    assert settings.MAX_REQUEST_BYTES == LIMIT == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.parametrize("path", ["/v1/auth/token", "/v1/auth/refresh", "/v1/auth/me"])
def test_body_over_the_limit_is_413(client, path):
    response = client.post(path, json_body_of(LIMIT + 1), content_type="application/json")
    assert_error(response, 413, {"error": "Request too large"})


def test_body_at_the_limit_is_read(client):
    response = client.post("/v1/auth/token", json_body_of(LIMIT), content_type="application/json")
    assert response.status_code in (400, 401)  # read: refused as a token, not for its size


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml"])
def test_declared_length_over_the_limit_is_413_before_the_body_is_read(client, content_type):
    response = client.generic(
        "POST",
        "/v1/auth/token",
        b"{}",
        content_type=content_type,
        CONTENT_LENGTH=str(50 * LIMIT),
    )
    assert_error(response, 413, {"error": "Request too large"})


def test_413_also_for_an_authenticated_endpoint_with_a_token(client, api_client):
    with_token = api_client("alpha", ["view_licenses"])
    response = with_token.post(
        "/v1/auth/me", json_body_of(LIMIT + 10), content_type="application/json"
    )
    assert_error(response, 413, {"error": "Request too large"})


def test_limit_comes_from_the_environment():
    env = {**os.environ, "MAX_REQUEST_BYTES": "2048"}
    code = "from django.conf import settings; print(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "2048"


def test_a_smaller_configured_limit_applies(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = client.post("/v1/auth/token", json_body_of(101), content_type="application/json")
    assert_error(response, 413, {"error": "Request too large"})
    response = client.post("/v1/auth/token", json_body_of(100), content_type="application/json")
    assert response.status_code in (400, 401)  # read: refused as a token, not for its size


# --- malformed input and wrong content types


@pytest.mark.parametrize(
    "body",
    [
        b"{bad",
        b'{"user_token": "x"',
        b"\xff\xfe\x00",
        b'{"user_token": "\xff"}',
        b'{"user_token": NaN}',
        b"[" * 200_000,  # nested far deeper than Python's recursion limit
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b"",
        b"null",
        b"[]",
        b'"a string"',
        b"42",
    ],
    ids=lambda body: repr(body[:20]),
)
@pytest.mark.parametrize("path", ["/v1/auth/token", "/v1/auth/refresh"])
def test_malformed_json_is_400(client, path, body):
    assert_invalid(client.post(path, body, content_type="application/json"))


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/json-patch+json",
    ],
)
def test_wrong_content_type_is_400(client, content_type):
    body = b'{"user_token": "3f1c3c55-6a5c-4c7e-9d93-1d3c8c1c2b6e"}'
    response = client.generic("POST", "/v1/auth/token", body, content_type=content_type)
    assert_invalid(response)


def test_unknown_charset_does_not_crash(client):
    response = client.generic(
        "POST",
        "/v1/auth/token",
        b'{"user_token": "x"}',
        content_type="application/json; charset=bogus",
    )
    assert response.status_code in (400, 401)
    assert response["Content-Type"] == "application/json"


def test_non_numeric_content_length_is_not_a_crash(client):
    response = client.generic(
        "POST", "/v1/auth/token", b"{}", content_type="application/json", CONTENT_LENGTH="many"
    )
    assert_invalid(response)


# --- unknown routes and methods


@pytest.mark.parametrize(
    "path",
    [
        "/v1",
        "/v1/nothing-here",
        "/v1/auth/token/",
        "/v1/auth/me/",
        "/v1/../admin/",
        "/v1/%ff",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "delete", "put", "patch", "options"])
def test_unknown_route_is_404(client, path, method):
    response = getattr(client, method)(path)
    assert_error(response, 404, {"error": "Not found"})


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_api_index_only_answers_get(client, method):
    response = getattr(client, method)("/v1/")
    assert_error(response, 405, {"error": "Method not allowed"})


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_method_the_route_does_not_have_is_405(client, method):
    response = getattr(client, method)("/v1/auth/token")
    assert_error(response, 405, {"error": "Method not allowed"})
    assert "POST" in response["Allow"]


# --- unexpected exceptions and the database going away, with DEBUG on or off


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def failing_app(request, settings):
    settings.DEBUG = request.param
    settings.ROOT_URLCONF = "tests.hardening.urls"
    position = settings.MIDDLEWARE.index("api.errors.ApiErrorMiddleware") + 1
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE[:position],
        "tests.hardening.urls.FailingMiddleware",
        *settings.MIDDLEWARE[position:],
    ]
    return Client(HTTP_HOST="alpha.localhost", raise_request_exception=False)


def assert_no_page(response):
    content = response.content.decode()
    for leak in ("Traceback", "<html", "<!DOCTYPE", "Failing", "connection refused", 'File "'):
        assert leak not in content


@pytest.mark.parametrize("where", ["plain", "api", "middleware"])
def test_unexpected_exception_is_json_500(failing_app, where):
    response = failing_app.get(f"/v1/test-failures/{where}", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert_error(response, 500, {"error": "Internal server error"})
    assert_no_page(response)


@pytest.mark.parametrize("where", ["plain-db", "api-db", "middleware-db"])
def test_database_error_is_503(failing_app, where):
    response = failing_app.get(f"/v1/test-failures/{where}", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert_error(response, 503, {"error": "Service unavailable"})
    assert_no_page(response)


@pytest.mark.parametrize("where", ["plain", "api"])
def test_a_plain_view_answers_from_the_same_table_as_a_drf_view(failing_app, where):
    # api.errors.ANSWERS: the middleware (plain views) and the exception handler (DRF views).
    response = failing_app.get(f"/v1/test-failures/{where}-refusal")
    assert_error(response, 403, {"error": "Access denied"})
    response = failing_app.get(f"/v1/test-failures/{where}-bad-input")
    assert_error(
        response, 400, {"error": "Invalid request", "details": {"name": ["Not this name."]}}
    )


def test_outside_the_api_django_pages_are_untouched(failing_app, settings):
    # The admin is a website: its errors stay Django's pages (HTML, the technical page in DEBUG).
    response = failing_app.get("/admin/nothing-here/")
    assert response.status_code in (302, 404)
    assert response["Content-Type"] != "application/json" or response.status_code == 302


def test_error_bodies_are_valid_json_for_every_case(client):
    # The 413 short-cut builds its body without DRF: still JSON with the exact key.
    response = client.post(
        "/v1/auth/token", json_body_of(LIMIT + 1), content_type="application/json"
    )
    assert json.loads(response.content) == {"error": "Request too large"}


def test_answers_to_authenticated_requests_are_never_stored(api_client, alpha_client):
    client = api_client("alpha", ["view_users", "view_products"])
    for path in ("/v1/auth/me", "/v1/users", "/v1/products", "/v1/licenses"):
        response = client.get(path)
        assert response["Cache-Control"] == "no-store", path
    forged = alpha_client.get("/v1/users", HTTP_AUTHORIZATION="Bearer nope")
    assert forged["Cache-Control"] == "no-store"
