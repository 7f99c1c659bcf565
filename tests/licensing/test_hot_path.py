"""The hot path of validate, heartbeat and activate answers exactly as the DRF views do.

Each case is sent twice, as a sequence of requests from a fresh start (its own rate counters and
cache keys, and the database rolled back after each): once with
`licensing.api.hot_path.HotPathMiddleware` in MIDDLEWARE, as deployed, and once without it, so that
DRF's view answers. Status, every header in order and the body bytes must be the same, apart from
what differs between any two answers (the server time `ts`, hence the body's digest and signature,
and the id of a machine created); so must the records, security events and machines the requests
left. A plain request must have been answered by the hot path (no URL resolution ran), anything
else by the view.
"""

import json
import re
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models import Sum
from django_tenants.utils import schema_context

from licensing import clock
from licensing.models import LicenseStatus, LicenseValidation, Machine
from monitoring import events as security_events
from monitoring.models import SecurityEvent
from tenants.models import Tenant
from tenants.record_buffer import drain_buffered_records
from tests.helpers import TENANTS, TenantClient
from tests.licensing.factories import make_license, make_machine, make_plan

pytestmark = pytest.mark.django_db

HOT = "licensing.api.hot_path.HotPathMiddleware"
# As deployed (read at import: a test's `settings` changes them for the rest of the test).
MIDDLEWARE = list(django_settings.MIDDLEWARE)
CACHES = dict(django_settings.CACHES)
VARYING = {"Content-Digest", "Signature-Input", "Signature"}


VALIDATE = "/v1/licenses/validate"
HEARTBEAT = "/v1/licenses/heartbeat"
ACTIVATE = "/v1/licenses/activate"
MACHINE_COLUMNS = (
    "license_id",
    "fingerprint",
    "name",
    "metadata",
    "activated_at",
    "last_heartbeat_at",
    "dies_at",
    "dead_at",
    "deactivated_at",
)


def answers(settings, tenant, hot: bool, requests, path=VALIDATE) -> tuple[list, list, list, list]:
    """(status, headers, body) per request, the validation records, security events and machines
    the requests left (then rolled back, so that the other path starts from the same rows)."""
    settings.MIDDLEWARE = [m for m in MIDDLEWARE if hot or m != HOT]
    settings.RATELIMIT_CACHE_PREFIX = f"rl-{uuid.uuid4().hex[:12]}:"
    # Folded security events are counted in the cache per minute: each path counts its own.
    prefix = f"hot-path-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {name: {**cache, "KEY_PREFIX": prefix} for name, cache in CACHES.items()}
    client = TenantClient(tenant, TENANTS["alpha"])
    with transaction.atomic():
        with schema_context("alpha"):
            records_before = LicenseValidation.objects.count()
            events_before = event_counts()
        seen = []
        for method, body, extra in requests:
            response = getattr(client, method)(path, body, **extra)
            resolved = response.wsgi_request.resolver_match is not None
            headers = [(k, masked(k, v)) for k, v in response.headers.items() if k not in VARYING]
            signed = set(response.headers) >= VARYING
            content = re.sub(rb'("ts": ?)"[^"]*"', rb'\1""', response.content)  # also indented
            if response.status_code == 201:  # a machine created: its id is the sequence's next
                content = re.sub(rb'^\{"id":\d+,', b'{"id":0,', content)
            seen.append(((response.status_code, headers, content, signed), resolved))
        drain_buffered_records("alpha")
        with schema_context("alpha"):
            records = list(
                LicenseValidation.objects.order_by("id")[records_before:].values_list(
                    "code", "client_address", "license_id"
                )
            )
            events = event_counts() - events_before
            machines = list(Machine.objects.order_by("fingerprint").values_list(*MACHINE_COLUMNS))
        transaction.set_rollback(True)
    return seen, records, events, machines


