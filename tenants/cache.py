"""A cache backend for rate-limit counters in PostgreSQL, for deployments without Redis.

django-ratelimit needs a cache shared by every worker whose increment is atomic; Django's
database cache is not (it reads, then writes). Here every operation is one SQL statement on the
`RateCounter` table of the public schema: `add` is an `INSERT ... ON CONFLICT DO UPDATE ...
RETURNING` that replaces only an expired row, `incr` an `UPDATE ... RETURNING` whose row lock
serialises concurrent increments, and `count` (add if missing, else increment: a rate-limit
counter's one step) an `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`. Expired rows count as
absent and are culled now and then.

Values are integers (counters), nothing else. Configure it as a separate alias::

    CACHES["ratelimit"] = {"BACKEND": "tenants.cache.PostgresCounterCache", "LOCATION": "default"}

LOCATION names the database alias (default "default"). Statements run on that alias's connection
(in a savepoint when a transaction is open, so a failure never breaks the caller's transaction).
"""

from __future__ import annotations

import random

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django_tenants.utils import get_public_schema_name

from tenants.models import RateCounter

MAX_KEY_LENGTH = RateCounter._meta.get_field("key").max_length

# The statements, each one atomic; {table} is the qualified table name. A row is live while its
# expiry is NULL (never) or in the future; a timeout of NULL seconds gives a NULL expiry.
SQL_ADD = """
    INSERT INTO {table} AS c (key, value, expires_at)
    VALUES (%s, %s, statement_timestamp() + %s::double precision * interval '1 second')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
    WHERE c.expires_at <= statement_timestamp()
    RETURNING c.value"""
# An increment that creates a missing (or expired) counter: add-then-incr in one statement.
SQL_COUNT = """
    INSERT INTO {table} AS c (key, value, expires_at)
    VALUES (%s, %s, statement_timestamp() + %s::double precision * interval '1 second')
    ON CONFLICT (key) DO UPDATE SET
        value = CASE WHEN c.expires_at <= statement_timestamp()
            THEN EXCLUDED.value ELSE c.value + EXCLUDED.value END,
        expires_at = CASE WHEN c.expires_at <= statement_timestamp()
            THEN EXCLUDED.expires_at ELSE c.expires_at END
    RETURNING c.value"""
SQL_SET = """
    INSERT INTO {table} AS c (key, value, expires_at)
    VALUES (%s, %s, statement_timestamp() + %s::double precision * interval '1 second')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at"""
SQL_GET = """
    SELECT value FROM {table}
    WHERE key = %s AND (expires_at IS NULL OR expires_at > statement_timestamp())"""
SQL_TOUCH = """
    UPDATE {table}
    SET expires_at = statement_timestamp() + %s::double precision * interval '1 second'
    WHERE key = %s AND (expires_at IS NULL OR expires_at > statement_timestamp())"""
SQL_INCR = """
    UPDATE {table} SET value = value + %s
    WHERE key = %s AND (expires_at IS NULL OR expires_at > statement_timestamp())
    RETURNING value"""
SQL_DELETE = """
    DELETE FROM {table} WHERE key = %s
    RETURNING (expires_at IS NULL OR expires_at > statement_timestamp())"""
SQL_CULL = "DELETE FROM {table} WHERE expires_at <= statement_timestamp()"
SQL_CLEAR = "DELETE FROM {table}"


class PostgresCounterCache(BaseCache):
    def __init__(self, location: str, params: dict):
        super().__init__(params)
        self.database = location or DEFAULT_DB_ALIAS
        options = params.get("OPTIONS", {})
        # Share of writes that also delete expired rows.
        self.cull_probability = float(options.get("CULL_PROBABILITY", 0.01))

    # --- plumbing

    @property
    def table(self) -> str:
        quote = connections[self.database].ops.quote_name
        # Qualified: the connection's search_path is whichever tenant the request is for.
        return f"{quote(get_public_schema_name())}.{quote(RateCounter._meta.db_table)}"

    def _execute(self, statement: str, params: tuple) -> tuple[list, int]:
        sql = statement.format(table=self.table)
        connection = connections[self.database]
        if connection.in_atomic_block:
            with transaction.atomic(using=self.database), connection.cursor() as cursor:
                return self._run(cursor, sql, params)
        with connection.cursor() as cursor:
            return self._run(cursor, sql, params)

    @staticmethod
    def _run(cursor, sql: str, params: tuple) -> tuple[list, int]:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        return rows, cursor.rowcount

    def _key(self, key, version) -> str:
        key = self.make_and_validate_key(key, version=version)
        if len(key) > MAX_KEY_LENGTH:
            raise ValueError(f"Cache key longer than {MAX_KEY_LENGTH} characters: {key[:40]}...")
        return key

    def _seconds(self, timeout) -> float | None:
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        return None if timeout is None else float(timeout)

    @staticmethod
    def _integer(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"PostgresCounterCache stores integers only, not {type(value).__name__}"
            )
        return value

    def _maybe_cull(self) -> None:
        if random.random() < self.cull_probability:  # noqa: S311 - not security relevant
            self._execute(SQL_CULL, ())

    # --- the cache API

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        key, value = self._key(key, version), self._integer(value)
        rows, _ = self._execute(SQL_ADD, (key, value, self._seconds(timeout)))
        if rows:
            self._maybe_cull()
        return bool(rows)

    def get(self, key, default=None, version=None):
        rows, _ = self._execute(SQL_GET, (self._key(key, version),))
        return rows[0][0] if rows else default

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        key, value = self._key(key, version), self._integer(value)
        self._execute(SQL_SET, (key, value, self._seconds(timeout)))
        self._maybe_cull()

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        _, count = self._execute(SQL_TOUCH, (self._seconds(timeout), self._key(key, version)))
        return count == 1

    def incr(self, key, delta=1, version=None) -> int:
        rows, _ = self._execute(SQL_INCR, (self._integer(delta), self._key(key, version)))
        if not rows:
            raise ValueError(f"Key '{key}' not found")
        return rows[0][0]

    def count(self, key, delta=1, timeout=DEFAULT_TIMEOUT, version=None) -> int:
        """Add `delta`, creating the counter with `timeout` if it is missing: the new value."""
        key, delta = self._key(key, version), self._integer(delta)
        rows, _ = self._execute(SQL_COUNT, (key, delta, self._seconds(timeout)))
        if rows[0][0] == delta:
            self._maybe_cull()
        return rows[0][0]

    def delete(self, key, version=None) -> bool:
        rows, _ = self._execute(SQL_DELETE, (self._key(key, version),))
        return bool(rows and rows[0][0])

    def clear(self) -> None:
        self._execute(SQL_CLEAR, ())
