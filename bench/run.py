"""`python -m bench`: prepare the data, start a production server, drive it, print one table.

Method (docs/performance.md has the details and the latest figures):

1. a PostgreSQL database (DATABASE_URL, else a database of its own on the embedded server) with
   a tenant `bench` holding --licences licences and a User Token with view_licenses;
2. each production server available (gunicorn sync, gunicorn gthread, granian) with one worker per
   core is measured on the reference, validation and a single-licence read; the deployment's
   server (gunicorn sync, --full-run-server) then serves the full run;
3. a separate load-generator process (wrk, else bench/loadgen.py) drives each endpoint for
   --duration seconds at --concurrency connections, after a warm-up;
4. for each endpoint: requests/s, p50/p99 latency, the ratio to the reference's requests/s (the
   reference measured again for half the duration right before each endpoint), SQL
   queries per warm request (counted in-process with Django's test client), the workers' CPU and
   the whole machine's per request (bench/cpu.py), and the workers' peak memory; validation's
   latency is measured again at half its maximum load (open loop);
5. with --tenants N: N tenants, the time to provision one more, `migrate_schemas` with nothing to
   do, and the size of one empty tenant schema.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import cpu, instructions, loadgen
from bench import env as bench_env
from bench.servers import SERVERS, TIMED_APP, Server, available, worker_times

ROOT = bench_env.ROOT

# The deployment's server (README). The comparison showed no server ahead on the API's own
# endpoints, whose cost is Django's (docs/performance.md); gunicorn sync is the simplest.
PRODUCTION_SERVER = "gunicorn-sync"

GOALS = {"validate": 0.5, "licence": 0.4, "list-first": 0.2, "list-deep": 0.2}
HALF_LOAD_P99_GOAL_MS = 10.0


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kib = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def endpoints(fixture) -> list[tuple[str, loadgen.Target]]:
    from bench.prepare import HOST, PUBLIC_HOST

    bearer = {"Authorization": f"Bearer {fixture.access_token}"}
    return [
        ("reference", loadgen.Target(0, "/bench/reference", PUBLIC_HOST)),
        (
            "validate",
            loadgen.Target(
                0, "/v1/licenses/validate", HOST, "POST", json.dumps({"key": fixture.valid_key})
            ),
        ),
        (
            "token",
            loadgen.Target(
                0, "/v1/auth/token", HOST, "POST", json.dumps({"user_token": fixture.secret})
            ),
        ),
        ("heartbeat", machine_target("/v1/licenses/heartbeat", fixture)),
        ("activate", machine_target("/v1/licenses/activate", fixture)),
        ("me", loadgen.Target(0, "/v1/auth/me", HOST, headers=bearer)),
        ("licence", loadgen.Target(0, f"/v1/licenses/{fixture.licence_id}", HOST, headers=bearer)),
        ("list-first", loadgen.Target(0, "/v1/licenses?status=active", HOST, headers=bearer)),
        ("list-deep", loadgen.Target(0, fixture.deep_cursor_url, HOST, headers=bearer)),
    ]


def machine_target(path: str, fixture) -> loadgen.Target:
    """A request about the fixture's activated machine: every one beats (or finds active) the
    same row, as one machine's client would."""
    from bench.prepare import HOST

    body = {"key": fixture.valid_key, "fingerprint": fixture.fingerprint}
    return loadgen.Target(0, path, HOST, "POST", json.dumps(body))


LABELS = {
    "reference": "GET /bench/reference (reference)",
    "validate": "POST /v1/licenses/validate",
    "token": "POST /v1/auth/token",
    "heartbeat": "POST /v1/licenses/heartbeat",
    "activate": "  activate, already active",
    "me": "GET /v1/auth/me",
    "licence": "GET /v1/licenses/{id}",
    "list-first": "GET /v1/licenses?status=active",
    "list-deep": "  same, page 90% deep",
}


