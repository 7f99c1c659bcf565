"""The queue's webhook job: one delivery attempt, retried with backoff until it succeeds."""

from __future__ import annotations

from procrastinate import RetryDecision
from procrastinate.contrib.django import app
from procrastinate.retry import BaseRetryStrategy

from tenants.tasks import run_in_tenant
from webhooks import services


class DeliveryRetry(BaseRetryStrategy):
    """The schedule of webhooks.services.retry_delay (exponential, jittered, ~2 days), also for
    unexpected errors (the database away, say), so a committed event is never dropped."""

    def get_retry_decision(self, *, exception, job) -> RetryDecision | None:
        if isinstance(exception, services.DeliveryFailed):
            return RetryDecision(retry_in={"seconds": exception.retry_in})
        delay = services.retry_delay(job.attempts + 1)
        return None if delay is None else RetryDecision(retry_in={"seconds": delay})


@app.task(name="webhooks.deliver", queue="webhooks", retry=DeliveryRetry(), pass_context=False)
def deliver_webhook(*, schema_name: str, delivery_id: int) -> None:
    run_in_tenant(schema_name, services.attempt_delivery, delivery_id)
