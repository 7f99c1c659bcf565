"""The many-tenants mode: N tenants present, then the figures that grow with their number.

The N tenants are created the fast way (a Tenant row, a copy of the template schema, a domain;
no administrator, whose password hashing alone takes half a second) and kept between runs. Then:

- the time of `provision_tenant` for one more tenant, the real service with its validation, its
  administrator and its platform licence (the tenant is removed again afterwards);
- the wall time of `python manage.py migrate_schemas` with nothing to do, a process of its own,
  and for comparison django-tenants' own executor (a `migrate` run per schema) timed on 20
  schemas and multiplied out;
- the size of one empty tenant schema (tables, indexes, TOAST; the bookkeeping rows included).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

from bench.env import ROOT
from bench.prepare import progress

PREFIX = "bench_t"


def schema_name(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def create_tenants(count: int, *, quiet: bool) -> int:
    from django.db import connection, transaction

    from tenants.models import Domain, Tenant
    from tenants.schema_template import clone_template, ensure_template

    ensure_template()
    existing = set(
        Tenant.objects.filter(schema_name__startswith=PREFIX).values_list("schema_name", flat=True)
    )
    missing = [i for i in range(1, count + 1) if schema_name(i) not in existing]
    started = time.monotonic()
    for done, index in enumerate(missing, 1):
        name = schema_name(index)
        with transaction.atomic():
            tenant = Tenant(schema_name=name, name=f"Bench tenant {index}")
            tenant.auto_create_schema = False
            tenant.save()
            clone_template(name)
            Domain.objects.create(domain=f"t{index:05d}.bench.localhost", tenant=tenant)
        connection.set_schema_to_public()
        if not quiet and (done % 10 == 0 or done == len(missing)):
            progress(done, len(missing), started, "tenants ")
    return Tenant.objects.filter(schema_name__startswith=PREFIX).count()


def time_provisioning(name: str = f"{PREFIX}extra") -> float:
    from tenants.models import Tenant
    from tenants.services import AdminAccount, provision_tenant

    Tenant.objects.filter(schema_name=name).delete()  # a run that stopped half-way
    password = secrets.token_urlsafe(24)
    started = time.perf_counter()
    tenant = provision_tenant(
        schema_name=name,
        name="One more",
        domain=f"{name.replace('_', '-')}.bench.localhost",
        admin=AdminAccount("admin", "admin@extra.bench.localhost", password),
    )
    elapsed = time.perf_counter() - started
    tenant.delete()  # drops its schema too
    return elapsed


def time_password_hash() -> float:
    """The administrator's password hash alone (Django's PBKDF2 default), part of provisioning."""
    from django.contrib.auth.hashers import make_password

    started = time.perf_counter()
    make_password(secrets.token_urlsafe(24))
    return time.perf_counter() - started


def time_migrate() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "migrate_schemas", "--noinput", "-v", "1"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def time_plain_migrate_per_schema(sample: int) -> float:
    """Seconds per schema of django-tenants' own executor (a `migrate` run per schema, no
    up-to-date check), on `sample` of the tenants: the cost this project's executor avoids."""
    from django.db import connection
    from django_tenants.migration_executors.standard import StandardExecutor

    from tenants.models import Tenant

    schemas = list(
        Tenant.objects.filter(schema_name__startswith=PREFIX)
        .order_by("schema_name")
        .values_list("schema_name", flat=True)[:sample]
    )
    options = {
        "verbosity": 0, "interactive": False, "database": "default", "skip_checks": True,
        "force_color": False, "no_color": True, "app_label": None, "migration_name": None,
        "fake": False, "fake_initial": False, "plan": False, "prune": False,
        "run_syncdb": False, "check_unapplied": False,
    }  # fmt: skip
    started = time.perf_counter()
    StandardExecutor([], options).run_migrations(tenants=schemas)
    elapsed = time.perf_counter() - started
    connection.set_schema_to_public()
    return elapsed / max(1, len(schemas))


def schema_size(schema: str) -> tuple[int, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0),
                      count(*) FILTER (WHERE c.relkind = 'r')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %s AND c.relkind IN ('r', 'S', 'm')""",
            [schema],
        )
        size, tables = cursor.fetchone()
    return int(size), int(tables)


def run(count: int, *, quiet: bool = False) -> dict:
    started = time.monotonic()
    present = create_tenants(count, quiet=quiet)
    create_seconds = time.monotonic() - started
    # The first in a process also reads the template's catalogue once (as `manage.py
    # provision_tenant` does every time); a long-running process pays that once.
    provision_cold = time_provisioning(f"{PREFIX}extra1")
    provision = time_provisioning(f"{PREFIX}extra2")
    hashing = time_password_hash()
    migrate = time_migrate()
    per_schema = time_plain_migrate_per_schema(20)
    size, tables = schema_size(schema_name(1))
    figures = {
        "count": present,
        "create_seconds": round(create_seconds, 1),
        "provision_seconds": round(provision, 3),
        "provision_first_in_process_seconds": round(provision_cold, 3),
        "of_which_password_hash_seconds": round(hashing, 3),
        "migrate_seconds": round(migrate, 2),
        "plain_migrate_seconds_per_schema": round(per_schema, 3),
        "plain_migrate_seconds_estimate": round(per_schema * present, 1),
        "schema_kib": size / 1024,
        "schema_tables": tables,
    }
    print(
        f"  {present:,} tenants; one more in {provision:.2f} s; migrate_schemas {migrate:.1f} s; "
        f"empty schema {size / 1024:.0f} KiB",
        file=sys.stderr,
    )
    return figures
