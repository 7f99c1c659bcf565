"""The licence limit holds exactly across server processes (CONTRACT section 7).

A real gunicorn server with 4 worker processes serves the test database; concurrent clients fire
N + K requests at a tenant limited to N: exactly N are answered and exactly K refused with 429,
once with the counters in Redis and once in the PostgreSQL-backed counter. The tenant is written
with committed transactions (the server cannot see the test's own transaction) and removed after.
"""

import json
import os
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest

from tests.servers import AppServer, committed_tenant, production_env

# django_db: pytest-django creates the test database only for sessions holding a test that asks
# for it; the test's own transaction stays empty (the server writes with its own connections).
pytestmark = [pytest.mark.live, pytest.mark.django_db]

PORTS = range(8200, 8300)
LIMIT = 30  # N
EXTRA = 12  # K
CLIENTS = 8  # concurrent client threads
WORKERS = 4  # gunicorn worker processes
LIMIT_REACHED = {"error": "Too Many Requests (Reached license limit)"}
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", 6379)) == 0


def server_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    # The load validates unknown keys; the per-address abuse throttle must not step in.
    return production_env(database_url, redis_url, ABUSE_FAILURE_RATE="1000000/d")


@pytest.fixture(scope="module")
def live_tenant(django_db_setup, django_db_blocker):
    """A tenant limited to LIMIT requests a day (one window for the whole test), committed."""
    with committed_tenant(
        django_db_blocker, "ratelive", request_limit=LIMIT, request_period="day"
    ) as (_, domain, database_url):
        yield domain, database_url


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(env, workers=WORKERS) -> AppServer:
        server = AppServer(env, tmp_path / f"server-{len(servers)}.log", PORTS, workers)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def fire(server: AppServer, domain: str, count: int):
    def one(i):
        return server.request(
            "POST", "/v1/licenses/validate", host=domain, body={"key": f"LIVE-{i:06d}"}
        )

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.parametrize("store", ["redis", "postgresql"])
def test_limit_is_exact_across_worker_processes(store, live_tenant, serve):
    if store == "redis" and not redis_reachable():
        pytest.skip("Redis is not reachable on 127.0.0.1:6379 (.ci/run provides one)")
    domain, database_url = live_tenant
    server = serve(server_env(database_url, REDIS_URL if store == "redis" else None))

    answers = fire(server, domain, LIMIT + EXTRA)

    statuses = Counter(status for status, _, _ in answers)
    print(f"\n[{store}] N={LIMIT} K={EXTRA} {WORKERS} workers {CLIENTS} clients: {dict(statuses)}")
    assert statuses == {200: LIMIT, 429: EXTRA}, server.log_path.read_text()[-3000:]
    refused = [(headers, body) for status, headers, body in answers if status == 429]
    assert all(json.loads(body) == LIMIT_REACHED for _, body in refused)
    assert all(int(headers["Retry-After"]) >= 1 for headers, _ in refused)
    # Each accepted request saw its own count: the remaining values are exactly N-1 ... 0.
    remaining = sorted(int(h["X-RateLimit-Remaining"]) for s, h, _ in answers if s == 200)
    assert remaining == list(range(LIMIT))
    # Several processes served the load (gunicorn logs each worker's boot).
    assert server.log_path.read_text().count("Booting worker") == WORKERS


def test_api_keeps_answering_when_redis_is_down(live_tenant, serve):
    domain, database_url = live_tenant
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens once the probe is closed
    server = serve(server_env(database_url, f"redis://127.0.0.1:{closed_port}/0"), workers=1)

    answers = fire(server, domain, 5)

    assert [status for status, _, _ in answers] == [200] * 5
    assert all(headers["X-RateLimit-Limit"] == str(LIMIT) for _, headers, _ in answers)
    log = server.log_path.read_text()
    assert "ERROR tenants.throttling Rate-limit counter store unavailable" in log
    assert "Traceback" not in log.split("counter store unavailable", 1)[0][-2000:]