def check_answer(name: str, body: dict) -> None:
    """Each endpoint answers what it should, or the figures would measure an error path."""
    problems = {
        "reference": body.get("ok") is not True,
        "validate": body.get("valid") is not True,
        "token": not body.get("access_token"),
        "heartbeat": body.get("status") != "active",
        "activate": body.get("status") != "active",
        "me": not body.get("permissions"),
        "licence": not body.get("key"),
        "list-first": len(body.get("results", [])) < 2 or not body.get("next"),
        "list-deep": len(body.get("results", [])) < 2 or not body.get("previous"),
    }
    if problems.get(name):
        raise SystemExit(f"{name}: unexpected answer {str(body)[:300]}")


def count_queries(targets) -> tuple[dict[str, int], dict[str, int]]:
    """SQL statements and Redis round trips of one warm request of each endpoint, run in this
    process (a round trip: one packet redis-py sends)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from redis.connection import AbstractConnection

    sent = []
    send = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(1)
        return send(self, command, check_health)

    queries, round_trips = {}, {}
    for name, target in targets:
        call = in_process_call(target)

        for _ in range(3):  # warm: connection, tenant cache, content types, the Lua script
            response = call()
        if response.status_code != 200:
            raise SystemExit(f"{name}: {response.status_code} {response.content[:300]!r}")
        check_answer(name, response.json())
        sent.clear()
        AbstractConnection.send_packed_command = counting
        try:
            with CaptureQueriesContext(connection) as captured:
                call()
        finally:
            AbstractConnection.send_packed_command = send
        queries[name] = len(captured.captured_queries)
        round_trips[name] = len(sent)
    return queries, round_trips


def in_process_call(target):
    """A function making `target`'s request through Django's test client, in this process."""
    from django.test import Client

    client = Client(HTTP_HOST=target.host)
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in target.headers.items()}
    if target.method == "POST":
        return lambda: client.post(
            target.path, target.body, content_type="application/json", **extra
        )
    return lambda: client.get(target.path, **extra)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def drive(target, port, concurrency, duration, tool, rate=None, clients=1) -> dict:
    target.port = port
    if rate is None and tool == "wrk":
        return loadgen.wrk(target, concurrency, duration)
    return loadgen.python_client(target, concurrency, duration, rate, clients)


def measure_server(name, environment, args, targets, only=None) -> dict:
    server = Server(name, args.port, args.workers)
    server.start(environment, bench_env.RESULTS / f"server-{name}.log")
    results = {}
    reference = dict(targets)["reference"]
    try:
        for endpoint, target in targets:
            if only and endpoint not in only:
                continue
            if endpoint != "reference":
                # The reference again, right before: this VM's speed drifts within a run, so each
                # ratio is taken against the reference measured next to it.
                paired = measured(server, reference, args, args.duration / 2)
            drive(target, args.port, args.concurrency, args.warmup, args.tool)  # warm-up
            figures = measured(server, target, args, args.duration)
            if endpoint != "reference":
                figures["paired_reference_rps"] = paired["rps"]
                figures["paired_reference_cpu_ms"] = paired["cpu_ms_per_request"]
                figures["paired_reference_machine_cpu_ms"] = paired["machine_cpu_ms"]
            if figures["errors"]:
                raise SystemExit(f"{name} {endpoint}: {figures['errors']} failed requests")
            results[endpoint] = figures
            print(
                f"  {name:17} {endpoint:11} {figures['rps']:8.0f} req/s  "
                f"p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms  "
                f"CPU {figures['cpu_ms_per_request']:.2f} ms/request",
                file=sys.stderr,
            )
        results["peak_worker_memory_mib"] = server.peak_worker_memory_mib()
    finally:
        server.stop()
    if only is None and not args.skip_half_load:
        results["validate-half-load"] = half_load(name, environment, args, targets)
    return results


def measured(server, target, args, duration: float) -> dict:
    """`target` driven for `duration` seconds, with the CPU per request the whole machine spent
    meanwhile, by group (bench/cpu.py: what the throughput follows on shared cores), and the
    workers' share of it: the server's own cost, whatever else shares the machine."""
    before = cpu.Snapshot.take()
    figures = drive(target, args.port, args.concurrency, duration, args.tool)
    figures["machine_cpu_ms"] = cpu.per_request(
        before, cpu.Snapshot.take(), server, figures["requests"]
    )
    figures["cpu_ms_per_request"] = figures["machine_cpu_ms"]["workers"]
    return figures


def half_load(name, environment, args, targets) -> dict:
    """Validation at half its maximum (open loop, the Python client) on a server of its own whose
    workers write down each request's time (bench.timed_wsgi): the latency the client saw, and the
    part of it the worker spent on the request. The maximum is measured again right before, on
    that server: this VM's speed drifts within a run."""
    target = dict(targets)["validate"]
    with tempfile.TemporaryDirectory() as timings:
        server = Server(name, args.port, args.workers, app=TIMED_APP)
        server.start({**environment, "BENCH_TIMINGS": timings}, bench_env.RESULTS / "half-load.log")
        try:
            drive(target, args.port, args.concurrency, args.warmup, args.tool)  # warm-up
            maximum = drive(target, args.port, args.concurrency, args.duration / 2, args.tool)
            rate = maximum["rps"] / 2
            start = time.time()
            half = drive(
                target, args.port, args.concurrency, args.duration, "python", rate, args.clients
            )
            half |= worker_times(timings, start, time.time())
        finally:
            server.stop()
    print(
        f"  {name:17} validate at {rate:.0f} req/s (half load): "
        f"p50 {half['p50_ms']:.1f} ms  p99 {half['p99_ms']:.1f} ms; sent "
        f"{half['sent_rate']:.0f} req/s, client lag p99 {half['client_lag_p99_ms']:.1f} ms; "
        f"in the workers p99 {half.get('worker_p99_ms', 0):.1f} ms"
        + (" (CLIENT-LIMITED: not the server's figure)" if half["client_limited"] else ""),
        file=sys.stderr,
    )
    return half


