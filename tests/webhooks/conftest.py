"""A real HTTP receiver on 127.0.0.1 and real procrastinate workers against the test database.

The workers are `manage.py procrastinate worker` subprocesses with production settings; they see
only COMMITTED rows, so the tests that use them write through `committed()` (outside any test
transaction) and remove what they wrote afterwards.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tests.servers import AppProcess, production_env, test_database_url

# Worker settings for tests: quick heartbeats (a killed worker is noticed in ~3 s) and retries
# that start after about a second instead of a minute.
WORKER_ENV = {
    "WEBHOOK_ALLOW_LOOPBACK": "on",
    "WEBHOOK_RETRY_BASE_SECONDS": "1",
    "WORKER_HEARTBEAT_SECONDS": "1",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every POST; answers from `script[path]` (a list of statuses, then 200), or hangs
    for `hang_seconds` on the paths in `hang`."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    hang: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.on(path))} of {count} deliveries in {timeout}s")


def _handler(receiver: Receiver):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), body, time.time())
                )
                statuses = receiver.script.get(self.path) or []
                status = statuses.pop(0) if statuses else 200
                hang = receiver.hang.pop(self.path, 0)
            if hang:
                time.sleep(hang)
            self.send_response(status)
            answer = b"x" * 3000 if self.path.endswith("/long") else b'{"ok":true}'
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def run_receiver(port: int = 0):
    receiver = Receiver()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def receiver():
    with run_receiver() as running:
        yield running


class Worker(AppProcess):
    """`manage.py procrastinate worker` in a subprocess against the test database."""

    name = "worker"
    start_timeout = 60.0
    poll_seconds = 0.1

    def __init__(self, log_path: Path, **env: str):
        super().__init__(production_env(test_database_url(), **WORKER_ENV, **env), log_path)

    def command(self) -> list[str]:
        return [sys.executable, "manage.py", "procrastinate", "worker", "--concurrency", "4"]

    def ready(self) -> bool:
        return "Starting worker" in self.log_path.read_text()

    def kill(self) -> None:
        """As a crash would: no chance to finish or release its jobs."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_worker(tmp_path, django_db_blocker):
    """start_worker(**env) -> a running Worker; every one is stopped after the test."""
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(tmp_path / f"worker-{len(started)}.log", **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@contextlib.contextmanager
def committed(schema: str = "alpha"):
    """Write in `schema` outside the test's transaction, so a worker sees the rows."""
    with schema_context(schema):
        yield
    connection.set_schema_to_public()


@pytest.fixture
def committed_world(django_db_setup, django_db_blocker, settings):
    """Database access outside any test transaction for the test's whole life; every webhook
    endpoint, event, licence, plan and product it leaves in alpha, and every queue job, is
    deleted afterwards."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    with django_db_blocker.unblock():
        # Jobs and endpoints that other tests' live servers committed (e.g. in the fuzzed
        # tenant) must not be used by these workers: they could name any URL.
        clear_queue()
        remove_every_endpoint()
        with committed():
            from licensing.models import License, Plan, Product

            before = {
                model: set(model.objects.values_list("pk", flat=True))
                for model in (License, Plan, Product)
            }
        yield
        with committed():
            from webhooks.models import WebhookEndpoint, WebhookEvent

            WebhookEndpoint.objects.all().delete()
            WebhookEvent.objects.all().delete()
            for model in (License, Plan, Product):
                model.objects.exclude(pk__in=before[model]).delete()
        clear_queue()


def remove_every_endpoint() -> None:
    from tenants.tasks import tenant_schemas
    from webhooks.models import WebhookEndpoint

    for schema in tenant_schemas():
        with committed(schema):
            WebhookEndpoint.objects.all().delete()


def clear_queue() -> None:
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_periodic_defers")
        cursor.execute("DELETE FROM procrastinate_jobs")
        cursor.execute("DELETE FROM procrastinate_workers")
