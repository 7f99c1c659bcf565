"""A migrated, empty template schema that new tenants are cloned from, and up-to-date checks.

Running every migration for a new tenant takes seconds; copying a migrated schema takes a few
tens of milliseconds. The template (`TENANT_TEMPLATE_SCHEMA`, default `tenant_template`) holds
exactly what the migrations create for a tenant: its tables, indexes and constraints, the
migration records, content types and permissions, and no other row. It has no Tenant row and no
domain, so no request or command ever writes to it. It is dropped and rebuilt from the migrations
whenever it is not current (a migration was added), by `migrate_schemas` and, lazily, by the first
provisioning that finds it stale. The clone keeps every object's name (indexes, constraints), so
later migrations apply to cloned tenants exactly as to migrated ones.

Objects this clone does not copy (views, functions, triggers, types, stand-alone sequences,
partitioned tables) make `clone_template` refuse; provisioning then migrates the new schema.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.models import TenantMixin
from django_tenants.signals import post_schema_sync
from django_tenants.utils import quote_schema_name

logger = logging.getLogger(__name__)

# Serialises rebuilding and cloning the template across processes (any constant would do).
ADVISORY_LOCK = 7_246_901_001


def template_schema() -> str:
    return getattr(settings, "TENANT_TEMPLATE_SCHEMA", "tenant_template")


def expected_migrations() -> set[tuple[str, str]]:
    """The migration graph's leaf nodes: a schema that recorded all of them is up to date (their
    ancestors are recorded before them, or Django refuses the history as inconsistent)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return set(loader.graph.leaf_nodes())


def up_to_date_schemas(schemas: list[str], chunk: int = 500) -> set[str]:
    """The schemas among `schemas` whose migrations are all applied: a query or two per `chunk`
    schemas, whatever their number, instead of a `migrate` run per schema."""
    leaves = sorted(expected_migrations())
    if not schemas:
        return set()
    current: set[str] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(schemas), chunk):
            part = list(schemas[start : start + chunk])
            cursor.execute(
                "SELECT schemaname FROM pg_tables "
                "WHERE tablename = 'django_migrations' AND schemaname = ANY(%s)",
                [part],
            )
            recorded = [row[0] for row in cursor.fetchall()]
            if not recorded or not leaves:
                current.update(recorded if not leaves else ())
                continue
            values = ", ".join(["(%s, %s)"] * len(leaves))
            counts = " UNION ALL ".join(
                f"SELECT %s, (SELECT count(DISTINCT (m.app, m.name)) FROM "  # noqa: S608 (catalogue names, quoted)
                f"{quote_schema_name(schema)}.django_migrations m JOIN leaves l "
                f"ON m.app = l.app AND m.name = l.name)"
                for schema in recorded
            )
            params = [value for leaf in leaves for value in leaf] + recorded
            cursor.execute(f"WITH leaves(app, name) AS (VALUES {values}) {counts}", params)  # noqa: S608 (quoted names)
            current.update(
                schema for schema, applied in cursor.fetchall() if applied == len(leaves)
            )
    return current


def template_is_current() -> bool:
    return template_schema() in up_to_date_schemas([template_schema()])


def rebuild_template(verbosity: int = 0) -> None:
    """Drop the template and build it again from the migrations (nothing else writes to it)."""
    from tenants.models import Tenant

    name = template_schema()
    if Tenant.objects.filter(schema_name=name).exists():
        raise ImproperlyConfigured(f"TENANT_TEMPLATE_SCHEMA {name!r} is a tenant's schema.")
    connection.set_schema_to_public()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK])
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(name)} CASCADE")
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(name)}")
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=name,
            executor="standard",
            interactive=False,
            verbosity=verbosity,
        )
    connection.set_schema_to_public()
    logger.info("Rebuilt the tenant template schema %s", name)


def ensure_template(verbosity: int = 0) -> None:
    if not template_is_current():
        rebuild_template(verbosity)


def create_tenant_schema(tenant, verbosity: int = 0) -> None:
    """Create and fill the schema of a saved tenant: a copy of the template (rebuilt first when
    migrations changed), or, when the template cannot be copied, by running the migrations."""
    try:
        ensure_template(verbosity)
        clone_template(tenant.schema_name)
    except TemplateNotCloneable as reason:
        logger.warning("Migrating schema %s instead of cloning: %s", tenant.schema_name, reason)
        tenant.create_schema(check_if_exists=True, verbosity=verbosity)
    post_schema_sync.send(sender=TenantMixin, tenant=tenant.serializable_fields())


# --- Cloning

IDENT_RE = re.compile(r"^[a-z_][a-z0-9_$]*$")


class TemplateNotCloneable(Exception):
    """The template holds objects this clone does not copy; migrate the new schema instead."""


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _fetch(cursor, sql: str, params) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


UNSUPPORTED_SQL = """
    SELECT
        (SELECT count(*) FROM pg_class c WHERE c.relnamespace = ns.oid
            AND c.relkind IN ('v', 'm', 'p', 'f')),
        (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = ns.oid),
        (SELECT count(*) FROM pg_type t WHERE t.typnamespace = ns.oid AND t.typtype <> 'c'
            AND t.typrelid = 0 AND t.typcategory <> 'A'),
        (SELECT count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
            WHERE c.relnamespace = ns.oid AND NOT g.tgisinternal),
        (SELECT count(*) FROM pg_class s WHERE s.relnamespace = ns.oid AND s.relkind = 'S'
            AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = s.oid AND d.deptype = 'i'))
    FROM (SELECT %s::regnamespace::oid AS oid) AS ns"""
