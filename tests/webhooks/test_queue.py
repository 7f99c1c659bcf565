"""The task queue: its tables in the public schema only, the periodic jobs defined once and run per
tenant (a real worker deferring them: tests/webhooks/test_delivery.py)."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from procrastinate.contrib.django import app

from tenants import tasks
from tenants.schema_template import template_schema

pytestmark = pytest.mark.django_db


def schemas_with(kind: str, name_like: str) -> set[str]:
    queries = {
        "table": "SELECT table_schema FROM information_schema.tables WHERE table_name LIKE %s",
        "function": "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE p.proname LIKE %s",
    }
    with connection.cursor() as cursor:
        cursor.execute(queries[kind], [name_like])
        return {row[0] for row in cursor.fetchall()}


def test_the_queue_lives_in_the_public_schema_only(tenant_alpha):
    assert schemas_with("table", "procrastinate%") == {"public"}
    assert schemas_with("function", "procrastinate%") == {"public"}
    # The webhooks app is a tenant app: in each tenant and the template they are cloned from.
    assert schemas_with("table", "webhooks_%") >= {"alpha", "beta", template_schema()}
    assert "public" not in schemas_with("table", "webhooks_%")


def test_the_periodic_jobs_are_registered_once():
    registered = {
        task.task.name: task.cron for task in app.periodic_registry.periodic_tasks.values()
    }
    assert registered == {
        "periodic.flush_usage": "* * * * *",
        "periodic.cull_machines": "* * * * *",
        "periodic.drain_records": "* * * * * */5",
        "periodic.prune_security_events": "17 3 * * *",
        "periodic.license_expiry_events": "7 4 * * *",
        "periodic.prune_webhook_events": "27 3 * * *",
        "periodic.retry_stalled_jobs": "* * * * * */10",
    }


def test_a_periodic_job_runs_in_every_tenant_and_survives_one_failing(caplog):
    seen = []

    def job():
        seen.append(connection.schema_name)
        if connection.schema_name == "alpha":
            raise RuntimeError("alpha is broken")

    tasks.periodic("test_only_job", "0 0 1 1 *", job)
    try:
        task = app.tasks["periodic.test_only_job"]
        with pytest.raises(RuntimeError, match="test_only_job failed for: alpha"):
            task(timestamp=0)
    finally:
        app.periodic_registry.periodic_tasks.pop(("periodic.test_only_job", "test_only_job"))
        app.tasks.pop("periodic.test_only_job")
    assert {"alpha", "beta"} <= set(seen)
    assert "public" not in seen
    assert "Periodic task test_only_job failed for tenant alpha" in caplog.text


def test_a_job_of_a_deleted_tenant_is_skipped(caplog):
    assert tasks.run_in_tenant("no_such_tenant", lambda: 1 / 0) is None
    assert tasks.run_in_tenant("public", lambda: 1 / 0) is None
    with schema_context("beta"):
        assert tasks.run_in_tenant("alpha", lambda: connection.schema_name) == "alpha"


def test_a_platform_wide_periodic_job_runs_once_in_the_public_schema():
    seen = []
    tasks.periodic(
        "test_only_global",
        "0 0 1 1 *",
        lambda: seen.append(connection.schema_name),
        per_tenant=False,
    )
    try:
        with schema_context("alpha"):
            app.tasks["periodic.test_only_global"](timestamp=0)
    finally:
        app.periodic_registry.periodic_tasks.pop(("periodic.test_only_global", "test_only_global"))
        app.tasks.pop("periodic.test_only_global")
    assert seen == ["public"]
