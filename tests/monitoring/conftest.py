"""Helpers for the monitoring tests: a client address of its own per test (alert and abuse
counters are kept per address in a cache that may outlive the test), and event lookups."""

import itertools
import random

import pytest
from django_tenants.utils import schema_context

from tokens.models import SecurityEvent

_addresses = itertools.count(random.randrange(0, 60_000))


def fresh_address() -> str:
    """A client address (198.18.0.0/15, the benchmarking range) no other test of the run uses."""
    n = next(_addresses) % 65_000
    return f"198.18.{n // 250}.{n % 250 + 1}"


@pytest.fixture
def address():
    return fresh_address()


def events(kind=None, schema="alpha", **filters):
    """The security events of a tenant, oldest first."""
    with schema_context(schema):
        queryset = SecurityEvent.objects.select_related("user_token", "actor").order_by("id")
        if kind is not None:
            queryset = queryset.filter(kind=kind)
        return list(queryset.filter(**filters))


def one_event(kind, schema="alpha", **filters):
    found = events(kind, schema, **filters)
    assert len(found) == 1, [(e.kind, e.reason, e.details) for e in events(schema=schema)]
    return found[0]
