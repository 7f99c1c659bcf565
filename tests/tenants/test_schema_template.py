"""New tenants are copies of the template schema: identical to a migrated schema, with no rows
beyond the migrations' own, and the template follows the migrations."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context, schema_exists

from tenants import schema_template
from tenants.services import AdminAccount, provision_tenant

pytestmark = pytest.mark.django_db

TEMPLATE = schema_template.template_schema()
BOOKKEEPING = {"django_migrations", "django_content_type", "auth_permission"}

SIGNATURE_SQL = """
SELECT 'column', c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END || ' ' || a.attidentity::text
    || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint', c.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'index', c.relname, ic.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'sequence', s.relname, '', '' FROM pg_class s
JOIN pg_namespace n ON n.oid = s.relnamespace WHERE n.nspname = %(schema)s AND s.relkind = 'S'
"""


def signature(schema: str) -> set[tuple]:
    """Every table, column, constraint, index and sequence of `schema`, by name and definition."""
    with connection.cursor() as cursor:
        cursor.execute(SIGNATURE_SQL, {"schema": schema})
        return {
            tuple(str(part).replace(f"{schema}.", "SCHEMA.") for part in row)
            for row in cursor.fetchall()
        }


def row_counts(schema: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", [schema])
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


def provision(schema, password):
    return provision_tenant(
        schema_name=schema,
        name=schema.title(),
        domain=f"{schema}.localhost",
        admin=AdminAccount("root", f"root@{schema}.localhost", password),
    )


def test_a_cloned_tenant_is_identical_to_a_migrated_schema(admin_password):
    provision("gamma", admin_password)
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "migrated"')
    call_command("migrate_schemas", schema_name="migrated", interactive=False, verbosity=0)
    connection.set_schema_to_public()
    assert signature("gamma") == signature("migrated")
    assert len(signature("gamma")) > 100
    migrated_rows = row_counts("migrated")
    gamma_rows = row_counts("gamma")
    assert gamma_rows.pop("auth_user") == 1  # its administrator
    migrated_rows.pop("auth_user")
    assert gamma_rows == migrated_rows


def test_the_template_holds_only_the_migrations_bookkeeping():
    assert schema_template.template_is_current()
    counts = row_counts(TEMPLATE)
    assert {table for table, count in counts.items() if count} == BOOKKEEPING
    assert counts["auth_user"] == 0


def test_a_cloned_tenant_continues_the_copied_sequences(admin_password):
    provision("gamma", admin_password)
    with schema_context("gamma"):
        highest = ContentType.objects.order_by("-pk").first().pk
        assert ContentType.objects.create(app_label="extra", model="thing").pk > highest
        assert get_user_model().objects.get(username="root").is_superuser


def test_a_stale_template_is_rebuilt_before_cloning(admin_password):
    app, name = sorted(schema_template.expected_migrations())[0]
    with connection.cursor() as cursor:
        cursor.execute(
            f'DELETE FROM "{TEMPLATE}".django_migrations WHERE app = %s AND name = %s', [app, name]
        )
    assert not schema_template.template_is_current()
    provision("gamma", admin_password)
    assert schema_template.template_is_current()
    assert "gamma" in schema_template.up_to_date_schemas(["gamma"])


def test_the_template_name_is_reserved(admin_password):
    with pytest.raises(ValidationError, match="reserved"):
        provision(TEMPLATE, admin_password)


def test_a_template_the_clone_cannot_copy_falls_back_to_migrations(admin_password):
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE VIEW "{TEMPLATE}".extra AS SELECT 1 AS one')
    schema_template._scripts.clear()  # only a rebuild changes the template in real life
    with pytest.raises(schema_template.TemplateNotCloneable, match="views"):
        schema_template.clone_template("gamma")
    assert not schema_exists("gamma")
    provision("gamma", admin_password)
    assert "gamma" in schema_template.up_to_date_schemas(["gamma"])
    with schema_context("gamma"):
        assert get_user_model().objects.filter(username="root").exists()


def test_migrate_schemas_skips_up_to_date_tenant_schemas():
    assert schema_template.up_to_date_schemas(["alpha", "beta", "nowhere"]) == {"alpha", "beta"}
    with connection.cursor() as cursor:
        cursor.execute('DELETE FROM "beta".django_migrations WHERE app = %s', ["sessions"])
    assert schema_template.up_to_date_schemas(["alpha", "beta"]) == {"alpha"}
    out = io.StringIO()
    call_command("migrate_schemas", "--tenant", "--fake", stdout=out)  # no skipping with --fake
    connection.set_schema_to_public()
    assert schema_template.up_to_date_schemas(["alpha", "beta"]) == {"alpha", "beta"}


def test_migrate_schemas_reports_what_it_skipped(capsys):
    call_command("migrate_schemas", "--tenant", verbosity=1)
    connection.set_schema_to_public()
    assert "2 of 2 tenant schemas are up to date" in capsys.readouterr().out
