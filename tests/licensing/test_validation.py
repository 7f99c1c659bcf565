"""POST /v1/licenses/validate: no token, every code of CONTRACT section 5, in its order."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from licensing import services
from licensing.models import License, LicenseStatus, LicenseValidation, ValidationCode
from tenants.record_buffer import buffer_record, drain_buffered_records
from tests.licensing.factories import (
    fresh_address,
    make_license,
    make_plan,
    make_user,
    set_license_dates,
)

pytestmark = pytest.mark.django_db

LICENSE_FIELDS = {
    "status",
    "product",
    "plan",
    "starts_at",
    "expires_at",
    "entitlements",
    "max_activations",
    "activations",
}


def validate(client, body, address=None, **headers):
    return client.post(
        "/v1/licenses/validate",
        body,
        content_type="application/json",
        REMOTE_ADDR=address or fresh_address(),
        **headers,
    )


@pytest.fixture
def alpha_license(in_alpha):
    plan = make_plan(entitlements=["export", "sync"], max_activations=2, duration_days=30)
    return make_license(plan, customer=None, user=make_user(email="holder@example.com"))


def assert_answer(response, code: str, valid: bool = False):
    assert response.status_code == 200, response.content
    body = response.json()
    # `tenant` and `ts` bind the signed answer to its tenant and time (tests/licensing/test_signing.py)
    assert set(body) == {"valid", "code", "detail", "license", "tenant", "ts"}
    assert body["code"] == code
    assert body["valid"] is valid
    assert body["detail"] == ValidationCode(code).label
    return body


def test_a_valid_key(alpha_client, alpha_license):
    body = assert_answer(validate(alpha_client, {"key": alpha_license.key}), "VALID", valid=True)
    assert set(body["license"]) == LICENSE_FIELDS
    assert body["license"]["status"] == "active"
    assert body["license"]["product"] == alpha_license.product.code
    assert body["license"]["plan"] == alpha_license.plan.code
    assert body["license"]["entitlements"] == ["export", "sync"]
    assert body["license"]["max_activations"] == 2
    assert body["license"]["expires_at"] is not None


def test_nothing_personal_in_the_answer(alpha_client, alpha_license):
    with schema_context("alpha"):
        services.update_license(alpha_license, metadata={"owner": "secret-person"})
    text = validate(alpha_client, {"key": alpha_license.key}).content.decode()
    assert "holder@example.com" not in text
    assert alpha_license.user.username not in text
    assert "secret-person" not in text
    assert '"user"' not in text and '"customer"' not in text and '"metadata"' not in text


def test_a_valid_key_for_its_product(alpha_client, alpha_license):
    response = validate(
        alpha_client, {"key": alpha_license.key, "product": alpha_license.product.code}
    )
    assert_answer(response, "VALID", valid=True)


def test_a_key_as_a_person_types_it(alpha_client, alpha_license):
    typed = alpha_license.key.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert_answer(validate(alpha_client, {"key": f"  {typed}  "}), "VALID", valid=True)
    assert_answer(
        validate(alpha_client, {"key": alpha_license.key.replace("-", "")}), "VALID", True
    )


def test_an_unknown_key_is_not_found(alpha_client, alpha_license):
    body = assert_answer(
        validate(alpha_client, {"key": services.generate_license_key()}), "NOT_FOUND"
    )
    assert body["license"] is None


def test_a_key_of_the_other_tenant_is_not_found(alpha_client, beta_client):
    with schema_context("beta"):
        beta_key = make_license().key
    body = assert_answer(validate(alpha_client, {"key": beta_key}), "NOT_FOUND")
    assert body["license"] is None
    assert_answer(validate(beta_client, {"key": beta_key}), "VALID", valid=True)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "hello",
        "AAAAA-AAAAA-AAAAA-AAAAA-AAAA",  # one symbol short
        "AAAAA-AAAAA-AAAAA-AAAAA-AAAAAA",  # one too many
        "UUUUU-UUUUU-UUUUU-UUUUU-UUUUU",  # U is not in the alphabet
        "'; DROP TABLE licensing_license; --",
        "é" * 25,
        "A" * 10_000,
    ],
    ids=["empty", "word", "short", "long", "bad-letter", "sql", "unicode", "huge"],
)
def test_a_malformed_key_is_not_found(alpha_client, alpha_license, key):
    body = assert_answer(validate(alpha_client, {"key": key}), "NOT_FOUND")
    assert body["license"] is None


def test_revoked(alpha_client, alpha_license):
    with schema_context("alpha"):
        services.update_license(alpha_license, status=LicenseStatus.REVOKED)
    body = assert_answer(validate(alpha_client, {"key": alpha_license.key}), "REVOKED")
    assert body["license"]["status"] == "revoked"


def test_suspended(alpha_client, alpha_license):
    with schema_context("alpha"):
        services.update_license(alpha_license, status=LicenseStatus.SUSPENDED)
    assert_answer(validate(alpha_client, {"key": alpha_license.key}), "SUSPENDED")


def test_not_started(alpha_client, alpha_license):
    with schema_context("alpha"):
        set_license_dates(alpha_license, starts_in_days=2, expires_in_days=30)
    assert_answer(validate(alpha_client, {"key": alpha_license.key}), "NOT_STARTED")


def test_expired(alpha_client, alpha_license):
    with schema_context("alpha"):
        set_license_dates(alpha_license, starts_in_days=-30, expires_in_days=-0.001)
    body = assert_answer(validate(alpha_client, {"key": alpha_license.key}), "EXPIRED")
    assert body["license"]["status"] == "active"  # expiry is derived, not a stored status


def test_perpetual_never_expires(alpha_client, in_alpha):
    license = make_license(make_plan(duration_days=None))
    assert license.expires_at is None
    body = assert_answer(validate(alpha_client, {"key": license.key}), "VALID", valid=True)
    assert body["license"]["expires_at"] is None


def test_product_mismatch(alpha_client, alpha_license):
    other = make_plan().product
    response = validate(alpha_client, {"key": alpha_license.key, "product": other.code})
    body = assert_answer(response, "PRODUCT_MISMATCH")
    assert body["license"]["product"] == alpha_license.product.code
    response = validate(alpha_client, {"key": alpha_license.key, "product": "no-such-product"})
    assert_answer(response, "PRODUCT_MISMATCH")


@pytest.mark.parametrize(
    ("status", "starts_in", "expires_in", "product_matches", "expected"),
    [
        (LicenseStatus.REVOKED, 2, -1, False, "REVOKED"),  # revoked before everything else
        (LicenseStatus.SUSPENDED, 2, -1, False, "SUSPENDED"),
        (LicenseStatus.ACTIVE, 2, 30, False, "NOT_STARTED"),  # before product
        (LicenseStatus.ACTIVE, 2, -1, False, "NOT_STARTED"),  # before expiry (inconsistent row)
        (LicenseStatus.ACTIVE, -30, -1, False, "EXPIRED"),  # before product mismatch
        (LicenseStatus.ACTIVE, -1, 30, False, "PRODUCT_MISMATCH"),
        (LicenseStatus.ACTIVE, -1, None, True, "VALID"),
    ],
)
def test_codes_are_checked_in_order(
    alpha_client, alpha_license, status, starts_in, expires_in, product_matches, expected
):
    with schema_context("alpha"):
        set_license_dates(alpha_license, starts_in_days=starts_in, expires_in_days=expires_in)
        alpha_license.__class__.objects.filter(pk=alpha_license.pk).update(status=status)
    product = alpha_license.product.code if product_matches else "another-product"
    assert_answer(
        validate(alpha_client, {"key": alpha_license.key, "product": product}),
        expected,
        valid=expected == "VALID",
    )


def test_codes_are_defined_once_in_contract_order():
    assert ValidationCode.values == [
        "NOT_FOUND",
        "REVOKED",
        "SUSPENDED",
        "NOT_STARTED",
        "EXPIRED",
        "PRODUCT_MISMATCH",
        "FINGERPRINT_NOT_ACTIVATED",
        "HEARTBEAT_DEAD",
        "VALID",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "key"),
        ({"key": None}, "key"),
        ({"key": 12345}, "key"),
        ({"key": ["A"]}, "key"),
        ({"key": {"a": 1}}, "key"),
        ({"key": True}, "key"),
        ({"key": "ABCDE", "product": 7}, "product"),
    ],
)
def test_a_missing_or_non_string_key_is_invalid(alpha_client, body, field):
    response = validate(alpha_client, body)
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "Invalid request"
    assert field in data["details"]


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"key"', ""])
def test_a_body_that_is_not_an_object_is_invalid(alpha_client, raw):
    response = alpha_client.post(
        "/v1/licenses/validate", raw, content_type="application/json", REMOTE_ADDR=fresh_address()
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid request"


def test_no_token_needed_and_a_bad_one_is_ignored(alpha_client, alpha_license):
    response = validate(
        alpha_client, {"key": alpha_license.key}, HTTP_AUTHORIZATION="Bearer not-a-token"
    )
    assert_answer(response, "VALID", valid=True)


def test_only_post(alpha_client):
    response = alpha_client.get("/v1/licenses/validate")
    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}


def test_each_validation_is_recorded(alpha_client, alpha_license):
    address = fresh_address()
    validate(alpha_client, {"key": alpha_license.key}, address=address)
    validate(alpha_client, {"key": "nonsense"}, address=address)
    drain_buffered_records()  # the drain job (manage.py drain_records) writes buffered records
    with schema_context("alpha"):
        records = list(LicenseValidation.objects.order_by("id"))
    assert [(r.license_id, r.code, r.client_address) for r in records[-2:]] == [
        (alpha_license.pk, "VALID", address),
        (None, "NOT_FOUND", address),
    ]
    with schema_context("beta"):
        assert not LicenseValidation.objects.filter(client_address=address).exists()


def licensing_queries(captured):
    return [q["sql"] for q in captured.captured_queries if "licensing_" in q["sql"]]


@pytest.mark.parametrize("case", ["valid", "unknown", "malformed", "other-tenant"])
def test_one_query_whatever_the_key(alpha_client, alpha_license, case):
    with schema_context("beta"):
        beta_key = make_license().key
    key = {
        "valid": alpha_license.key,
        "unknown": services.generate_license_key(),
        "malformed": "hello",
        "other-tenant": beta_key,
    }[case]
    validate(alpha_client, {"key": "warm-up"})
    with CaptureQueriesContext(connection) as captured:
        validate(alpha_client, {"key": key})
    queries = licensing_queries(captured)
    assert len(queries) == 1, queries  # the record is buffered, not inserted by the request
    assert queries[0].startswith("SELECT") and 'FROM "licensing_license"' in queries[0]


def test_buffered_records_are_written_in_one_insert(alpha_client, alpha_license):
    for _ in range(3):
        validate(alpha_client, {"key": alpha_license.key})
    with CaptureQueriesContext(connection) as captured:
        assert drain_buffered_records("alpha") == 3
    inserts = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1, inserts  # three rows, one statement
    assert "ON CONFLICT" in inserts[0]
    assert drain_buffered_records("alpha") == 0  # nothing left


def test_a_record_written_twice_is_stored_once(alpha_client, alpha_license):
    """At-least-once: a drain that died after its commit leaves the batch queued; the next one
    writes it again, and the request id keeps one row per request."""
    with schema_context("alpha"):
        request_id = buffer_record(LicenseValidation, license_id=alpha_license.pk, code="VALID")
        assert drain_buffered_records("alpha") == 1
        buffer_record(
            LicenseValidation, license_id=alpha_license.pk, code="VALID", request_id=request_id
        )
        assert drain_buffered_records("alpha") == 0
        assert LicenseValidation.objects.filter(request_id=request_id).count() == 1


def test_a_record_of_a_licence_deleted_meanwhile_keeps_no_dangling_key(alpha_client, in_alpha):
    license = make_license()
    validate(alpha_client, {"key": license.key})
    License.objects.filter(pk=license.pk).delete()
    assert drain_buffered_records("alpha") == 1
    assert LicenseValidation.objects.order_by("-id").first().license_id is None


def test_unknown_and_malformed_keys_run_the_same_query(alpha_client, in_alpha):
    """The lookup's SQL is the same whatever the key; only the bound value differs."""
    shapes = []
    for key in ("hello", services.generate_license_key(), "x" * 500):
        with CaptureQueriesContext(connection) as captured:
            validate(alpha_client, {"key": key})
        select = licensing_queries(captured)[0]
        shapes.append(re.sub(r"'[^']*'", "?", select))
    assert len(set(shapes)) == 1, shapes


