"""The licensing domain's "now": expiry, heartbeat deadlines and the churn window are read against
it, so tests can move time (replace `now`) instead of sleeping."""

from datetime import datetime

from django.utils import timezone


def now() -> datetime:
    return timezone.now()
