"""`python -m bench.ablation`: what the request-path optimisations buy, one switched off at a time.

In-process (Django's test client, no server, no load generator), on the data `python -m bench`
prepared: for each endpoint, the SQL statements and the mean time of a warm request with every
optimisation, then without the tenant cache, then without the remembered search_path, then
without both, then without signed answers (the cost of signing validate's answers), then with
DATABASE_POOLING=transaction (the path sent with every statement). Times are means of --requests
requests (wall clock, and CPU time of this process),
the median of --rounds interleaved rounds; queries are exact.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

from bench import env as bench_env


@contextlib.contextmanager
def without_tenant_cache():
    from tenants import middleware

    class NoCache:
        def get(self, hostname, load):
            return load(hostname)

    saved = middleware.tenant_cache
    middleware.tenant_cache = NoCache()
    try:
        yield
    finally:
        middleware.tenant_cache = saved


@contextlib.contextmanager
def without_search_path_memory():
    from django_tenants.postgresql_backend.base import DatabaseWrapper as Plain

    from tenants.postgresql_backend.base import DatabaseWrapper

    saved = DatabaseWrapper._handle_search_path
    DatabaseWrapper._handle_search_path = Plain._handle_search_path
    try:
        yield
    finally:
        DatabaseWrapper._handle_search_path = saved


@contextlib.contextmanager
def without_signing():
    """Answers of signed views (validate) go out unsigned: what RFC 9421 signing costs."""
    from tenants import http_signatures

    saved = http_signatures.sign_response
    http_signatures.sign_response = lambda request, response, signer: None
    try:
        yield
    finally:
        http_signatures.sign_response = saved


@contextlib.contextmanager
def transaction_pooling():
    """DATABASE_POOLING=transaction: the search_path sent in front of every statement."""
    from django.db import connection

    saved = connection.settings_dict.get("POOLING", "")
    connection.close()  # the next connection gets the pooling cursor
    connection.settings_dict["POOLING"] = "transaction"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["POOLING"] = saved


def measure(targets, names, requests: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.run import in_process_call

    figures = {}
    for name, target in targets:
        if name not in names:
            continue
        call = in_process_call(target)

        for _ in range(5):
            call()
        with CaptureQueriesContext(connection) as queries:
            call()
        count = len(queries.captured_queries)
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            call()
        figures[name] = {
            "queries": count,
            "ms": (time.perf_counter() - started) / requests * 1000,
            "cpu_ms": (time.process_time() - cpu) / requests * 1000,
        }
    return figures


def median_of(runs: list[dict]) -> dict:
    """Per endpoint, the median of each figure over interleaved rounds (the machine is shared)."""
    return {
        name: {key: statistics.median(run[name][key] for run in runs) for key in runs[0][name]}
        for name in runs[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="use the smoke run's data")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bench_env.configure("licensing_bench_smoke" if args.smoke else "licensing_bench")
    bench_env.setup_django()
    from bench import prepare, run

    prepare.migrate()  # a fresh database (the smoke data) has no tables yet
    fixture = prepare.prepare(2_000 if args.smoke else 1_000_000, quiet=True)
    targets = run.endpoints(fixture)
    names = ["reference", "validate", "licence", "list-first"]

    @contextlib.contextmanager
    def without_both():
        with without_tenant_cache(), without_search_path_memory():
            yield

    variants = {
        "all optimisations": contextlib.nullcontext,
        "without tenant cache": without_tenant_cache,
        "without remembered search_path": without_search_path_memory,
        "without both": without_both,
        "without signed answers": without_signing,
        "DATABASE_POOLING=transaction": transaction_pooling,
    }
    runs: dict[str, list] = {label: [] for label in variants}
    for _ in range(args.rounds):
        for label, switch in variants.items():
            with switch():
                runs[label].append(measure(targets, names, args.requests))
    results = {label: median_of(figures) for label, figures in runs.items()}
    print(f"{'queries / wall ms / cpu ms':32}" + "".join(f"{n:>24}" for n in names))
    for label, figures in results.items():
        cells = "".join(
            f"{figures[n]['queries']:>4.0f} {figures[n]['ms']:>8.2f} {figures[n]['cpu_ms']:>8.2f}  "
            for n in names
        )
        print(f"{label:32}{cells}")
    output = bench_env.RESULTS / "ablation.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
