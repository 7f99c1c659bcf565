"""The local cluster of deploy/local-cluster, brought up once for the cluster tests.

HAProxy on the loopback, two app hosts (gunicorn, DATABASE_POOLING=transaction,
TRUSTED_PROXY_COUNT=1) each in its own network namespace, pgbouncer in transaction mode with a
pool of 2 server sessions, a PostgreSQL primary and a streaming replica that applies changes
REPLICA_DELAY late (so a read served by it is visibly stale), Redis. Its own ports, namespaces,
addresses and folder, so a developer's cluster (the defaults) may run beside it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local-cluster"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
REPLICA_DELAY = 2  # seconds
ABUSE_RATE = 5  # failed attempts per minute and address
TOPOLOGY = {
    "CLUSTER_DIR": f"/tmp/licensing-cluster-test-{os.getpid()}",
    "CLUSTER_NAME": "lclt",
    "CLUSTER_NET_BASE": "10",
    "PG_PRIMARY_PORT": "35432",
    "PG_REPLICA_PORT": "35433",
    "PGBOUNCER_PORT": "36432",
    "PGBOUNCER_POOL_SIZE": "2",
    "REDIS_PORT": "36379",
    "LB_PORT": "38080",
    "STATS_PORT": "38081",
    "APP_WORKERS": "2",
    "CLUSTER_REPLICA_DELAY": f"{REPLICA_DELAY}s",
    "PYTHON": sys.executable,
}


def missing_parts() -> list[str]:
    missing = [
        name for name in ("haproxy", "pgbouncer", "redis-server", "ip") if not shutil.which(name)
    ]
    if not (PG_BIN / "pg_ctl").exists():
        missing.append(f"PostgreSQL 15 server ({PG_BIN})")
    if os.geteuid() != 0:
        missing.append("root (for ip netns)")
    elif subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        missing.append("network namespaces (ip netns)")
    return missing


@dataclass
class Cluster:
    env: dict[str, str]
    app_env: dict[str, str]

    @property
    def lb_port(self) -> int:
        return int(self.env["LB_PORT"])

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args], env=self.env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, f"local-cluster {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def seed(self, *args: str) -> dict:
        """bench.cluster_seed against the primary itself (not through pgbouncer)."""
        env = {
            **self.app_env,
            "PATH": os.environ["PATH"],
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{self.env['PG_PRIMARY_PORT']}/licensing",
            "DATABASE_POOLING": "",
        }
        env.pop("DATABASE_REPLICA_URL", None)
        done = subprocess.run(
            [sys.executable, "-m", "bench.cluster_seed", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def request(
        self, method, path, *, host, body=None, token=None, source="127.0.0.1", headers=None
    ):
        """(status, headers, parsed JSON or None) of one request through HAProxy, sent from
        `source` (any 127.x address: the client address HAProxy sees)."""
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.lb_port, timeout=30, source_address=(source, 0)
        )
        all_headers = {"Host": host, **(headers or {})}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return response.status, response.headers, parsed

    def access_token(self, tenant: dict, index: int = 0) -> str:
        status, _, body = self.request(
            "POST",
            "/v1/auth/token",
            host=tenant["domain"],
            body={"user_token": tenant["secrets"][index]},
        )
        assert status == 200, body
        return body["access_token"]

    def served_by_host(self) -> dict[str, int]:
        """Requests HAProxy has sent to each app host so far (its stats, `stot`)."""
        connection = http.client.HTTPConnection("127.0.0.1", int(self.env["STATS_PORT"]), timeout=5)
        connection.request("GET", "/stats;csv")
        lines = connection.getresponse().read().decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            r["svname"]: int(r["stot"] or 0)
            for r in rows
            if r["pxname"] == "app" and r["svname"].startswith("app")
        }

    def wait_until_both_hosts_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection(
                "127.0.0.1", int(self.env["STATS_PORT"]), timeout=5
            )
            connection.request("GET", "/stats;csv")
            lines = connection.getresponse().read().decode().splitlines()
            states = [line.split(",")[17] for line in lines if line.startswith("app,app")]
            if states and all(state == "UP" for state in states):
                return
            time.sleep(0.3)
        raise AssertionError(f"app hosts not both up: {lines}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    missing = missing_parts()
    if missing:
        pytest.skip(f"the local cluster needs {', '.join(missing)} (.ci/run installs them)")
    extra = tmp_path_factory.mktemp("cluster") / "app.env"
    # Low enough for the abuse test to reach in a few requests; nothing else fails validations.
    extra.write_text(f"ABUSE_FAILURE_RATE={ABUSE_RATE}/m\n")
    env = {**os.environ, **TOPOLOGY, "CLUSTER_APP_ENV": str(extra)}
    subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=120)
    started = subprocess.run(
        [str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=300
    )
    if started.returncode != 0:
        pytest.fail(f"deploy/local-cluster up failed:\n{started.stdout}{started.stderr}")
    try:
        lines = subprocess.run(
            [str(SCRIPT), "env"], env=env, capture_output=True, text=True, check=True
        ).stdout.splitlines()
        app_env = dict(line.split("=", 1) for line in lines if "=" in line)
        found = Cluster(env=env, app_env=app_env)
        found.wait_until_both_hosts_up()
        yield found
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, timeout=120)
