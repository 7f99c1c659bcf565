"""Buffered records survive a worker that dies mid-load (tenants/record_buffer.py).

A real gunicorn with several workers answers validations and token exchanges, each from an
address of its own (X-Forwarded-For behind one trusted proxy); one worker is killed while the
load runs. After the server stopped and `manage.py drain_records` ran, every answered request has
exactly one record carrying its address: a validation record, or a token-exchange event.

With Redis and RECORD_PUSH_BEFORE_ANSWER the record is in Redis before the answer leaves, so the
worker is killed with SIGKILL. Otherwise it is stopped with SIGTERM (a restart, a deploy): with
Redis the record's push rides the next round trip of the worker, or its outbox thread's, or its
exit's (tenants.counters.Outbox); without Redis it sits in the worker's memory until its writer
thread or its exit writes it. SIGKILL would lose the last request's record with Redis, up to a
second of them without.
"""

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from licensing.models import LicenseValidation
from monitoring.models import SecurityEvent
from tests.licensing.factories import make_license
from tests.servers import AppServer, committed_tenant, manage, production_env
from tests.tenants.test_ratelimit_live import REDIS_URL, redis_reachable
from tokens.services import create_user_token

pytestmark = [pytest.mark.live, pytest.mark.django_db]

PORTS = range(8500, 8600)
REQUESTS = 120
CLIENTS = 6
WORKERS = 3


@pytest.fixture(scope="module")
def tenant(django_db_setup, django_db_blocker):
    """A committed tenant with a licence and a User Token: (schema, domain, url, key, secret)."""
    with committed_tenant(django_db_blocker, "bufferlive", request_limit=10**9) as (
        schema,
        domain,
        database_url,
    ):
        with django_db_blocker.unblock(), schema_context(schema):
            from django.contrib.auth import get_user_model

            owner = get_user_model().objects.create_user("buffer-owner")
            _, secret = create_user_token(owner=owner, name="load", permissions=[])
            key = make_license().key
        yield schema, domain, database_url, key, secret


def address(store: str, i: int) -> str:
    """The client address of request `i` (each run of the test has its own range)."""
    second = {"redis-before-answer": 76, "redis": 77, "in-process": 78}[store]
    return f"10.{second}.{i // 250}.{i % 250 + 1}"


def worker_pids(server: AppServer) -> list[int]:
    return [
        int(p) for p in re.findall(r"Booting worker with pid: (\d+)", server.log_path.read_text())
    ]


@pytest.mark.parametrize("store", ["redis-before-answer", "redis", "in-process"])
def test_every_answered_request_has_exactly_one_record(store, tenant, tmp_path):
    if store.startswith("redis") and not redis_reachable():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379 (.ci/run provides one)")
    schema, domain, database_url, key, secret = tenant
    env = production_env(
        database_url,
        REDIS_URL if store.startswith("redis") else None,
        TRUSTED_PROXY_COUNT="1",
        RECORD_PUSH_BEFORE_ANSWER=str(store == "redis-before-answer"),
        ABUSE_FAILURE_RATE="1000000/d",
        # The token was made in this process: the server must hash secrets with the same key.
        USER_TOKEN_HASH_KEY=settings.USER_TOKEN_HASH_KEY,
        USER_TOKEN_HASH_KEY_ID=settings.USER_TOKEN_HASH_KEY_ID,
    )
    server = AppServer(env, tmp_path / "server.log", PORTS, WORKERS).start()
    answered: dict[int, int] = {}

    def one(i: int):
        path, body = (
            ("/v1/licenses/validate", {"key": key})
            if i % 2
            else ("/v1/auth/token", {"user_token": secret})
        )
        try:
            status, _, _ = server.request(
                "POST", path, host=domain, body=body, headers={"X-Forwarded-For": address(store, i)}
            )
        except OSError:  # the request the killed worker was serving: never answered
            return
        answered[i] = status

    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            for i in range(REQUESTS):
                pool.submit(one, i)
                if i == REQUESTS // 3:
                    time.sleep(0.3)  # the load is running in every worker now
                    victim = worker_pids(server)[0]
                    os.kill(
                        victim, signal.SIGKILL if store == "redis-before-answer" else signal.SIGTERM
                    )
        deadline = time.monotonic() + 20  # the master replaces the killed worker (bounded wait)
        while len(worker_pids(server)) < WORKERS + 1 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    manage(env, "drain_records", "--tenant", schema)

    assert set(answered.values()) == {200}, answered
    assert len(answered) >= REQUESTS - CLIENTS  # at most the killed worker's requests are lost
    with schema_context(schema):
        validated = list(LicenseValidation.objects.values_list("client_address", flat=True))
        exchanged = list(
            SecurityEvent.objects.filter(kind=SecurityEvent.Kind.TOKEN_EXCHANGED).values_list(
                "address", flat=True
            )
        )
    ours = [a for a in validated + exchanged if a.startswith(address(store, 0)[:6])]
    for i in answered:
        records = validated if i % 2 else exchanged
        assert records.count(address(store, i)) == 1, (i, address(store, i))
    assert len(ours) <= REQUESTS
    assert len(worker_pids(server)) == WORKERS + 1  # the killed worker was replaced
