"""POST /v1/licenses/validate's hot path (`check_license_key`, `checked_license_answer`) answers
what the ORM and ValidatedLicenseSerializer answer, byte for byte, for every code."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from licensing import services
from licensing.api.serializers import checked_license_answer
from licensing.api.views import code_body, validation_body
from licensing.models import License, LicenseStatus, Machine, ValidationCode
from tests.licensing.factories import make_license, make_machine, make_plan, set_license_dates

pytestmark = pytest.mark.django_db

render = JSONRenderer().render
OWN = object()  # the licence's own product code


def both_paths(key, **check):
    """(old body, new body, code): the model path's and the hot path's answers to one check."""
    result = services.validate_license_key(key, **check)
    code, checked = services.check_license_key(key, **check)
    assert code == result.code
    old = validation_body(result.code, result.license)
    new = code_body(code, checked_license_answer(checked) if checked else None)
    return render(old), render(new), code


def with_status(license: License, status: str) -> License:
    License.objects.filter(pk=license.pk).update(status=status)
    return license


@pytest.fixture
def plan(in_alpha):
    return make_plan(entitlements=["export", "sync", "seats-10"], max_activations=3)


@pytest.mark.parametrize(
    ("arrange", "check", "expected"),
    [
        (lambda plan: make_license(plan), {}, ValidationCode.VALID),
        (
            lambda plan: make_license(plan),
            {"product_code": "wrong"},
            ValidationCode.PRODUCT_MISMATCH,
        ),
        (lambda plan: make_license(plan), {"product_code": OWN}, ValidationCode.VALID),
        (
            lambda plan: with_status(make_license(plan), LicenseStatus.SUSPENDED),
            {},
            ValidationCode.SUSPENDED,
        ),
        (
            lambda plan: with_status(make_license(plan), LicenseStatus.REVOKED),
            {},
            ValidationCode.REVOKED,
        ),
        (
            lambda plan: dated(make_license(plan), starts_in_days=-3, expires_in_days=-1),
            {},
            ValidationCode.EXPIRED,
        ),
        (
            lambda plan: dated(make_license(plan), starts_in_days=1, expires_in_days=9),
            {},
            ValidationCode.NOT_STARTED,
        ),
        (
            lambda plan: dated(make_license(plan), starts_in_days=-1, expires_in_days=None),
            {},
            ValidationCode.VALID,
        ),
    ],
)
def test_every_licence_code_answers_the_same_bytes(plan, arrange, check, expected):
    license = arrange(plan)
    if check.get("product_code") is OWN:
        check = {"product_code": plan.product.code}
    make_machine(license)  # one slot taken: `activations.used` is 1
    old, new, code = both_paths(license.key, **check, client_address="192.0.2.1")
    assert code == expected
    assert new == old


def dated(license, **days):
    set_license_dates(license, **days)
    return license


def test_unknown_and_malformed_keys_answer_the_same_bytes(plan):
    for key in ("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "not a key", "", "x" * 300):
        old, new, code = both_paths(key)
        assert code == ValidationCode.NOT_FOUND and new == old


def test_machine_bound_checks_answer_the_same_bytes(plan):
    license = make_license(plan)
    live = make_machine(license)
    dead = make_machine(license)
    Machine.objects.filter(pk=dead.pk).update(dies_at=timezone.now() - timedelta(seconds=1))
    gone = make_machine(license, deactivated_at=timezone.now())
    cases = {
        live.fingerprint: ValidationCode.VALID,
        dead.fingerprint: ValidationCode.HEARTBEAT_DEAD,
        gone.fingerprint: ValidationCode.FINGERPRINT_NOT_ACTIVATED,
        "never-activated": ValidationCode.FINGERPRINT_NOT_ACTIVATED,
    }
    for fingerprint, expected in cases.items():
        old, new, code = both_paths(license.key, fingerprint=fingerprint)
        assert code == expected and new == old
    assert b'"used":1' in new  # the dead and the deactivated machine take no slot


def test_a_plan_without_limit_or_entitlements_answers_the_same_bytes(in_alpha):
    license = make_license(make_plan(entitlements=[], max_activations=None, duration_days=None))
    old, new, code = both_paths(license.key)
    assert code == ValidationCode.VALID and new == old
    assert b'"max_activations":null' in new and b'"entitlements":[]' in new


def test_the_check_reads_one_statement_and_records_like_the_model_path(plan):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    license = make_license(plan)
    with CaptureQueriesContext(connection) as queries:
        code, checked = services.check_license_key(license.key, fingerprint="fp")
    assert len(queries) == 1 and code == ValidationCode.FINGERPRINT_NOT_ACTIVATED
    assert checked.id == license.pk and checked.activations_used == 0
    assert Machine.objects.count() == 0


PLAIN_REQUESTS = [
    {"key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"},
    {"key": ""},
    {"key": "k", "nonce": "n" * 64, "product": "app", "fingerprint": "a" * 255, "extra": 1},
    {"key": "k", "product": None, "fingerprint": None},
    {"key": "k", "fingerprint": "a b"},
]
UNUSUAL_REQUESTS = [
    {},
    {"key": None},
    {"key": 5},
    {"key": "é"},
    {"key": "a\x00b"},
    {"key": "\ud800"},
    {"key": "k", "nonce": ""},
    {"key": "k", "nonce": None},
    {"key": "k", "nonce": "n" * 65},
    {"key": "k", "nonce": 7},
    {"key": "k", "product": ""},
    {"key": "k", "product": ["app"]},
    {"key": "k", "fingerprint": "abc\n"},
    {"key": "k", "fingerprint": " abc"},
    {"key": "k", "fingerprint": "a" * 256},
    {"key": "k", "fingerprint": ""},
    ["key"],
    "key",
]


@pytest.mark.parametrize("data", PLAIN_REQUESTS + UNUSUAL_REQUESTS)
def test_a_plain_request_is_read_as_the_serializer_reads_it(data):
    """`plain_validation_request` answers only what ValidationRequestSerializer accepts, with the
    same fields; anything else is left to the serializer (None)."""
    from licensing.api.serializers import ValidationRequestSerializer, plain_validation_request

    plain = plain_validation_request(data)
    serializer = ValidationRequestSerializer(data=data)
    if data in PLAIN_REQUESTS:
        assert serializer.is_valid(), serializer.errors
        assert plain == dict(serializer.validated_data)
    else:
        assert plain is None


PLAIN_MACHINE_REQUESTS = [
    {"key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE", "fingerprint": "hw-1"},
    {"key": "", "fingerprint": "a b"},
    {"key": "k", "fingerprint": "a" * 255, "nonce": "n" * 64, "product": "ignored", "extra": 1},
]
UNUSUAL_MACHINE_REQUESTS = [
    {"key": "k"},
    {"key": "k", "fingerprint": None},
    {"key": "k", "fingerprint": ""},
    {"key": "k", "fingerprint": " abc"},
    {"key": "k", "fingerprint": "a" * 256},
    {"key": "k", "fingerprint": 7},
    {"key": "k", "fingerprint": "é"},
    {"key": None, "fingerprint": "hw"},
    {"key": "k", "fingerprint": "hw", "nonce": ""},
    {"key": "k", "fingerprint": "hw", "nonce": None},
    {"key": "k", "fingerprint": "hw", "nonce": "n" * 65},
    ["key", "fingerprint"],
]
# Valid, but the activation's serializer reads them (trimmed text, cleaned metadata).
DESCRIBED_MACHINES = [
    {"key": "k", "fingerprint": "hw", "name": "Ada"},
    {"key": "k", "fingerprint": "hw", "platform": "linux"},
    {"key": "k", "fingerprint": "hw", "hostname": " ada "},
    {"key": "k", "fingerprint": "hw", "metadata": {}},
]


@pytest.mark.parametrize(
    "data", PLAIN_MACHINE_REQUESTS + UNUSUAL_MACHINE_REQUESTS + DESCRIBED_MACHINES
)
def test_a_plain_machine_request_is_read_as_its_serializers_read_it(data):
    """Heartbeat and deactivation (LicenseKeyRequestSerializer) and activation
    (ActivationRequestSerializer): the plain readers answer only what the serializer accepts, with
    the same fields; anything else is left to the serializer (None)."""
    from licensing.api.serializers import (
        ActivationRequestSerializer,
        LicenseKeyRequestSerializer,
        plain_activation_request,
        plain_machine_request,
    )

    for serializer_class, plain in (
        (LicenseKeyRequestSerializer, plain_machine_request(data)),
        (ActivationRequestSerializer, plain_activation_request(data)),
    ):
        serializer = serializer_class(data=data)
        described = serializer_class is ActivationRequestSerializer and data in DESCRIBED_MACHINES
        if data in PLAIN_MACHINE_REQUESTS or (data in DESCRIBED_MACHINES and not described):
            assert serializer.is_valid(), serializer.errors
            assert plain == dict(serializer.validated_data)
        else:
            assert plain is None
