"""The monitoring models left tokens for their own app (monitoring/migrations/0001): their tables,
rows and the permissions granted on them survive the move, in migrated and in cloned schemas."""

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from monitoring.models import Alert, SecurityEvent, TokenPermissionUsage, TokenUsageDay
from tenants import schema_template

pytestmark = pytest.mark.django_db

SCHEMA = "moving"
MOVED = importlib.import_module("monitoring.migrations.0001_initial")
TABLES = {
    SecurityEvent: "tokens_securityevent",
    Alert: "tokens_alert",
    TokenUsageDay: "tokens_tokenusageday",
    TokenPermissionUsage: "tokens_tokenpermissionusage",
}


@pytest.fixture(autouse=True)
def _forget_content_types():
    """Content types are cached per database, not per schema: forget this test's."""
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


def migrate(*target):
    call_command("migrate_schemas", *target, schema_name=SCHEMA, interactive=False, verbosity=0)
    connection.set_schema_to_public()
    ContentType.objects.clear_cache()


def moved_content_types(app_label):
    return list(
        ContentType.objects.filter(app_label=app_label, model__in=MOVED.MOVED_MODELS)
        .order_by("model")
        .values_list("model", flat=True)
    )


def assert_moved():
    """Every moved model has its content type under monitoring, and none is left under tokens."""
    assert moved_content_types("monitoring") == sorted(MOVED.MOVED_MODELS)
    assert moved_content_types("tokens") == []
    codenames = Permission.objects.filter(content_type__app_label="monitoring")
    assert codenames.count() == 4 * len(MOVED.MOVED_MODELS)  # add, change, delete, view: once


def test_the_moved_models_keep_their_tables():
    for model, table in TABLES.items():
        assert model._meta.app_label == "monitoring" and model._meta.db_table == table


def test_an_existing_schema_keeps_rows_and_granted_permissions():
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{SCHEMA}"')
    migrate()
    migrate("monitoring", "zero")  # back to before the move: the models are tokens' again
    with schema_context(SCHEMA):
        assert moved_content_types("monitoring") == []
        assert moved_content_types("tokens") == sorted(MOVED.MOVED_MODELS)
        staff = get_user_model().objects.create_user("auditor", is_staff=True)
        staff.user_permissions.add(
            Permission.objects.get(content_type__app_label="tokens", codename="view_securityevent")
        )
        responders = Group.objects.create(name="responders")
        responders.permissions.add(
            Permission.objects.get(content_type__app_label="tokens", codename="change_alert")
        )
        staff.groups.add(responders)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO tokens_securityevent (kind, created_at, reason, user_agent, "
                "token_hint, via, method, path, count, details) VALUES "
                "('rate_limit_hit', now(), 'before_the_move', '', '', '', '', '', 3, '{}')"
            )

    migrate()

    with schema_context(SCHEMA):
        assert_moved()
        staff = get_user_model().objects.get(username="auditor")
        assert staff.has_perm("monitoring.view_securityevent")
        assert staff.has_perm("monitoring.change_alert")  # through the group
        assert not staff.has_perm("tokens.view_securityevent")
        event = SecurityEvent.objects.get(reason="before_the_move")
        assert (event.kind, event.count) == (SecurityEvent.Kind.RATE_LIMIT_HIT, 3)


def test_moving_again_merges_a_left_over_content_type_and_is_idempotent(in_alpha):
    editor = SimpleNamespace(connection=connection)
    left_over = ContentType.objects.create(app_label="tokens", model="alert")
    old_permission = Permission.objects.create(
        content_type=left_over, codename="change_alert", name="Can change alert"
    )
    staff = get_user_model().objects.create_user("responder", is_staff=True)
    staff.user_permissions.add(old_permission)

    MOVED.move_content_types(apps, editor)
    MOVED.move_content_types(apps, editor)

    assert_moved()
    staff = get_user_model().objects.get(pk=staff.pk)
    assert staff.has_perm("monitoring.change_alert")


@pytest.mark.parametrize("schema", ["alpha", schema_template.template_schema()])
def test_new_and_template_schemas_know_the_models_under_monitoring_only(schema):
    schema_template.ensure_template()
    with schema_context(schema):
        assert_moved()
