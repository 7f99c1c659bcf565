"""`python -m bench.cluster`: the API through HAProxy (two app hosts) beside one app host alone.

Runs against a cluster that `deploy/local-cluster up` brought up (the same environment variables
choose which one). Both measurements use the same app hosts, pgbouncer, database and Redis: one
sends the load to app1's gunicorn directly, the other to HAProxy, which spreads it over app1 and
app2. On one machine the hosts share its cores, so the comparison shows the cost of the extra hop
and that nothing serialises across hosts, not the capacity of two machines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.loadgen import Target, python_client, wrk, wrk_available

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "local-cluster"


def cluster_env() -> dict[str, str]:
    lines = subprocess.run(
        [str(SCRIPT), "env"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def seed(app_env: dict[str, str]) -> dict:
    primary = os.environ.get("PG_PRIMARY_PORT", "25432")
    env = {
        **app_env,
        "PATH": os.environ["PATH"],
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{primary}/licensing",
        "DATABASE_POOLING": "",
    }
    env.pop("DATABASE_REPLICA_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster_seed", "tenant", "bench", "2000000000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def exchange(port: int, tenant: dict) -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request(
        "POST",
        "/v1/auth/token",
        body=json.dumps({"user_token": tenant["secrets"][0]}),
        headers={"Host": tenant["domain"], "Content-Type": "application/json"},
    )
    answer = connection.getresponse()
    body = json.loads(answer.read())
    if answer.status != 200:
        raise SystemExit(f"token exchange failed: {answer.status} {body}")
    return body["access_token"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = parser.parse_args()
    lb_port = int(os.environ.get("LB_PORT", "28080"))
    base = int(os.environ.get("CLUSTER_NET_BASE", "0"))
    app1 = f"10.203.{base + 1}.2"

    namespace = f"{os.environ.get('CLUSTER_NAME', 'lcl')}-app1"
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    if namespace not in namespaces.split():
        raise SystemExit(f"no namespace {namespace}: run deploy/local-cluster up first")
    tenant = seed(cluster_env())
    token = exchange(lb_port, tenant)
    time.sleep(2)  # the replica catches up with the new tenant
    endpoints = {
        "validate (POST)": dict(
            method="POST", path="/v1/licenses/validate", body=json.dumps({"key": tenant["key"]})
        ),
        "product list (GET, replica)": dict(
            method="GET", path="/v1/products", headers={"Authorization": f"Bearer {token}"}
        ),
    }
    where = {
        "one app host (app1 direct)": (app1, 8000),
        "HAProxy, two app hosts": ("127.0.0.1", lb_port),
    }
    use_wrk = args.loadgen == "wrk" or (args.loadgen == "auto" and wrk_available())
    results = {}
    for endpoint, spec in endpoints.items():
        for label, (address, port) in where.items():
            target = Target(port=port, host=tenant["domain"], address=address, **spec)
            run = wrk if use_wrk else python_client
            run(target, args.concurrency, 1.0)  # warm-up: connections, caches
            figures = run(target, args.concurrency, args.duration)
            results[f"{endpoint} / {label}"] = figures
            print(
                f"{endpoint:30} {label:28} {figures['rps']:8.0f} req/s  "
                f"p50 {figures.get('p50_ms', float('nan')):6.1f} ms  "
                f"p99 {figures.get('p99_ms', float('nan')):6.1f} ms  errors {figures['errors']}"
            )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
