"""Hostname → tenant resolution with a per-process cache, so a warm request costs no query.

Each server process keeps the tenants it has resolved, by hostname. Saving or deleting a Tenant or
a Domain through the ORM empties this process's cache at once and, when the transaction commits,
writes a new version number into the shared counter store (Redis, or PostgreSQL without it). Every process compares
the stamp with the one it last saw at most once per `TENANT_CACHE_CHECK_SECONDS` (1 s) and empties
its cache when it moved, so a licence change (`set_tenant_license`) or a removed domain reaches
every worker within that interval. Entries also expire after `TENANT_CACHE_MAX_AGE` (60 s): a
backstop for changes made without the ORM.

Nothing is cached inside a transaction: rows read there may still be rolled back (the test suite
runs every test in one).
"""

from __future__ import annotations

import copy
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

VERSION_KEY = "tenants:resolution-version"


def shared_cache():
    """The cache every worker shares: the rate-limit counter store (Redis, or PostgreSQL without
    it) when configured, else the default cache."""
    alias = getattr(settings, "TENANT_CACHE_ALIAS", None)
    if alias is None:
        alias = "ratelimit" if "ratelimit" in settings.CACHES else "default"
    return caches[alias]


def _shared_cache_call(method: str, *args):
    # django-tenants prefixes cache keys with the current schema; the stamp lives under public's.
    if connection.schema_name == get_public_schema_name():
        return getattr(shared_cache(), method)(VERSION_KEY, *args)
    with schema_context(get_public_schema_name()):
        return getattr(shared_cache(), method)(VERSION_KEY, *args)


def may_cache() -> bool:
    return not connection.in_atomic_block


class TenantResolutionCache:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._entries: dict[str, tuple[Tenant, float]] = {}
        self._lock = threading.Lock()
        self._seen_version: object = object()  # never equal to a stored stamp: the first check runs
        self._checked_at = -math.inf

    @staticmethod
    def _check_seconds() -> float:
        return getattr(settings, "TENANT_CACHE_CHECK_SECONDS", 1.0)

    @staticmethod
    def _max_age() -> float:
        return getattr(settings, "TENANT_CACHE_MAX_AGE", 60.0)

    def get(self, hostname: str, load: Callable[[str], Tenant]) -> Tenant:
        """The tenant for `hostname`: from this process's cache, else `load(hostname)` (which may
        raise DoesNotExist; unknown hosts are not cached). The cached Tenant is shared by the
        process's requests (no copy per request): read it, never change it in place; a change
        goes through the database, whose signal replaces the entry."""
        now = self._clock()
        if now - self._checked_at >= self._check_seconds():
            self._check_shared_version(now)
        entry = self._entries.get(hostname)
        if entry is not None and now - entry[1] < self._max_age():
            return entry[0]
        tenant = load(hostname)
        if may_cache():
            with self._lock:
                self._entries[hostname] = (copy.copy(tenant), now)
        return tenant

    def _check_shared_version(self, now: float) -> None:
        try:
            version = _shared_cache_call("get")
        except Exception:  # the shared cache is down: trust nothing cached, ask the database
            logger.warning("Tenant cache: the shared cache is unreachable", exc_info=True)
            version = object()
        with self._lock:
            self._checked_at = now
            if version != self._seen_version:
                self._entries.clear()
                self._seen_version = version

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


tenant_cache = TenantResolutionCache()


def publish_change() -> None:
    """Tell every process that tenants or domains changed (after the transaction commits)."""
    try:  # any new number will do; an integer, as the PostgreSQL counter store holds only those
        _shared_cache_call("set", secrets.randbits(62), None)
    except Exception:  # the other processes then catch up within TENANT_CACHE_MAX_AGE
        logger.exception("Tenant cache: could not publish a change to the shared cache")


@receiver(post_save, sender=Tenant, dispatch_uid="tenant-cache-tenant-saved")
@receiver(post_delete, sender=Tenant, dispatch_uid="tenant-cache-tenant-deleted")
@receiver(post_save, sender=Domain, dispatch_uid="tenant-cache-domain-saved")
@receiver(post_delete, sender=Domain, dispatch_uid="tenant-cache-domain-deleted")
def tenants_changed(sender, **kwargs) -> None:
    tenant_cache.clear()
    transaction.on_commit(publish_change)
