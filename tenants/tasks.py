"""Background jobs (procrastinate): the periodic tasks of the platform, all listed here.

The queue's tables live in the public schema. A job that works on a tenant's rows carries the
tenant's schema name and runs inside that schema (`run_in_tenant`). Each periodic task is deferred
once per tick whichever the number of workers (procrastinate records every periodic defer), and
runs its job in every tenant's schema, one after the other; a tenant whose job fails is logged and
the others still run.

Adding a periodic job is one line at the bottom: `periodic("name", "cron", function)`, where
`function` takes no argument and works on the current schema (`per_tenant=False`: run once, in
the public schema, for work that spans tenants). Cron has five fields, or six with
seconds LAST ("* * * * * */5" is every five seconds: croniter's order, not Quartz's).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context
from procrastinate.contrib.django import app

from tenants.models import Tenant

logger = logging.getLogger(__name__)

PERIODIC_QUEUE = "periodic"


def run_in_tenant(schema_name: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`job(*args, **kwargs)` in the schema of tenant `schema_name`; skipped (logged) when the
    tenant no longer exists."""
    connection.set_schema_to_public()
    if schema_name == get_public_schema_name() or not (
        Tenant.objects.filter(schema_name=schema_name).exists()
    ):
        logger.warning("Job %s skipped: no tenant %r", job.__qualname__, schema_name)
        return None
    with schema_context(schema_name):
        return job(*args, **kwargs)


def tenant_schemas() -> list[str]:
    connection.set_schema_to_public()
    return list(
        Tenant.objects.exclude(schema_name=get_public_schema_name())
        .order_by("schema_name")
        .values_list("schema_name", flat=True)
    )


def periodic(name: str, cron: str, job: Callable[[], Any], *, per_tenant: bool = True) -> None:
    """Register the periodic task `name`: on `cron`, `job()` in every tenant's schema (or once, in
    the public schema, with `per_tenant=False`)."""

    def run(timestamp: int) -> None:
        if not per_tenant:
            connection.set_schema_to_public()
            job()
            return
        failed = []
        for schema in tenant_schemas():
            try:
                run_in_tenant(schema, job)
            except Exception:  # one broken tenant must not stop the others
                logger.exception("Periodic task %s failed for tenant %s", name, schema)
                failed.append(schema)
        if failed:
            raise RuntimeError(f"{name} failed for: {', '.join(failed)}")

    run.__name__ = run.__qualname__ = name
    task = app.task(name=f"periodic.{name}", queue=PERIODIC_QUEUE, queueing_lock=name)(run)
    app.periodic(cron=cron, periodic_id=name)(task)


def _retry_delay_of_stalled() -> float:
    return 3 * settings.WORKER_HEARTBEAT_SECONDS


@app.periodic(cron="* * * * * */10", periodic_id="retry_stalled_jobs")
@app.task(
    name="periodic.retry_stalled_jobs",
    queue=PERIODIC_QUEUE,
    queueing_lock="retry_stalled_jobs",
    pass_context=True,
)
async def retry_stalled_jobs(context, timestamp: int) -> None:
    """Jobs left running by a worker that stopped sending heartbeats (killed, its host gone) are
    queued again: every job is delivered at least once."""
    manager = context.app.job_manager
    for job in await manager.get_stalled_jobs(seconds_since_heartbeat=_retry_delay_of_stalled()):
        logger.warning("Retrying job %s (%s) of a stalled worker", job.id, job.task_name)
        await manager.retry_job(job)


# --- The periodic jobs (they replace the cron lines of earlier releases, docs/operations.md)


def _flush_usage() -> None:
    from monitoring import events

    events.catch_up()


def _prune_security_events() -> None:
    call_command("prune_security_events", tenant=connection.schema_name, stdout=io.StringIO())


def _license_expiry_events() -> None:
    from licensing.services import emit_license_expiry_events

    emit_license_expiry_events()


def _cull_machines() -> None:
    from licensing.services import cull_dead_machines

    cull_dead_machines()


def _drain_records() -> None:
    from tenants.record_buffer import drain_buffered_records

    drain_buffered_records()  # every tenant's queue (Redis); a process's own queue drains itself


def _prune_webhook_events() -> None:
    from webhooks.services import prune_events

    prune_events()


periodic("flush_usage", "* * * * *", _flush_usage)
periodic("cull_machines", "* * * * *", _cull_machines)
periodic("drain_records", "* * * * * */5", _drain_records, per_tenant=False)
periodic("prune_security_events", "17 3 * * *", _prune_security_events)
periodic("license_expiry_events", "7 4 * * *", _license_expiry_events)
periodic("prune_webhook_events", "27 3 * * *", _prune_webhook_events)