def event_counts() -> Counter:
    """Security events by kind and reason, folded ones counted as often as they happened."""
    security_events.catch_up_folded()
    rows = SecurityEvent.objects.values_list("kind", "reason").annotate(times=Sum("count"))
    return Counter({(kind, reason): times for kind, reason, times in rows})


def masked(name: str, value: str) -> str:
    """Retry-After counts the seconds to the window's end: one later a second later."""
    if name == "Retry-After":
        assert value.isdigit() and int(value) > 0, value
        return "<seconds>"
    return value


def same_answers(settings, tenant, requests, *, by: str, path=VALIDATE) -> list:
    """The two paths' answers, asserted equal; the hot path's answers. `by`: what answers with
    the hot path in place: "hot" (itself), "view" (passed on) or "middleware" (refused before)."""
    hot, *hot_left = answers(settings, tenant, True, requests, path)
    view, *view_left = answers(settings, tenant, False, requests, path)
    assert [answer for answer, _ in hot] == [answer for answer, _ in view]
    assert hot_left == view_left  # records, security events, machines
    # Answered by the hot path: no URL was resolved (a request it passes on is resolved by DRF's).
    assert [resolved for _, resolved in view] == [by != "middleware"] * len(requests)
    assert [resolved for _, resolved in hot] == [by == "view"] * len(requests)
    return [answer for answer, _ in hot]


