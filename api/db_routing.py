"""Reads that may be stale go to the streaming replica (DATABASE_REPLICA_URL); all else to the primary.

Nothing is sent to the replica unless a view asks for it with `replica_reads(request)` around the
reads it can serve a little stale (the resource lists: api.views.ResourceViewSet.list). Token checks, licence
validation, anything inside a transaction and every write stay on the primary, since the router
answers the primary ("default") outside such a block, inside `atomic()`, and for every write.

Read-your-writes without cookies or headers: a successful write by a token pins that token's reads
to the primary for REPLICA_PIN_SECONDS (a key in the shared cache, so every app host sees it), and
a request that wrote reads from the primary until it ends.

The replica connection is told the tenant's schema whenever a read is routed to it (django-tenants
sets it only on the primary's connection). A replica that fails is left alone for
REPLICA_RETRY_SECONDS by this process, and the view's reads are repeated on the primary.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

logger = logging.getLogger(__name__)

REPLICA = "replica"
REPLICA_RETRY_SECONDS = 10
PIN_KEY_PREFIX = "replica-pin"

_reads_on_replica: ContextVar[bool] = ContextVar("reads_on_replica", default=False)
_replica_down_until = 0.0  # this process's monotonic clock


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def _pin_key(request) -> str | None:
    """Whose writes pin reads: the request's User Token (None for requests without one)."""
    user_token = getattr(getattr(request, "auth", None), "user_token", None)
    if user_token is None:
        return None
    return f"{PIN_KEY_PREFIX}:{connections[DEFAULT_DB_ALIAS].schema_name}:{user_token.pk}"


def note_write(request) -> None:
    """After a successful write: the same token reads from the primary for a while."""
    if not replica_configured():
        return
    key = _pin_key(request)
    if key is not None:
        cache.set(key, 1, timeout=settings.REPLICA_PIN_SECONDS)


def _replica_usable(request) -> bool:
    if not replica_configured() or time.monotonic() < _replica_down_until:
        return False
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return False
    key = _pin_key(request)
    return key is None or cache.get(key) is None


def _mark_replica_down(error: Exception) -> None:
    global _replica_down_until
    _replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS
    logger.error(
        "Replica unavailable (%s): reading from the primary for %ss",
        type(error).__name__,
        REPLICA_RETRY_SECONDS,
    )
    with contextlib.suppress(DatabaseError):
        connections[REPLICA].close()


def replica_reads(request, read):
    """`read()` with the router allowed to send its queries to the replica; repeated on the
    primary if the replica fails."""
    if not _replica_usable(request):
        return read()
    replica = connections[REPLICA]
    replica.errors_occurred = False
    marker = _reads_on_replica.set(True)
    try:
        return read()
    except DatabaseError as error:
        if not replica.errors_occurred:
            raise  # the primary's error, not the replica's
        _mark_replica_down(error)
    finally:
        _reads_on_replica.reset(marker)
    return read()


class ReplicaRouter:
    """Reads inside `replica_reads` to the replica (with the tenant's schema); everything else,
    migrations included, to the primary (by answering None, or False for the replica)."""

    def db_for_read(self, model, **hints):
        if not _reads_on_replica.get() or connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        primary, replica = connections[DEFAULT_DB_ALIAS], connections[REPLICA]
        if (replica.schema_name, replica.include_public_schema) != (
            primary.schema_name,
            primary.include_public_schema,
        ):
            replica.set_tenant(primary.tenant, primary.include_public_schema)
        return REPLICA

    def db_for_write(self, model, **hints):
        _reads_on_replica.set(False)  # this request wrote: its later reads see the write
        # Explicitly the primary: a row read from the replica would otherwise be saved there.
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return False if db == REPLICA else None