UNSUPPORTED = (
    "views or partitioned tables",
    "functions",
    "types",
    "triggers",
    "stand-alone sequences",
)


def _refuse_unsupported(cursor, template: str) -> None:
    counts = _fetch(cursor, UNSUPPORTED_SQL, [template])[0]
    for what, count in zip(UNSUPPORTED, counts, strict=True):
        if count:
            raise TemplateNotCloneable(f"the template schema holds {what}")


# The copy script of the template, by the template schema's OID: only a rebuild changes the
# template, and a rebuilt template is a new schema with a new OID. Reading the catalogue takes
# longer than running the script once thousands of schemas exist, so each process reads it once
# per template.
TARGET = "\x00target\x00"
_scripts: dict[int, str] = {}


def clone_template(schema_name: str) -> None:
    """Create schema `schema_name` as a copy of the current template (structure and rows).

    Raises TemplateNotCloneable (nothing created) when the template holds objects this copy
    does not handle. Runs in one transaction: a failure leaves nothing behind.
    """
    template = template_schema()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [ADVISORY_LOCK])
        found = _fetch(cursor, "SELECT oid FROM pg_namespace WHERE nspname = %s", [template])
        if not found:
            raise TemplateNotCloneable("there is no template schema")
        oid = found[0][0]
        if oid not in _scripts:
            _scripts.clear()
            _scripts[oid] = _copy_script(cursor, template)
        # Catalogue names come from PostgreSQL itself, schema names are validated and quoted.
        cursor.execute(_scripts[oid].replace(TARGET, quote_schema_name(schema_name)))
    # SET LOCAL lasts until the outermost transaction ends: have the path set again.
    connection.set_schema_to_public()
    if hasattr(connection, "forget_search_path"):
        connection.forget_search_path()


def _copy_script(cursor, template: str) -> str:
    """The statements that copy the template into the schema named TARGET, as one script."""
    source, target = quote_schema_name(template), TARGET
    _refuse_unsupported(cursor, template)
    # Unqualified names in the definitions below then mean "the same schema".
    cursor.execute(f"SET LOCAL search_path = {source}")
    # Table OIDs first: the other catalogues are then read through their indexes on the
    # relation's OID, which stays fast with thousands of schemas in the database.
    relations = _fetch(
        cursor,
        """SELECT c.oid, c.relname FROM pg_class c
        WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' ORDER BY c.relname""",
        [template],
    )
    tables = [name for _, name in relations]
    oids = [oid for oid, _ in relations]
    name_of = dict(relations)
    # Primary keys, unique and exclusion constraints first (their indexes carry their
    # names), then the other indexes, then foreign keys (which need the unique indexes).
    constraints = _fetch(
        cursor,
        """SELECT con.conrelid, con.conname, pg_get_constraintdef(con.oid), con.contype
        FROM pg_constraint con WHERE con.conrelid = ANY(%s::oid[])
        AND con.contype IN ('p', 'u', 'x', 'f')
        ORDER BY con.contype = 'f', con.conrelid, con.conname""",
        [oids],
    )
    indexes = _fetch(
        cursor,
        """SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = ANY(%s::oid[]) AND NOT EXISTS (
            SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
            AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))
        ORDER BY 1""",
        [oids],
    )
    columns = _fetch(
        cursor,
        """SELECT a.attrelid, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = ANY(%s::oid[]) AND a.attnum > 0
        AND NOT a.attisdropped AND a.attgenerated = '' GROUP BY a.attrelid""",
        [oids],
    )
    sequences = _fetch(
        cursor,
        """SELECT a.attrelid, a.attname,
            pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)
        FROM pg_attribute a WHERE a.attrelid = ANY(%s::oid[]) AND a.attidentity <> ''""",
        [oids],
    )
    index_prefix = f" ON {_fetch(cursor, 'SELECT quote_ident(%s)', [template])[0][0]}."
    statements = [f"CREATE SCHEMA {target}", f"SET LOCAL search_path = {target}"]
    for table in tables:
        statements.append(
            f"CREATE TABLE {_quote_ident(table)} (LIKE {source}.{_quote_ident(table)} "
            "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS "
            "INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION)"
        )
    foreign_keys = []
    for oid, name, definition, kind in constraints:
        table = name_of[oid]
        statement = (
            f"ALTER TABLE {_quote_ident(table)} ADD CONSTRAINT {_quote_ident(name)} {definition}"
        )
        (foreign_keys if kind == "f" else statements).append(statement)
    for (definition,) in indexes:
        if index_prefix not in definition:
            raise TemplateNotCloneable(f"unexpected index definition: {definition}")
        statements.append(definition.replace(index_prefix, " ON ", 1))
    statements.extend(foreign_keys)
    for oid, column_list in columns:
        table = name_of[oid]
        statements.append(
            f"INSERT INTO {_quote_ident(table)} ({column_list}) OVERRIDING SYSTEM VALUE "  # noqa: S608 (catalogue names, quoted)
            f"SELECT {column_list} FROM {source}.{_quote_ident(table)}"
        )
    for oid, column, sequence in sequences:
        table = name_of[oid]
        qualified = f"{target}.{_quote_ident(table)}".replace("'", "''")
        column_literal = column.replace("'", "''")
        statements.append(
            f"SELECT setval(pg_get_serial_sequence('{qualified}', '{column_literal}'), "  # noqa: S608 (catalogue names, quoted)
            f"last_value, is_called) FROM {sequence}"
        )
    cursor.execute("SET LOCAL search_path = public")
    return ";\n".join(statements)