def post(body, content_type="application/json", **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return ("post", data, {"content_type": content_type, **extra})


@pytest.fixture
def licences(tenant_alpha):
    with schema_context("alpha"):
        now = clock.now()
        active = make_license()
        machine = make_machine(make_license())
        return {
            "active": active,
            "product": active.product.code,
            "suspended": make_license(status=LicenseStatus.SUSPENDED),
            "expired": make_license(
                starts_at=now - timedelta(days=30), expires_at=now - timedelta(days=1)
            ),
            "machine": machine,
        }


@pytest.mark.parametrize(
    "case",
    [
        "valid",
        "unknown",
        "suspended",
        "expired",
        "product",
        "product-mismatch",
        "nonce",
        "null-product",
        "fingerprint-unknown",
        "fingerprint-active",
        "unknown-field",
    ],
)
def test_plain_requests_answer_as_the_view_does(settings, tenant_alpha, licences, case):
    key = licences["active"].key
    machine = licences["machine"]
    body = {
        "valid": {"key": key},
        "unknown": {"key": "NOPE0-NOPE0-NOPE0-NOPE0-NOPE0"},
        "suspended": {"key": licences["suspended"].key},
        "expired": {"key": licences["expired"].key},
        "product": {"key": key, "product": licences["product"]},
        "product-mismatch": {"key": key, "product": "another-product"},
        "nonce": {"key": key, "nonce": "n-1"},
        "null-product": {"key": key, "product": None},
        "fingerprint-unknown": {"key": key, "fingerprint": "fp-unknown"},
        "fingerprint-active": {"key": machine.license.key, "fingerprint": machine.fingerprint},
        "unknown-field": {"key": key, "extra": 1},  # as the serializer: ignored
    }[case]
    (answer,) = same_answers(settings, tenant_alpha, [post(body)], by="hot")
    assert answer[0] == 200 and answer[3]  # signed


def test_the_licence_limit_answers_as_the_view_does(settings, tenant_alpha, licences):
    Tenant.objects.filter(schema_name="alpha").update(request_limit=2, request_period="day")
    tenant_alpha.refresh_from_db()
    requests = [post({"key": licences["active"].key})] * 3
    first, second, refused = same_answers(settings, tenant_alpha, requests, by="hot")
    assert [first[0], second[0], refused[0]] == [200, 200, 429]
    assert json.loads(refused[2]) == {"error": "Too Many Requests (Reached license limit)"}
    assert "Retry-After" in dict(refused[1]) and refused[3]  # signed, errors included


def test_the_abuse_throttle_answers_as_the_view_does(settings, tenant_alpha, licences):
    settings.ABUSE_FAILURE_RATE = "2/h"  # an hour: no window ends mid-test
    unknown = post({"key": "NOPE0-NOPE0-NOPE0-NOPE0-NOPE0"})
    known = post({"key": licences["active"].key})
    answers_ = same_answers(settings, tenant_alpha, [known, unknown, unknown, known], by="hot")
    assert [a[0] for a in answers_] == [200, 200, 200, 429]
    assert json.loads(answers_[3][2]) == {"error": "Too Many Requests"}


@pytest.mark.parametrize(
    "request_",
    [
        post('{"key": '),  # malformed JSON
        post(b"\xff\xfe"),  # not UTF-8
        post('{"key": NaN}'),
        post("[]"),
        post({"key": 12}),
        post({"key": "K", "nonce": "é\u2028✓"}),
        post({"key": "K", "nonce": "x" * 65}),
        post({"key": "K", "fingerprint": ""}),
        post({"key": "K"}, content_type="text/plain"),
        post({"key": "K"}, content_type="application/json; charset=utf-8"),
        post({"key": "K"}, HTTP_ACCEPT="text/html"),
        post({"key": "K"}, HTTP_ACCEPT="application/json; indent=4"),
        post(""),
        ("get", {}, {}),
        ("options", "", {}),
    ],
    ids=lambda r: repr(r[1])[:30] + repr(r[2])[:40],
)
def test_other_requests_go_to_the_view(settings, tenant_alpha, licences, request_):
    same_answers(settings, tenant_alpha, [request_], by="view")


def test_a_format_query_goes_to_the_view(settings, tenant_alpha, licences):
    """`?format=` is DRF's renderer override: the hot path leaves it to DRF."""
    settings.MIDDLEWARE = list(django_settings.MIDDLEWARE)
    client = TenantClient(tenant_alpha, TENANTS["alpha"])
    response = client.post(
        "/v1/licenses/validate?format=json",
        json.dumps({"key": licences["active"].key}),
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.wsgi_request.resolver_match is not None


def test_the_public_domain_is_not_answered_by_the_hot_path(settings, client):
    response = client.post(
        "/v1/licenses/validate", json.dumps({"key": "K"}), content_type="application/json"
    )
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_an_expired_platform_licence_is_refused_before_the_hot_path(
    settings, tenant_alpha, licences
):
    Tenant.objects.filter(schema_name="alpha").update(expires_at=clock.now() - timedelta(days=1))
    (answer,) = same_answers(
        settings, tenant_alpha, [post({"key": licences["active"].key})], by="middleware"
    )
    assert (answer[0], json.loads(answer[2])) == (403, {"error": "Invalid license"})


# --- Heartbeat and activation


@pytest.fixture
def machines(tenant_alpha, licensing_clock):
    """Machines in every state a heartbeat or an activation can meet, on a frozen clock (both
    paths then write the same times)."""
    with schema_context("alpha"):
        now = clock.now()
        beating = make_plan(max_activations=2, heartbeat_seconds=60, revive_seconds=300)
        one_slot = make_plan(max_activations=1, heartbeat_seconds=60, revive_seconds=300)
        live = make_license(beating)
        make_machine(live, fingerprint="live", name="Ada", metadata={"z": 1, "a": ["ü"]})
        died(make_machine(live, fingerprint="dead"), now - timedelta(seconds=10))
        died(make_machine(live, fingerprint="gone"), now - timedelta(seconds=400))
        full = make_license(one_slot)
        died(make_machine(full, fingerprint="dead"), now - timedelta(seconds=10))
        make_machine(full, fingerprint="other")
        suspended = make_license(beating, status=LicenseStatus.SUSPENDED)
        make_machine(suspended, fingerprint="live")
        unbeating = make_license()
        make_machine(unbeating, fingerprint="live")
        return {"live": live, "full": full, "suspended": suspended, "unbeating": unbeating}


def died(machine, at) -> None:
    Machine.objects.filter(pk=machine.pk).update(last_heartbeat_at=at, dies_at=at)


MACHINE_CASES = {
    "live": ("live", "live"),
    "nonce": ("live", "live"),
    "unknown-key": (None, "live"),
    "not-activated": ("live", "nobody"),
    "dead": ("live", "dead"),
    "dead-too-long": ("live", "gone"),
    "dead-slot-taken": ("full", "dead"),
    "new-slot-taken": ("full", "new"),
    "suspended": ("suspended", "live"),
    "no-heartbeat-plan": ("unbeating", "live"),
    "new": ("live", "new"),
    "unknown-field": ("live", "live"),
}


@pytest.mark.parametrize("path", [HEARTBEAT, ACTIVATE], ids=["heartbeat", "activate"])
@pytest.mark.parametrize("case", list(MACHINE_CASES))
def test_plain_machine_requests_answer_as_the_view_does(
    settings, tenant_alpha, machines, path, case
):
    licence, fingerprint = MACHINE_CASES[case]
    key = machines[licence].key if licence else "NOPE0-NOPE0-NOPE0-NOPE0-NOPE0"
    body = {"key": key, "fingerprint": fingerprint}
    if case == "nonce":
        body["nonce"] = "n-1"
    if case == "unknown-field":
        body["product"] = "ignored"
    (answer,) = same_answers(settings, tenant_alpha, [post(body)], by="hot", path=path)
    assert answer[0] in (200, 201, 409) and answer[3]  # signed


def test_an_activation_that_describes_its_machine_goes_to_the_view(
    settings, tenant_alpha, machines
):
    body = {"key": machines["live"].key, "fingerprint": "new", "name": "Ada", "metadata": {}}
    (answer,) = same_answers(settings, tenant_alpha, [post(body)], by="view", path=ACTIVATE)
    assert answer[0] == 201


@pytest.mark.parametrize("path", [HEARTBEAT, ACTIVATE], ids=["heartbeat", "activate"])
@pytest.mark.parametrize(
    "request_",
    [
        post({"key": "K"}),
        post({"key": "K", "fingerprint": None}),
        post({"key": "K", "fingerprint": " x"}),
        post({"key": "K", "fingerprint": "x", "nonce": ""}),
        post('{"key": "K", "fingerprint": '),
        post({"key": "K", "fingerprint": "x"}, HTTP_ACCEPT="text/html"),
        ("get", {}, {}),
    ],
    ids=lambda r: repr(r[1])[:40] + repr(r[2])[:30],
)
def test_other_machine_requests_go_to_the_view(settings, tenant_alpha, machines, path, request_):
    same_answers(settings, tenant_alpha, [request_], by="view", path=path)


@pytest.mark.parametrize("path", [HEARTBEAT, ACTIVATE], ids=["heartbeat", "activate"])
def test_the_throttles_answer_machine_requests_as_the_view_does(
    settings, tenant_alpha, machines, path
):
    settings.ABUSE_FAILURE_RATE = "2/h"  # an hour: no window ends mid-test
    unknown = post({"key": "NOPE0-NOPE0-NOPE0-NOPE0-NOPE0", "fingerprint": "live"})
    known = post({"key": machines["live"].key, "fingerprint": "live"})
    requests = [known, unknown, unknown, known]
    answers_ = same_answers(settings, tenant_alpha, requests, by="hot", path=path)
    assert [a[0] for a in answers_] == [200, 200, 200, 429]
    Tenant.objects.filter(schema_name="alpha").update(request_limit=1, request_period="day")
    tenant_alpha.refresh_from_db()
    first, refused = same_answers(settings, tenant_alpha, [known, known], by="hot", path=path)
    assert (first[0], refused[0]) == (200, 429)
    assert json.loads(refused[2]) == {"error": "Too Many Requests (Reached license limit)"}
