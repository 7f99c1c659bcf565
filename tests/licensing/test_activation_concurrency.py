"""The activation limit is exact under concurrency: activations race over real HTTP, each request
in its own server thread with its own database connection, and the licence row lock serialises
them (a check without the lock lets several pass at once)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django_tenants.utils import schema_context

from licensing.models import Machine

pytestmark = pytest.mark.live

RACERS = 20
LIMIT = 3


def race(server, path, bodies):
    """POST every body at once (released together by a barrier); the (status, json) answers."""
    start = threading.Barrier(len(bodies))

    def post(body):
        start.wait()
        response = server.request("POST", path, json=body)
        return response.status, response.json()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_twenty_concurrent_activations_at_a_limit_of_three(
    live_tenant_server, committed_licence, django_db_blocker
):
    licence = committed_licence(max_activations=LIMIT)
    bodies = [{"key": licence.key, "fingerprint": f"racer-{n}"} for n in range(RACERS)]
    answers = race(live_tenant_server, "/v1/licenses/activate", bodies)
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] * LIMIT + [409] * (RACERS - LIMIT), answers
    assert all(
        body == {"error": "Activation limit reached"} for status, body in answers if status == 409
    )
    winners = {body["fingerprint"] for status, body in answers if status == 201}
    with django_db_blocker.unblock(), schema_context(live_tenant_server.tenant.schema_name):
        stored = set(Machine.objects.filter(license=licence).values_list("fingerprint", flat=True))
    assert stored == winners and len(stored) == LIMIT


def test_concurrent_activations_of_one_fingerprint_make_one_machine(
    live_tenant_server, committed_licence, django_db_blocker
):
    licence = committed_licence(max_activations=LIMIT)
    body = {"key": licence.key, "fingerprint": "same-machine"}
    answers = race(live_tenant_server, "/v1/licenses/activate", [body] * 8)
    assert sorted(status for status, _ in answers) == [200] * 7 + [201]
    assert len({answer["id"] for _, answer in answers}) == 1
    with django_db_blocker.unblock(), schema_context(live_tenant_server.tenant.schema_name):
        assert Machine.objects.filter(license=licence).count() == 1