def test_keys_are_long_random_and_readable(in_alpha):
    keys = {make_license().key for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert re.fullmatch(r"([0-9A-HJKMNP-TV-Z]{5}-){4}[0-9A-HJKMNP-TV-Z]{5}", key), key
    assert len(services.KEY_ALPHABET) ** services.KEY_LENGTH >= 2**125


def test_normalising_keys():
    key = "ABCDE-FGHJK-MNPQR-STVWX-YZ012"
    assert services.normalise_license_key(key) == key
    assert services.normalise_license_key("abcde fghjk mnpqr stvwx yzoi2") == key
    assert services.normalise_license_key("ABCDEFGHJKMNPQRSTVWXYZ012") == key
    assert services.normalise_license_key("ABCDE-FGHJK-MNPQR-STVWX-YZ01U") is None
    assert services.normalise_license_key("ABCDE") is None
    assert services.normalise_license_key("A" * 1000) is None


def test_guessing_keys_is_throttled_per_address(alpha_client, alpha_license, settings):
    settings.ABUSE_FAILURE_RATE = "3/h"  # an hour: no window ends mid-test
    guesser, honest = fresh_address(), fresh_address()
    for _ in range(3):
        response = validate(alpha_client, {"key": services.generate_license_key()}, guesser)
        assert_answer(response, "NOT_FOUND")
    refused = validate(alpha_client, {"key": alpha_license.key}, guesser)
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too Many Requests"}
    assert int(refused["Retry-After"]) >= 1
    # Spoofing X-Forwarded-For does not escape it; another address is unaffected.
    spoofed = validate(
        alpha_client, {"key": alpha_license.key}, guesser, HTTP_X_FORWARDED_FOR=honest
    )
    assert spoofed.status_code == 429
    assert_answer(validate(alpha_client, {"key": alpha_license.key}, honest), "VALID", valid=True)


def test_valid_keys_do_not_count_as_guesses(alpha_client, alpha_license, settings):
    settings.ABUSE_FAILURE_RATE = "3/m"
    address = fresh_address()
    for _ in range(5):
        response = validate(alpha_client, {"key": alpha_license.key}, address)
        assert_answer(response, "VALID", valid=True)
