"""The licence limit holds exactly across server processes (CONTRACT section 7).

A real gunicorn server with 4 worker processes serves the test database; concurrent clients fire
N + K requests at a tenant limited to N: exactly N are answered and exactly K refused with 429,
once with the counters in Redis and once in the PostgreSQL-backed counter. The tenant is written
with committed transactions (the server cannot see the test's own transaction) and removed after.
"""

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from tenants.models import Tenant
from tenants.services import AdminAccount, provision_tenant

# django_db: pytest-django creates the test database only for sessions holding a test that asks
# for it; the test's own transaction stays empty (the server writes with its own connections).
pytestmark = [pytest.mark.live, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    for port in PORTS:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def test_database_url() -> str:
    """A DATABASE_URL for the test database, for the embedded server and a system one alike."""
    params = connection.get_connection_params()
    test_name = settings.DATABASES["default"]["TEST"].get("NAME") or ""
    assert params["dbname"] in (test_name, f"test_{test_name}") or params["dbname"].startswith(
        "test_"
    ), f"refusing to serve a database that is not the test database: {params['dbname']}"
    user = quote(params.get("user") or "", safe="")
    password = quote(params.get("password") or "", safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@"
    query = [f"host={quote(str(params['host']), safe='')}"] if params.get("host") else []
    if params.get("port"):
        query.append(f"port={params['port']}")
    return f"postgres://{credentials}/{quote(params['dbname'], safe='')}?{'&'.join(query)}"


test_database_url.__test__ = False  # a helper, not a test


def server_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEST_DATABASE_NAME")}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(40),
        JWT_SIGNING_KEY=secrets.token_urlsafe(40),
        USER_TOKEN_HASH_KEY=secrets.token_urlsafe(40),
        SECURE_SSL_REDIRECT="off",
        # The load validates unknown keys; the per-address abuse throttle must not step in.
        ABUSE_FAILURE_RATE="1000000/d",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


class Server:
    def __init__(self, env: dict[str, str], log_path: Path, workers: int):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
            + ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--timeout", "60"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                self.request("GET", "/v1/", host="localhost")  # the public domain: never counted
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def request(self, method: str, path: str, host: str, body: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Host": host}
            payload = None
            if body is not None:
                payload = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def live_tenant(django_db_setup, django_db_blocker):
    """A tenant limited to LIMIT requests a day, committed, with a name no earlier run used (its
    counters are new in Redis too); removed with its schema afterwards."""
    schema = f"ratelive_{uuid.uuid4().hex[:8]}"
    domain = f"{schema.replace('_', '-')}.localhost"
    with django_db_blocker.unblock():
        provision_tenant(
            schema_name=schema,
            name="Rate limit live test",
            domain=domain,
            admin=AdminAccount(f"{schema}-admin", f"admin@{domain}", "Live-test-password-2026!"),
            request_limit=LIMIT,
            request_period="day",  # one window for the whole test
        )
        connection.set_schema_to_public()
        database_url = test_database_url()
    yield domain, database_url
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        Tenant.objects.get(schema_name=schema).delete(force_drop=True)
        connection.set_schema_to_public()


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(env, workers=WORKERS) -> Server:
        server = Server(env, tmp_path / f"server-{len(servers)}.log", workers)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


def fire(server: Server, domain: str, count: int):
    def one(i):
        return server.request("POST", "/v1/licenses/validate", domain, {"key": f"LIVE-{i:06d}"})

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