def ratio_to_reference(figures: dict, reference_rps: float) -> float:
    """An endpoint's requests/s over the reference's measured right before it (else the run's)."""
    return figures["rps"] / figures.get("paired_reference_rps", reference_rps)


def machine_cpu_lines(endpoints: dict) -> list[str]:
    """Validation's CPU per request across the machine by group, beside its paired reference's:
    on shared cores the throughput ratio follows the `all` ratio (bench/cpu.py)."""
    validate = endpoints.get("validate", {})
    mine, reference = (
        validate.get("machine_cpu_ms"),
        validate.get("paired_reference_machine_cpu_ms"),
    )
    if not mine or not reference:
        return []
    parts = ", ".join(f"{group} {mine[group]:.2f}/{reference[group]:.2f}" for group in cpu.GROUPS)
    return [
        f"  (CPU ms per request across the machine, validate/reference: {parts}; "
        f"all {mine['all']:.2f}/{reference['all']:.2f}, ratio {reference['all'] / mine['all']:.2f})"
    ]


def table(report: dict) -> str:
    run = report["run"]
    reference = run["endpoints"]["reference"]["rps"]
    lines = [
        f"Server {report['server']} ({report['workers']} workers), load: {report['tool']}, "
        f"{report['concurrency']} connections, {report['duration']} s per endpoint; "
        f"{report['licences']:,} licences",
        f"Machine: {report['machine']['nproc']} cores, {report['machine']['cpu']}, "
        f"{report['machine']['memory_gib']} GiB",
        "",
        f"{'endpoint':34} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'ref/s':>6} {'ratio':>6} "
        f"{'goal':>5} {'queries':>7} {'redis':>5} {'CPU ms':>6} {'all ms':>6} {'instr.':>7}",
    ]
    instructions = report.get("instructions") or {}
    for name, label in LABELS.items():
        figures = run["endpoints"][name]
        paired = figures.get("paired_reference_rps", reference)
        ratio = ratio_to_reference(figures, reference)
        goal = GOALS.get(name)
        lines.append(
            f"{label:34} {figures['rps']:8.0f} {figures['p50_ms']:7.1f} {figures['p99_ms']:7.1f} "
            f"{paired:6.0f} {ratio:6.2f} {('≥' + str(goal)) if goal else '':>5} "
            f"{report['queries'][name]:7d} "
            f"{report['redis_round_trips'].get(name, 0):5d} "
            f"{figures.get('cpu_ms_per_request', 0):6.2f} "
            f"{figures.get('machine_cpu_ms', {}).get('all', 0):6.2f} "
            f"{_millions(instructions.get(name)):>7}"
        )
    lines += machine_cpu_lines(run["endpoints"])
    half = run.get("validate-half-load")
    if half:
        lines.append(
            f"{'validate at half load (open loop)':34} {half['rps']:8.0f} {half['p50_ms']:7.1f} "
            f"{half['p99_ms']:7.1f} {'':>6} {'':>6} {f'<{HALF_LOAD_P99_GOAL_MS:.0f}ms':>5}"
        )
        if "client_lag_p99_ms" in half:
            verdict = (
                "CLIENT-LIMITED, the p99 is not the server's"
                if half["client_limited"]
                else "the client kept the schedule"
            )
            lines.append(
                f"  (scheduled {half['target_rate']:.0f} req/s by {half.get('clients', 1)} "
                f"client(s), sent {half['sent_rate']:.0f}; client lag p99 "
                f"{half['client_lag_p99_ms']:.1f} ms: {verdict})"
            )
        if "worker_p99_ms" in half:
            lines.append(
                f"  (in the workers, from taking a request to its answer: p50 "
                f"{half['worker_p50_ms']:.1f} ms, p99 {half['worker_p99_ms']:.1f} ms, max "
                f"{half['worker_max_ms']:.1f} ms over {half['worker_requests']} requests)"
            )
    memory = run.get("peak_worker_memory_mib")
    if memory:
        lines.append(f"Peak memory per worker: {memory:.0f} MiB")
    if report.get("servers"):
        lines += [
            "",
            f"{'server comparison (req/s)':34} {'reference':>10} {'validate':>10} {'licence':>10}",
        ]
        for name, figures in report["servers"].items():
            lines.append(
                f"{name:34} {figures['reference']['rps']:10.0f} "
                f"{figures['validate']['rps']:10.0f} {figures['licence']['rps']:10.0f}"
            )
    if report.get("tenants"):
        t = report["tenants"]
        lines += [
            "",
            f"Many tenants ({t['count']:,} present):",
            f"  provision one more (provision_tenant)   {t['provision_seconds']:.2f} s   (goal < 1 s)",
            f"    (of which the admin's password hash:  {t['of_which_password_hash_seconds']:.2f} s; "
            f"first in a new process: {t['provision_first_in_process_seconds']:.2f} s)",
            f"  migrate_schemas, nothing to do          {t['migrate_seconds']:.1f} s   (goal < 60 s)",
            f"    (a migrate run per schema instead:    {t['plain_migrate_seconds_estimate']:.0f} s, "
            f"{t['plain_migrate_seconds_per_schema'] * 1000:.0f} ms per schema)",
            f"  one empty tenant schema                 {t['schema_kib']:.0f} KiB "
            f"({t['schema_tables']} tables)",
        ]
    return "\n".join(lines)


