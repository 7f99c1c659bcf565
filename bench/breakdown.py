"""`python -m bench.breakdown`: where the CPU time of one warm request goes, by component.

In-process and single-threaded: each line is the mean CPU time (time.process_time) of one part of
the request path run on its own, so the parts can be compared with the reference endpoint's whole
request. It explains the ratios of `python -m bench` (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import time

from bench import env as bench_env


def cpu_ms(fn, repeat: int) -> float:
    for _ in range(5):
        fn()
    started = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - started) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="use the smoke run's data")
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    bench_env.configure("licensing_bench_smoke" if args.smoke else "licensing_bench")
    bench_env.setup_django()
    from django.core.cache import caches
    from django_tenants.utils import schema_context

    from bench import prepare, run
    from licensing import services
    from licensing.api.serializers import LicenseSerializer
    from licensing.models import License
    from monitoring import usage
    from tokens.jwt import ApiAccessToken
    from tokens.models import UserToken

    fixture = prepare.prepare(2_000 if args.smoke else 1_000_000, quiet=True)
    targets = dict(run.endpoints(fixture))
    r = args.repeat
    figures = {}

    for name in ("reference", "validate", "licence", "list-first"):
        figures[f"whole request: {name}"] = cpu_ms(run.in_process_call(targets[name]), r)
    with schema_context(prepare.TENANT):
        token = UserToken.objects.select_related("owner").get(name="bench")
        licence = License.objects.get(pk=fixture.licence_id)
        page = list(License.objects.filter(status="active").order_by("id")[:51])
        figures["JWT decode and verify"] = cpu_ms(
            lambda: ApiAccessToken(fixture.access_token).payload, r
        )
        figures["token lookup (ORM, select_related owner)"] = cpu_ms(
            lambda: UserToken.objects.select_related("owner").filter(pk=token.pk).first(), r
        )
        figures["usage counting (cache)"] = cpu_ms(
            lambda: usage.count_request(token, ["view_licenses"]), r
        )
        figures["licence lookup by id (ORM)"] = cpu_ms(
            lambda: License.objects.get(pk=licence.pk), r
        )
        figures["licence serializer, one"] = cpu_ms(lambda: LicenseSerializer(licence).data, r)
        figures["page query, 51 rows (ORM)"] = cpu_ms(
            lambda: list(License.objects.filter(status="active").order_by("id")[:51]), r // 5
        )
        figures["licence serializer, page of 50"] = cpu_ms(
            lambda: LicenseSerializer(page[:50], many=True).data, r // 5
        )
        figures["validate_license_key (ORM lookup + record)"] = cpu_ms(
            lambda: services.validate_license_key(fixture.valid_key, client_address="127.0.0.1"),
            r,
        )
        # What POST /v1/licenses/validate runs: the statement written once per process.
        figures["check_license_key (lookup + record)"] = cpu_ms(
            lambda: services.check_license_key(fixture.valid_key, client_address="127.0.0.1"),
            r,
        )
    store = caches["ratelimit"]
    figures["one counter add+incr (rate-limit store)"] = cpu_ms(
        lambda: (store.add("bench:x", 0, 60), store.incr("bench:x")), r
    )
    width = max(len(k) for k in figures)
    for label, value in figures.items():
        print(f"{label:{width}}  {value:6.2f} ms")
    output = bench_env.RESULTS / "breakdown.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
