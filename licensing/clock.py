"""The licensing domain's "now": expiry, heartbeat deadlines and the churn window are read against
it, so tests can move time (replace `now`) instead of sleeping."""

from datetime import datetime, timedelta

from django.utils import timezone


def now() -> datetime:
    return timezone.now()


class FrozenClock:
    """A stand-in for `now` that stands still until moved: a test installs it in place of `now`
    and calls `advance(seconds=...)` where it would otherwise sleep."""

    def __init__(self, start: datetime):
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta) -> None:
        """Move the clock forward by `timedelta(**delta)`."""
        self.moment += timedelta(**delta)
