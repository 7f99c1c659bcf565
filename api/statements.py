"""Statements that PostgreSQL plans once per session: the hot reads' (`prepared_cursor`).

The hot paths run a few statements written once per process (the validation's licence, the User
Token with its row, a page of licences). Django's cursor binds their parameters on the client, so
PostgreSQL parses and plans each one on every request: for the validation's statement 0.3 ms of
planning against 0.07 ms of running it (`EXPLAIN (ANALYZE, SUMMARY)`), on the database server's
CPU. Bound on the server, psycopg prepares a statement once its text has run `PREPARE_THRESHOLD`
times (5) in a session, and PostgreSQL then reuses the plan. (Django turns preparing off for the
connection; its own cursors bind on the client, which never prepares, so turning it on again for
the session concerns these cursors only.)

Tenants stay apart: PostgreSQL parses a prepared statement again when the search_path changed
since its last use (9.3+), so the same text prepared for one tenant's schema never reads another's
tables (tests/licensing/test_prepared_statements.py). Behind a transaction pooler
(DATABASE_POOLING=transaction) a session outlives no transaction and nothing may be prepared: the
cursor is Django's own there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections
from django.db.backends.postgresql.base import ServerBindingCursor

PREPARE_THRESHOLD = 5  # psycopg's default: runs of one text in a session before it is prepared


@contextmanager
def prepared_cursor(alias: str) -> Iterator:
    """Django's cursor on `alias` (its search path, error translation and query log as usual)
    whose statements are bound on the server, so that psycopg prepares them (module notes)."""
    connection = connections[alias]
    if getattr(connection, "transaction_pooling", True):
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    session = connection.connection
    if session.prepare_threshold is None:
        # Django turns preparing off for the whole connection (poolers); its own cursors bind
        # on the client and never prepare, so this concerns this module's cursors only.
        session.prepare_threshold = PREPARE_THRESHOLD
    factory = session.cursor_factory
    session.cursor_factory = ServerBindingCursor  # Django's own, for server_side_binding
    try:
        cursor = connection.cursor()
    finally:
        session.cursor_factory = factory
    with cursor:
        yield cursor
