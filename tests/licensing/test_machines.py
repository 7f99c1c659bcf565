"""Machines: activate, heartbeat, deactivate (no token), validation with a fingerprint, the churn
budget, heartbeat death and revival on an injected clock, and query counts."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.renderers import JSONRenderer

from licensing import services
from licensing.api.serializers import ActivatedMachineSerializer, activated_machine_answer
from licensing.models import LicenseStatus, Machine
from tests.licensing.factories import fresh_address, make_license, make_plan, set_license_dates

pytestmark = pytest.mark.django_db

MACHINE_FIELDS = {
    "id",
    "fingerprint",
    "name",
    "platform",
    "hostname",
    "metadata",
    "status",
    "activated_at",
    "last_heartbeat_at",
    "heartbeat_deadline",
    "dies_at",
    "heartbeat",
}


def call(client, action, body, address=None):
    return client.post(
        f"/v1/licenses/{action}",
        body,
        content_type="application/json",
        REMOTE_ADDR=address or fresh_address(),
    )


def activate(client, key, fingerprint, **fields):
    return call(client, "activate", {"key": key, "fingerprint": fingerprint, **fields})


def heartbeat(client, key, fingerprint):
    return call(client, "heartbeat", {"key": key, "fingerprint": fingerprint})


def deactivate(client, key, fingerprint):
    return call(client, "deactivate", {"key": key, "fingerprint": fingerprint})


def validate(client, key, fingerprint=None):
    body = {"key": key} if fingerprint is None else {"key": key, "fingerprint": fingerprint}
    return call(client, "validate", body)


def code_of(response) -> str:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"valid", "code", "detail", "license", "tenant", "ts"}, body
    return body["code"]


@pytest.fixture
def licence(in_alpha):
    return make_license(make_plan(max_activations=2, duration_days=30))


@pytest.fixture
def beating(in_alpha, licensing_clock):
    """A licence whose plan wants a heartbeat every 60 s, 30 s of grace, revival within 300 s."""
    plan = make_plan(
        max_activations=1, heartbeat_seconds=60, heartbeat_grace_seconds=30, revive_seconds=300
    )
    return make_license(plan)


# --- Activation


def test_activate_answers_the_machine_and_is_idempotent(alpha_client, licence):
    response = activate(
        alpha_client,
        licence.key,
        "hw-1234",
        name="Alice's laptop",
        platform="macOS 15",
        hostname="alice-mbp",
        metadata={"cpu": "M3"},
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    machine = response.json()
    assert set(machine) == MACHINE_FIELDS | {"tenant", "ts"}  # signed answer (docs/offline.md)
    assert machine["fingerprint"] == "hw-1234"
    assert (machine["name"], machine["platform"], machine["hostname"]) == (
        "Alice's laptop",
        "macOS 15",
        "alice-mbp",
    )
    assert machine["metadata"] == {"cpu": "M3"}
    assert machine["status"] == "active"
    assert machine["heartbeat"] == {
        "required": False,
        "interval_seconds": None,
        "grace_seconds": 120,
        "revive_seconds": 86400,
    }
    assert machine["heartbeat_deadline"] is None and machine["dies_at"] is None

    again = activate(alpha_client, licence.key, "hw-1234", name="renamed")
    assert again.status_code == 200
    assert again.json()["id"] == machine["id"] and again.json()["name"] == "Alice's laptop"
    assert Machine.objects.filter(license=licence).count() == 1


def test_the_limit_is_the_plans_max_activations(alpha_client, licence):
    assert activate(alpha_client, licence.key, "one").status_code == 201
    assert activate(alpha_client, licence.key, "two").status_code == 201
    refused = activate(alpha_client, licence.key, "three")
    assert refused.status_code == 409
    assert refused.json() == {"error": "Activation limit reached"}
    assert not Machine.objects.filter(fingerprint="three").exists()
    assert activate(alpha_client, licence.key, "two").status_code == 200  # still idempotent


def test_no_limit_without_max_activations(alpha_client, in_alpha):
    licence = make_license(make_plan(max_activations=None))
    for n in range(5):
        assert activate(alpha_client, licence.key, f"machine-{n}").status_code == 201
    body = validate(alpha_client, licence.key).json()
    assert body["license"]["activations"] == {"used": 5, "max": None}


def test_a_licence_that_is_not_valid_activates_nothing(alpha_client, licence):
    services.update_license(licence, status=LicenseStatus.SUSPENDED)
    response = activate(alpha_client, licence.key, "hw")
    assert code_of(response) == "SUSPENDED"
    assert response.json()["license"]["activations"] == {"used": 0, "max": 2}
    set_license_dates(licence, starts_in_days=-40, expires_in_days=-1)
    services.update_license(licence, status=LicenseStatus.ACTIVE)
    assert code_of(activate(alpha_client, licence.key, "hw")) == "EXPIRED"
    assert not Machine.objects.exists()


@pytest.mark.parametrize("key", ["", "nonsense", "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA"])
def test_an_unknown_key_is_not_found(alpha_client, in_alpha, key):
    for action in ("activate", "heartbeat"):
        response = call(alpha_client, action, {"key": key, "fingerprint": "hw"})
        assert code_of(response) == "NOT_FOUND"
        assert response.json()["license"] is None
    response = deactivate(alpha_client, key, "hw")
    assert response.status_code == 404 and response.json() == {"error": "Not found"}


def test_a_key_of_another_tenant_is_not_found(alpha_client, beta_client):
    with schema_context("beta"):
        beta_key = make_license().key
    assert code_of(activate(alpha_client, beta_key, "hw")) == "NOT_FOUND"
    assert activate(beta_client, beta_key, "hw").status_code == 201
    assert code_of(heartbeat(alpha_client, beta_key, "hw")) == "NOT_FOUND"
    assert deactivate(alpha_client, beta_key, "hw").status_code == 404
    with schema_context("beta"):
        assert Machine.objects.get(fingerprint="hw").deactivated_at is None
    with schema_context("alpha"):
        assert not Machine.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "key"),
        ({"key": "K"}, "fingerprint"),
        ({"key": "K", "fingerprint": ""}, "fingerprint"),
        ({"key": "K", "fingerprint": "x" * 256}, "fingerprint"),
        ({"key": "K", "fingerprint": "tab\there"}, "fingerprint"),
        ({"key": "K", "fingerprint": " padded"}, "fingerprint"),
        ({"key": "K", "fingerprint": "café"}, "fingerprint"),
        ({"key": "K", "fingerprint": 1234}, "fingerprint"),
        ({"key": 1234, "fingerprint": "hw"}, "key"),
        ({"key": "K", "fingerprint": "hw", "name": "n" * 256}, "name"),
        ({"key": "K", "fingerprint": "hw", "hostname": ["h"]}, "hostname"),
        ({"key": "K", "fingerprint": "hw", "metadata": "text"}, "metadata"),
        ({"key": "K", "fingerprint": "hw", "metadata": {"blob": "x" * 17_000}}, "metadata"),
    ],
)
def test_bad_input_is_invalid(alpha_client, licence, body, field):
    body = {**body, "key": licence.key} if body.get("key") == "K" else body
    actions = ["activate"] if set(body) - {"key", "fingerprint"} else ["activate", "heartbeat"]
    if set(body) <= {"key", "fingerprint"}:
        actions.append("deactivate")
    for action in actions:
        response = call(alpha_client, action, body)
        assert response.status_code == 400, (action, response.content)
        assert response.json()["error"] == "Invalid request"
        assert field in response.json()["details"]
    assert not Machine.objects.exists()


def test_a_printable_fingerprint_with_inner_spaces_is_fine(alpha_client, licence):
    fingerprint = "MAC 00:1A:2B:3C:4D:5E / disk {7}~" + "x" * 200
    assert activate(alpha_client, licence.key, fingerprint).status_code == 201
    assert code_of(validate(alpha_client, licence.key, fingerprint)) == "VALID"


def test_only_post(alpha_client):
    for action in ("activate", "deactivate", "heartbeat"):
        response = alpha_client.get(f"/v1/licenses/{action}")
        assert response.status_code == 405
        assert response.json() == {"error": "Method not allowed"}


# --- Validation with a fingerprint


def test_validation_with_a_fingerprint(alpha_client, licence):
    assert code_of(validate(alpha_client, licence.key, "hw")) == "FINGERPRINT_NOT_ACTIVATED"
    activate(alpha_client, licence.key, "hw")
    body = validate(alpha_client, licence.key, "hw").json()
    assert (body["valid"], body["code"]) == (True, "VALID")
    assert body["license"]["activations"] == {"used": 1, "max": 2}
    assert code_of(validate(alpha_client, licence.key, "other")) == "FINGERPRINT_NOT_ACTIVATED"
    assert code_of(validate(alpha_client, licence.key)) == "VALID"  # without: as before


def test_the_licence_codes_come_before_the_fingerprint(alpha_client, licence):
    services.update_license(licence, status=LicenseStatus.REVOKED)
    assert code_of(validate(alpha_client, licence.key, "never-activated")) == "REVOKED"


def test_product_mismatch_comes_before_the_fingerprint(alpha_client, licence):
    response = call(
        alpha_client, "validate", {"key": licence.key, "product": "other", "fingerprint": "hw"}
    )
    assert code_of(response) == "PRODUCT_MISMATCH"


def test_a_bad_fingerprint_in_validation_is_invalid(alpha_client, licence):
    response = call(alpha_client, "validate", {"key": licence.key, "fingerprint": "\x00"})
    assert response.status_code == 400
    assert "fingerprint" in response.json()["details"]


# --- Deactivation and the churn budget


def test_deactivate_frees_the_slot(alpha_client, licence):
    activate(alpha_client, licence.key, "one")
    activate(alpha_client, licence.key, "two")
    response = deactivate(alpha_client, licence.key, "one")
    assert response.status_code == 204 and response.content == b""
    assert code_of(validate(alpha_client, licence.key, "one")) == "FINGERPRINT_NOT_ACTIVATED"
    assert activate(alpha_client, licence.key, "three").status_code == 201
    assert deactivate(alpha_client, licence.key, "one").status_code == 404  # already done
    stored = Machine.objects.get(fingerprint="one")
    assert stored.deactivation_reason == "client" and stored.deactivated_at is not None
    # The same fingerprint can be activated again: a new machine.
    deactivate(alpha_client, licence.key, "three")
    again = activate(alpha_client, licence.key, "one")
    assert again.status_code == 201 and again.json()["id"] != stored.pk


def test_a_licence_that_is_not_valid_may_still_free_its_machines(alpha_client, licence):
    activate(alpha_client, licence.key, "hw")
    services.update_license(licence, status=LicenseStatus.SUSPENDED)
    assert deactivate(alpha_client, licence.key, "hw").status_code == 204


def test_the_churn_budget(alpha_client, in_alpha, licensing_clock):
    licence = make_license(make_plan(max_activations=5, max_deactivations=2))
    for n in range(3):
        activate(alpha_client, licence.key, f"m{n}")
    assert deactivate(alpha_client, licence.key, "m0").status_code == 204
    licensing_clock.advance(days=10)
    assert deactivate(alpha_client, licence.key, "m1").status_code == 204
    licensing_clock.advance(days=5)
    refused = deactivate(alpha_client, licence.key, "m2")
    assert refused.status_code == 409
    assert refused.json() == {"error": "Deactivation limit reached"}
    # The first deactivation leaves the 30-day window in 15 days.
    assert abs(int(refused["Retry-After"]) - 15 * 86400) <= 2
    assert Machine.objects.get(fingerprint="m2").deactivated_at is None
    # An administrator's deactivation is not counted, and is not refused.
    managed = Machine.objects.get(fingerprint="m2")
    assert services.deactivate_machine(managed) is True
    activate(alpha_client, licence.key, "m3")
    licensing_clock.advance(days=15, seconds=1)
    assert deactivate(alpha_client, licence.key, "m3").status_code == 204


# --- Heartbeats: death and revival, on the injected clock


def test_a_heartbeat_moves_the_deadline(alpha_client, beating, licensing_clock):
    start = licensing_clock()
    machine = activate(alpha_client, beating.key, "hw").json()
    assert machine["heartbeat"] == {
        "required": True,
        "interval_seconds": 60,
        "grace_seconds": 30,
        "revive_seconds": 300,
    }
    assert machine["heartbeat_deadline"] == _iso(start + timedelta(seconds=60))
    assert machine["dies_at"] == _iso(start + timedelta(seconds=90))
    licensing_clock.advance(seconds=50)
    beat = heartbeat(alpha_client, beating.key, "hw")
    assert beat.status_code == 200, beat.content
    assert beat.json()["id"] == machine["id"]
    assert beat.json()["heartbeat_deadline"] == _iso(start + timedelta(seconds=110))
    licensing_clock.advance(seconds=85)  # late, but within the grace period
    assert code_of(validate(alpha_client, beating.key, "hw")) == "VALID"
    assert heartbeat(alpha_client, beating.key, "hw").status_code == 200


def test_a_machine_that_misses_its_heartbeat_dies_and_frees_its_slot(
    alpha_client, beating, licensing_clock
):
    activate(alpha_client, beating.key, "old")
    assert activate(alpha_client, beating.key, "new").status_code == 409  # limit 1
    licensing_clock.advance(seconds=91)
    assert code_of(validate(alpha_client, beating.key, "old")) == "HEARTBEAT_DEAD"
    assert validate(alpha_client, beating.key).json()["license"]["activations"] == {
        "used": 0,
        "max": 1,
    }
    assert activate(alpha_client, beating.key, "new").status_code == 201
    # Dead and its slot taken: a heartbeat cannot revive it.
    refused = heartbeat(alpha_client, beating.key, "old")
    assert refused.status_code == 409
    assert refused.json() == {"error": "Activation limit reached"}


def test_a_heartbeat_within_revive_seconds_revives(alpha_client, beating, licensing_clock):
    machine = activate(alpha_client, beating.key, "hw").json()
    licensing_clock.advance(seconds=90 + 299)
    assert code_of(validate(alpha_client, beating.key, "hw")) == "HEARTBEAT_DEAD"
    revived = heartbeat(alpha_client, beating.key, "hw")
    assert revived.status_code == 200
    assert revived.json()["id"] == machine["id"] and revived.json()["status"] == "active"
    assert code_of(validate(alpha_client, beating.key, "hw")) == "VALID"


def test_after_revive_seconds_it_must_be_activated_again(alpha_client, beating, licensing_clock):
    machine = activate(alpha_client, beating.key, "hw").json()
    licensing_clock.advance(seconds=90 + 301)
    assert code_of(heartbeat(alpha_client, beating.key, "hw")) == "HEARTBEAT_DEAD"
    assert code_of(validate(alpha_client, beating.key, "hw")) == "HEARTBEAT_DEAD"
    again = activate(alpha_client, beating.key, "hw")
    assert again.status_code == 201 and again.json()["id"] == machine["id"]
    assert code_of(validate(alpha_client, beating.key, "hw")) == "VALID"


def test_heartbeat_refusals_say_why(alpha_client, beating):
    assert code_of(heartbeat(alpha_client, beating.key, "hw")) == "FINGERPRINT_NOT_ACTIVATED"
    activate(alpha_client, beating.key, "hw")
    services.update_license(beating, status=LicenseStatus.SUSPENDED)
    response = heartbeat(alpha_client, beating.key, "hw")
    assert code_of(response) == "SUSPENDED"
    assert response.json()["license"]["activations"] == {"used": 1, "max": 1}


def test_a_plan_without_heartbeats_never_kills(alpha_client, licence, licensing_clock):
    activate(alpha_client, licence.key, "hw")
    licensing_clock.advance(days=20)
    assert code_of(validate(alpha_client, licence.key, "hw")) == "VALID"
    assert heartbeat(alpha_client, licence.key, "hw").json()["heartbeat_deadline"] is None


def test_changing_the_plans_heartbeat_reschedules_its_machines(
    alpha_client, licence, licensing_clock
):
    activate(alpha_client, licence.key, "hw")
    services.update_plan(licence.plan, heartbeat_seconds=60, heartbeat_grace_seconds=0)
    licensing_clock.advance(seconds=61)
    assert code_of(validate(alpha_client, licence.key, "hw")) == "HEARTBEAT_DEAD"
    services.update_plan(licence.plan, heartbeat_seconds=None)
    assert code_of(validate(alpha_client, licence.key, "hw")) == "VALID"


def test_cull_marks_dead_machines_once(alpha_client, beating, licensing_clock):
    activate(alpha_client, beating.key, "hw")
    assert services.cull_dead_machines() == 0
    licensing_clock.advance(seconds=91)
    assert services.cull_dead_machines() == 1
    assert services.cull_dead_machines() == 0
    machine = Machine.objects.get(fingerprint="hw")
    assert machine.dead_at == machine.dies_at
    licensing_clock.advance(seconds=10)
    heartbeat(alpha_client, beating.key, "hw")  # revived
    machine.refresh_from_db()
    assert machine.dead_at is None and machine.status == "active"


def _iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Throttling and query counts


def test_guessing_keys_is_throttled_across_the_client_endpoints(alpha_client, licence, settings):
    settings.ABUSE_FAILURE_RATE = "3/h"  # an hour: no window ends mid-test
    guesser = fresh_address()
    for action in ("activate", "heartbeat", "deactivate"):
        call(
            alpha_client,
            action,
            {"key": services.generate_license_key(), "fingerprint": "x"},
            guesser,
        )
    for action in ("activate", "heartbeat", "deactivate", "validate"):
        refused = call(alpha_client, action, {"key": licence.key, "fingerprint": "x"}, guesser)
        assert refused.status_code == 429
        assert refused.json() == {"error": "Too Many Requests"}
    assert activate(alpha_client, licence.key, "x").status_code == 201  # another address


def licensing_queries(captured):
    return [q["sql"] for q in captured.captured_queries if "licensing_" in q["sql"]]


def request_statements(captured):
    """The request's statements but the request counter's (Redis in production, no SQL; the
    embedded default's PostgreSQL counter otherwise), savepoints, and the signing key's lookup
    (cached per process, but read again inside a test's transaction)."""
    skipped = ("tenants_ratecounter", "tenants_signingkey")
    return [
        q["sql"]
        for q in captured.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        and not any(table in q["sql"] for table in skipped)
    ]


# With tenant routing (the domain's SELECT, two SET search_path), the whole request's statements.
HEARTBEAT_TOTAL, ACTIVATION_TOTAL = 5, 8


def test_a_heartbeat_is_two_statements(alpha_client, beating, licensing_clock):
    activate(alpha_client, beating.key, "hw")
    heartbeat(alpha_client, beating.key, "hw")  # warm
    licensing_clock.advance(seconds=30)
    with CaptureQueriesContext(connection) as captured:
        response = heartbeat(alpha_client, beating.key, "hw")
    assert response.status_code == 200
    assert len(request_statements(captured)) <= HEARTBEAT_TOTAL, request_statements(captured)
    queries = licensing_queries(captured)
    assert len(queries) == 2, queries
    # Prepared (api.statements), written once per process: no ORM on a live machine's heartbeat.
    assert queries[0].startswith("SELECT") and 'FROM "licensing_machine" m JOIN' in queries[0]
    assert queries[1].startswith('UPDATE "licensing_machine" SET last_heartbeat_at')


@pytest.mark.parametrize("case", ["unknown-key", "not-activated"])
def test_a_refused_heartbeat_is_two_statements(alpha_client, beating, case):
    key = beating.key if case == "not-activated" else services.generate_license_key()
    heartbeat(alpha_client, key, "hw")
    with CaptureQueriesContext(connection) as captured:
        heartbeat(alpha_client, key, "hw")
    assert len(licensing_queries(captured)) == 2


def test_activation_is_three_statements(alpha_client, licence):
    activate(alpha_client, licence.key, "warm")
    with CaptureQueriesContext(connection) as captured:
        assert activate(alpha_client, licence.key, "hw").status_code == 201
    assert len(request_statements(captured)) <= ACTIVATION_TOTAL, request_statements(captured)
    queries = licensing_queries(captured)
    assert len(queries) == 3, queries
    assert "FOR UPDATE" in queries[0] and queries[2].startswith("INSERT")


def test_validation_with_a_fingerprint_is_still_one_statement(alpha_client, licence):
    activate(alpha_client, licence.key, "hw")
    validate(alpha_client, licence.key, "hw")
    with CaptureQueriesContext(connection) as captured:
        assert code_of(validate(alpha_client, licence.key, "hw")) == "VALID"
    # The licence, its activation count and the fingerprint's machine; the record is buffered.
    assert len(licensing_queries(captured)) == 1


# --- The managed side: GET /v1/machines, GET and DELETE /v1/machines/{id}


def test_machines_are_listed_with_filters(api_client, alpha_client, licence):
    other = make_license(licence.plan)
    activate(alpha_client, licence.key, "shared-hw")
    activate(alpha_client, licence.key, "gone")
    deactivate(alpha_client, licence.key, "gone")
    activate(alpha_client, other.key, "shared-hw")
    client = api_client("alpha", ["view_licenses"])

    def ids(query):
        response = client.get(f"/v1/machines?{query}")
        assert response.status_code == 200, response.content
        return {(m["license"], m["fingerprint"], m["status"]) for m in response.json()["results"]}

    assert ids(f"license={licence.pk}") == {
        (licence.pk, "shared-hw", "active"),
        (licence.pk, "gone", "deactivated"),
    }
    assert ids("fingerprint=shared-hw") >= {
        (licence.pk, "shared-hw", "active"),
        (other.pk, "shared-hw", "active"),
    }
    assert ids(f"license={licence.pk}&active=true") == {(licence.pk, "shared-hw", "active")}
    assert ids(f"license={licence.pk}&active=false") == {(licence.pk, "gone", "deactivated")}
    assert ids(f"license={licence.pk}&status=deactivated") == {(licence.pk, "gone", "deactivated")}
    for bad in ("license=abc", "active=maybe", "status=sleeping"):
        response = client.get(f"/v1/machines?{bad}")
        assert response.status_code == 400 and bad.split("=")[0] in response.json()["details"]


def test_a_machine_in_detail(api_client, alpha_client, licence):
    machine_id = activate(alpha_client, licence.key, "hw", hostname="box").json()["id"]
    body = api_client("alpha", ["view_licenses"]).get(f"/v1/machines/{machine_id}").json()
    assert set(body) == MACHINE_FIELDS | {
        "license",
        "dead_at",
        "deactivated_at",
        "deactivation_reason",
    }
    assert (body["license"], body["hostname"], body["deactivation_reason"]) == (
        licence.pk,
        "box",
        "",
    )
    assert licence.key not in str(body)


def test_delete_deactivates_without_using_the_churn_budget(api_client, alpha_client, in_alpha):
    licence = make_license(make_plan(max_deactivations=1))
    machine_id = activate(alpha_client, licence.key, "one").json()["id"]
    client = api_client("alpha", ["edit_licenses", "view_licenses"])
    assert client.delete(f"/v1/machines/{machine_id}").status_code == 204
    assert client.delete(f"/v1/machines/{machine_id}").status_code == 204  # idempotent
    body = client.get(f"/v1/machines/{machine_id}").json()
    assert (body["status"], body["deactivation_reason"]) == ("deactivated", "managed")
    activate(alpha_client, licence.key, "two")
    assert deactivate(alpha_client, licence.key, "two").status_code == 204  # budget intact


# --- Monitoring


def test_refusals_are_security_events(alpha_client, in_alpha):
    from monitoring.models import SecurityEvent

    licence = make_license(make_plan(max_activations=1, max_deactivations=1))
    activate(alpha_client, licence.key, "one")
    address = fresh_address()
    assert (
        call(
            alpha_client, "activate", {"key": licence.key, "fingerprint": "two"}, address
        ).status_code
        == 409
    )
    deactivate(alpha_client, licence.key, "one")
    activate(alpha_client, licence.key, "three")
    assert deactivate(alpha_client, licence.key, "three").status_code == 409
    events = list(
        SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACTIVATION_REFUSED).order_by("id")
    )
    assert [(e.reason, e.details["license"]) for e in events] == [
        ("activation_limit", licence.pk),
        ("deactivation_limit", licence.pk),
    ]
    assert events[0].address == address and events[0].path == "/v1/licenses/activate"
    assert licence.key not in str([e.details for e in events])


# --- manage.py cull_machines


def run_command(*args) -> str:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_cull_machines_command(alpha_client, beating, licensing_clock):
    from django.core.management.base import CommandError

    activate(alpha_client, beating.key, "hw")
    licensing_clock.advance(seconds=91)
    out = run_command("cull_machines", "--all-tenants")
    assert "alpha: 1 machine marked dead." in out and "beta: 0 machines marked dead." in out
    assert run_command("cull_machines", "--tenant", "alpha") == "alpha: 0 machines marked dead.\n"
    with pytest.raises(CommandError, match="one of the arguments --tenant --all-tenants"):
        run_command("cull_machines")
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        run_command("cull_machines", "--tenant", "nope")


# --- Plans carry the machine rules


def test_plans_api_takes_the_machine_rules(api_client, in_alpha):
    from tests.licensing.factories import make_product, post

    client = api_client("alpha", ["edit_products", "view_products"])
    product = make_product()
    body = {
        "product": product.pk,
        "code": "beating",
        "name": "Beating",
        "max_activations": 2,
        "max_deactivations": 3,
        "heartbeat_seconds": 600,
        "heartbeat_grace_seconds": 60,
        "revive_seconds": 3600,
    }
    created = post(client, "/v1/plans", body)
    assert created.status_code == 201, created.content
    assert {name: created.json()[name] for name in body} == body
    defaults = post(client, "/v1/plans", {"product": product.pk, "code": "plain", "name": "P"})
    assert {
        name: defaults.json()[name]
        for name in ("max_deactivations", "heartbeat_seconds", "heartbeat_grace_seconds")
    } == {"max_deactivations": None, "heartbeat_seconds": None, "heartbeat_grace_seconds": 120}
    nested = client.get(f"/v1/products/{product.pk}").json()["plans"][0]
    assert nested["heartbeat_seconds"] == 600
    for field, value in [
        ("max_deactivations", 0),
        ("heartbeat_seconds", 0),
        ("heartbeat_grace_seconds", -1),
        ("revive_seconds", "soon"),
    ]:
        response = post(client, "/v1/plans", {**body, "code": f"bad-{field}", field: value})
        assert response.status_code == 400 and field in response.json()["details"], field


# --- Answers without a serializer: the same JSON as ActivatedMachineSerializer's


def rendered(body) -> bytes:
    return JSONRenderer().render(body)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata"])
def test_a_machines_answer_is_its_serializers_byte_for_byte(alpha_client, beating, licence, zone):
    activate(
        alpha_client,
        beating.key,
        "hw",
        name="Ada’s laptop",
        platform="linux",
        hostname="ada",
        metadata={"seats": [1, 2], "owner": "Zoë", "nested": {"b": None, "a": True}},
    )
    activate(alpha_client, licence.key, "no-heartbeat")
    machines = list(Machine.objects.select_related("license__plan").order_by("pk"))
    assert len(machines) == 2
    with timezone.override(zone):
        for machine in machines:
            assert rendered(activated_machine_answer(machine, machine.license.plan)) == rendered(
                ActivatedMachineSerializer(machine).data
            )


@pytest.mark.parametrize("action", ["heartbeat", "activate"])
def test_a_live_machines_answer_is_what_the_serializer_says_of_its_row(
    alpha_client, beating, licensing_clock, action
):
    """A heartbeat and an activation that finds its machine active answer a `LiveMachine` read
    without the ORM: the same fields, in the same order, as the serializer of the stored row."""
    first = activate(alpha_client, beating.key, "hw", name="Ada", metadata={"z": 1, "a": ["ü"]})
    licensing_clock.advance(seconds=30.5)
    response = call(alpha_client, action, {"key": beating.key, "fingerprint": "hw"})
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer.pop("tenant"), bool(answer.pop("ts"))) == ("alpha", True)
    machine = Machine.objects.select_related("license__plan").get(fingerprint="hw")
    if action == "heartbeat":
        assert machine.last_heartbeat_at == licensing_clock()
    else:  # answered as it is, not beaten
        assert _iso(machine.last_heartbeat_at) == first.json()["last_heartbeat_at"]
    expected = json.loads(rendered(ActivatedMachineSerializer(machine).data))
    assert list(answer.items()) == list(expected.items())


def test_activating_an_active_machine_again_is_two_statements(alpha_client, licence):
    activate(alpha_client, licence.key, "hw")
    activate(alpha_client, licence.key, "hw")  # warm
    with CaptureQueriesContext(connection) as captured:
        response = activate(alpha_client, licence.key, "hw")
    assert response.status_code == 200
    queries = licensing_queries(captured)
    assert len(queries) == 2, queries
    # The licence locked, then (a statement of its own: it counts what the wait let in) its row,
    # its counts and the machine, answered without the ORM.
    assert queries[0].endswith("FOR UPDATE") and 'FROM "licensing_license" l JOIN' in queries[1]
