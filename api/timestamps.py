"""psycopg's compiled `timestamptz` loader for the hot reads.

Django registers a loader of its own on every connection, a Python subclass of psycopg's
pure-Python one that only sets the tzinfo: ~3 us per value (a page of 50 licences loads ~200).
psycopg's compiled loader returns the same instants in the session's time zone (Django sets it to
the connection's); whatever presents them converts them to the current zone first, as Django's
own do, so the answers are the same text (tests/licensing/test_license_representation.py).
A page of licences, in a UTC session, loads them as PostgreSQL's text instead (cheaper still to
present: tests/licensing/test_license_pages.py).
"""

import zoneinfo

import psycopg
from psycopg.types.string import TextLoader

UTC = zoneinfo.ZoneInfo("UTC")

COMPILED_TIMESTAMPTZ = psycopg.adapters.get_loader(
    psycopg.adapters.types["timestamptz"].oid, psycopg.pq.Format.TEXT
)


def use_compiled_timestamps(cursor) -> None:
    """`cursor` (Django's cursor wrapper) loads timestamptz with the compiled loader."""
    cursor.cursor.adapters.register_loader("timestamptz", COMPILED_TIMESTAMPTZ)


def use_utc_text_timestamps(cursor, zone) -> bool:
    """`cursor` loads timestamptz as PostgreSQL's text if that text is UTC's ISO 8601 (a UTC
    session with the ISO DateStyle) and `zone`, the current one, is UTC (True); with the compiled
    loader otherwise (False)."""
    info = cursor.cursor.connection.info
    if (
        zone is UTC
        and info.parameter_status("TimeZone") == "UTC"
        and (info.parameter_status("DateStyle") or "").startswith("ISO")
    ):
        cursor.cursor.adapters.register_loader("timestamptz", TextLoader)
        return True
    use_compiled_timestamps(cursor)
    return False
