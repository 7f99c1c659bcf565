"""The benchmark's data: a tenant `bench` with N licences (bulk-inserted in SQL) and a token.

Runs in the driver process (Django set up by bench.env). The licences are kept between runs: a
later run inserts only what is missing, so the million is paid for once.
"""

from __future__ import annotations

import base64
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

TENANT = "bench"
HOST = "bench.localhost"
PUBLIC_HOST = "localhost"
KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CHUNK = 50_000


@dataclass
class Fixture:
    licence_count: int
    valid_key: str
    licence_id: int
    secret: str  # the User Token's secret (for POST /v1/auth/token)
    access_token: str
    deep_cursor_url: str
    deep_position: int
    fingerprint: str  # a machine activated on valid_key (heartbeats, activation again)


BENCH_FINGERPRINT = "bench-machine-0001"


def progress(done: int, total: int, started: float, label: str) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(
        f"\r  {label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)"
    )
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def key_expression(digest: str) -> str:
    """SQL for a licence key in the service's format (5 groups of 5 symbols) from 25 bytes of
    the bytea expression `digest`."""
    groups = []
    for group in range(5):
        symbols = [
            f"substr('{KEY_ALPHABET}', get_byte({digest}, {group * 5 + i}) %% 32 + 1, 1)"
            for i in range(5)
        ]
        groups.append(" || ".join(symbols))
    return " || '-' || ".join(f"({g})" for g in groups)


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate_schemas", interactive=False, verbosity=0)


def ensure_tenant():
    from tenants.models import Tenant
    from tenants.services import AdminAccount, provision_tenant, set_tenant_licence
    from tenants.signing_keys import rotate_signing_key

    tenant = Tenant.objects.filter(schema_name=TENANT).first()
    if tenant is None:
        tenant = provision_tenant(
            schema_name=TENANT,
            name="Benchmark",
            domain=HOST,
            admin=AdminAccount("bench-admin", f"admin@{HOST}", secrets.token_urlsafe(24)),
        )
    # Rate limits out of the way: the licence allows far more than any run sends.
    set_tenant_licence(
        tenant, request_limit=2_000_000_000, request_period="minute", expires_at=None
    )
    # Every run has fresh keys (bench.env), so the signing key stored by an earlier run no longer
    # decrypts: a new one, the old ones withdrawn.
    rotate_signing_key(tenant, overlap=timedelta(0))
    return tenant


def insert_licences(target: int, *, quiet: bool = False) -> int:
    from django.db import connection

    from licensing.models import License, Plan, Product

    product, _ = Product.objects.get_or_create(code="bench-app", defaults={"name": "Bench App"})
    plan, _ = Plan.objects.get_or_create(
        product=product, code="standard", defaults={"name": "Standard"}
    )
    have = License.objects.count()
    if have >= target:
        return have
    table = License._meta.db_table
    salt = secrets.token_hex(8)
    # 18 of 20 active, 1 suspended, 1 revoked; a tenth with an expiry in the future.
    sql = f"""
        INSERT INTO {table} (key, product_id, plan_id, customer_id, user_id, status, starts_at,
                             expires_at, metadata, created_at, updated_at)
        SELECT {key_expression("x.h")},
               %s, %s, NULL, NULL,
               CASE i %% 20 WHEN 0 THEN 'suspended' WHEN 1 THEN 'revoked' ELSE 'active' END,
               now() - interval '1 day',
               CASE WHEN i %% 10 = 5 THEN now() + interval '365 days' END,
               '{{}}'::jsonb, now(), now()
        FROM generate_series(%s, %s) AS i,
             LATERAL (SELECT sha256(convert_to(%s || i::text, 'UTF8')) AS h) AS x
        """  # noqa: S608 (constants)
    started = time.monotonic()
    done = have
    with connection.cursor() as cursor:
        while done < target:
            upto = min(done + CHUNK, target)
            cursor.execute(sql, [product.pk, plan.pk, done + 1, upto, salt])
            done = upto
            if not quiet:
                progress(done - have, target - have, started, "licences")
        cursor.execute(f"ANALYZE {table}")
    return done


def deep_cursor(first_page_next: str, position: int) -> str:
    """The `next` link of the first page, pointing `position` deep (the cursor is DRF's)."""
    url = urlparse(first_page_next)
    query = parse_qs(url.query)
    cursor = parse_qs(base64.b64decode(query["cursor"][0]).decode())
    cursor["p"] = [str(position)]
    cursor.pop("o", None)
    encoded = base64.b64encode(urlencode(cursor, doseq=True).encode()).decode()
    query["cursor"] = [encoded]
    return f"{url.path}?{urlencode(query, doseq=True)}"


def prepare(licences: int, *, quiet: bool = False) -> Fixture:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django_tenants.utils import schema_context

    from licensing import services
    from licensing.models import License
    from tokens.models import UserToken
    from tokens.services import create_user_token

    ensure_tenant()
    with schema_context(TENANT):
        count = insert_licences(licences, quiet=quiet)
        owner, _ = get_user_model().objects.get_or_create(username="bench-integration")
        UserToken.objects.filter(owner=owner).delete()
        _, secret = create_user_token(owner=owner, name="bench", permissions=["view_licenses"])
        valid = License.objects.filter(status="active", expires_at__isnull=True)
        licence = valid.order_by("-id").first()
        services.activate_machine(licence.key, BENCH_FINGERPRINT, name="bench machine")
        # 90 % of the way through the listed (active) licences, in the list's order (by id).
        listed = License.objects.filter(status="active").order_by("id")
        deep_position = listed.values_list("id", flat=True)[int(listed.count() * 0.9)]
    client = Client(HTTP_HOST=HOST)
    answer = client.post("/v1/auth/token", {"user_token": secret}, content_type="application/json")
    if answer.status_code != 200:
        raise SystemExit(f"token exchange failed: {answer.status_code} {answer.content[:200]!r}")
    access = answer.json()["access_token"]
    first = client.get("/v1/licenses?status=active", HTTP_AUTHORIZATION=f"Bearer {access}").json()
    if not first.get("next"):
        raise SystemExit("the licence list has a single page: prepare more licences")
    return Fixture(
        licence_count=count,
        valid_key=licence.key,
        licence_id=licence.id,
        secret=secret,
        access_token=access,
        deep_cursor_url=deep_cursor(first["next"], deep_position),
        deep_position=deep_position,
        fingerprint=BENCH_FINGERPRINT,
    )
