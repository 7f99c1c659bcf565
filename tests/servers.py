"""The app served by a real gunicorn in a subprocess, for tests that need real server processes
(exactness across workers, the database going away, production settings).

Each test module passes its own port range so suites never collide.
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
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Self
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port(ports: range) -> int:
    for port in ports:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def production_env(database_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """DEBUG off, fresh keys, plain HTTP (tests do not terminate TLS); Redis only when given."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DEBUG", "TEST_DATABASE_NAME")
    }
    env.update(
        DATABASE_URL=database_url,
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(50),
        USER_TOKEN_HASH_KEY=secrets.token_urlsafe(50),
        # The test database's signing keys were encrypted under this process's key.
        SIGNING_KEY_ENCRYPTION_KEY=settings.SIGNING_KEY_ENCRYPTION_KEY,
        SECURE_SSL_REDIRECT="off",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


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


@contextmanager
def committed_tenant(django_db_blocker, prefix: str, **fields) -> Iterator[tuple[str, str, str]]:
    """A tenant provisioned with committed transactions (live servers see it), under a schema
    name no earlier run used (so its Redis keys are new too): (schema, domain, DATABASE_URL of
    the test database). Removed with its schema afterwards."""
    from tenants.models import Tenant
    from tenants.services import AdminAccount, provision_tenant

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    domain = f"{schema.replace('_', '-')}.localhost"
    with django_db_blocker.unblock():
        provision_tenant(
            schema_name=schema,
            name=f"Live test {prefix}",
            domain=domain,
            admin=AdminAccount(f"{schema}-admin", f"admin@{domain}", "Live-test-password-2026!"),
            **fields,
        )
        connection.set_schema_to_public()
        database_url = test_database_url()
    try:
        yield schema, domain, database_url
    finally:
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            Tenant.objects.get(schema_name=schema).delete(force_drop=True)
            connection.set_schema_to_public()


def manage(env: dict[str, str], *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class AppProcess:
    """A process of the app (a `command()` run from the project root with `env`, its output in
    `log_path`), started until `ready()` and stopped the same way whatever it runs."""

    name = "process"
    start_timeout = 90.0  # seconds
    poll_seconds = 0.2

    def __init__(self, env: dict[str, str], log_path: Path):
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()}")
            if self.ready():
                return self
            time.sleep(self.poll_seconds)
        raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class AppServer(AppProcess):
    """gunicorn serving config.wsgi on 127.0.0.1; `request()` speaks to it by host name.

    `bind_host` is the listening address: e.g. `[::ffff:127.0.0.1]`, an IPv6 socket that IPv4
    clients reach, so the app sees them as IPv4-mapped addresses (REMOTE_ADDR `::ffff:127.0.0.1`).
    """

    name = "server"

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        ports: range,
        workers: int = 1,
        bind_host: str = "127.0.0.1",
    ):
        super().__init__(env, log_path)
        self.workers, self.bind_host = workers, bind_host
        self.port = free_port(ports)

    def command(self) -> list[str]:
        return (
            [sys.executable, "-m", "gunicorn", "config.wsgi:application"]
            + ["--bind", f"{self.bind_host}:{self.port}", "--workers", str(self.workers)]
            + ["--timeout", "60"]
        )

    def ready(self) -> bool:
        try:
            self.request("GET", "/v1/", host="localhost")  # the public domain: never counted
        except OSError:
            return False
        return True

    def request(self, method, path, *, host, body=None, headers=None):
        """(status, headers (an http.client.HTTPMessage), raw body) of one request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            all_headers = {"Host": host, **(headers or {})}
            if isinstance(body, dict):
                all_headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()