def _millions(count: float | None) -> str:
    return f"{count / 1e6:.1f}M" if count else ""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds and small data (CI)")
    parser.add_argument("--licences", type=int, default=None, help="default 1,000,000")
    parser.add_argument("--tenants", type=int, default=None, help="many-tenants mode: N tenants")
    parser.add_argument("--duration", type=float, default=None, help="seconds per endpoint")
    parser.add_argument("--warmup", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("BENCH_PORT", 0)) or free_port(),
        help="port of the servers under test (default: a free one, so no other server is measured)",
    )
    parser.add_argument(
        "--server", choices=sorted(SERVERS), default=None, help="skip the comparison"
    )
    parser.add_argument(
        "--full-run-server",
        choices=sorted(SERVERS),
        default=PRODUCTION_SERVER,
        help="the server of the full run after the comparison (default: the deployment's)",
    )
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--skip-half-load", action="store_true")
    parser.add_argument(
        "--clients",
        type=int,
        default=2,
        help="open-loop client processes sharing the half-load schedule (default 2)",
    )
    parser.add_argument("--no-http", action="store_true", help="only the many-tenants mode")
    parser.add_argument(
        "--callgrind",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="instructions per request under valgrind (default: when installed, not --smoke)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.licences = args.licences or (2_000 if smoke else 1_000_000)
    args.tenants = args.tenants if args.tenants is not None else (3 if smoke else 0)
    args.duration = args.duration or (1.0 if smoke else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if smoke else 2.0)
    args.tool = "wrk" if args.loadgen == "auto" and loadgen.wrk_available() else args.loadgen
    if args.tool == "auto":
        args.tool = "python"
    if smoke and not args.server:
        args.server = "gunicorn-sync"
    if args.callgrind is None:
        args.callgrind = not smoke and instructions.available()
    args.output = args.output or bench_env.RESULTS / ("smoke.json" if smoke else "latest.json")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    environment = bench_env.configure("licensing_bench_smoke" if args.smoke else "licensing_bench")
    bench_env.setup_django()
    from bench import many_tenants, prepare

    report = {
        "machine": machine(),
        "smoke": args.smoke,
        "licences": args.licences,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "duration": args.duration,
        "tool": args.tool,
        "redis": bool(os.environ.get("REDIS_URL")),
        "revision": git_revision(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    prepare.migrate()
    if args.tenants:
        print(f"Many tenants: {args.tenants}", file=sys.stderr)
        report["tenants"] = many_tenants.run(args.tenants, quiet=args.smoke)
    if not args.no_http:
        print(f"Preparing {args.licences:,} licences", file=sys.stderr)
        started = time.monotonic()
        fixture = prepare.prepare(args.licences, quiet=args.smoke)
        report["licences"] = fixture.licence_count
        report["prepare_seconds"] = round(time.monotonic() - started, 1)
        targets = endpoints(fixture)
        report["queries"], report["redis_round_trips"] = count_queries(targets)
        print(f"Queries per warm request: {report['queries']}", file=sys.stderr)
        print(f"Redis round trips per warm request: {report['redis_round_trips']}", file=sys.stderr)
        if args.callgrind:
            report["instructions"] = instructions.measure(targets, environment)
            print(f"Instructions per request: {report['instructions']}", file=sys.stderr)
        candidates = [args.server] if args.server else [s for s in SERVERS if available(s)]
        if len(candidates) > 1:
            report["servers"] = {
                name: measure_server(
                    name, environment, args, targets, only={"reference", "validate", "licence"}
                )
                for name in candidates
            }
            best = args.full_run_server
        else:
            best = candidates[0]
        report["server"] = best
        report["run"] = {"endpoints": measure_server(best, environment, args, targets)}
        run = report["run"]["endpoints"]
        report["run"]["validate-half-load"] = run.pop("validate-half-load", None)
        report["run"]["peak_worker_memory_mib"] = run.pop("peak_worker_memory_mib", None)
        reference = run["reference"]["rps"]
        report["ratios"] = {name: ratio_to_reference(run[name], reference) for name in run}
        print(table(report))
    elif report.get("tenants"):
        t = report["tenants"]
        print(json.dumps(t, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nWritten to {shown}", file=sys.stderr)
    return 0


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        return ""
