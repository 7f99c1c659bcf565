"""Buffered records: rows the request path owes the database, written in batches off the path.

The validation record of `POST /v1/licenses/validate` and the security event of a token exchange
are not inserted (and committed) by the request that causes them. `buffer_record()` queues the row,
with a fresh `request_id`, and `drain_buffered_records()` writes what is queued: per tenant and
table ONE multi-row `INSERT ... ON CONFLICT (request_id) DO NOTHING`, so a batch written twice
(a drain that died after its commit) is written once: at-least-once delivery, exactly-once rows.

Where the queue lives:

- **With Redis** (the counter store, with REDIS_URL): a list per tenant. In an API request the
  `RPUSH` is deferred (`deferred_pushes`) with the abuse throttle's give-back and rides the next
  round trip of the process, or a daemon thread's within 50 ms, or the exit's
  (tenants.counters.Outbox): a warm request costs one round trip, a worker restarted (SIGTERM)
  loses nothing, one killed by SIGKILL loses its last request's record. A periodic job drains the
  lists: `manage.py drain_records --every 2` (or `drain_buffered_records()` from a task queue). A drain holds a per-tenant lock in Redis; it reads a batch, commits it, then trims exactly what it read.
  The list is bounded: past `RECORD_BUFFER_MAX` rows (the drain is not running) the request that
  finds it full drains its tenant itself. Redis unreachable: the row is written at once.
- **Without Redis** (the embedded default): an in-process queue, written by a daemon thread every
  `RECORD_BUFFER_SECONDS`, by the request that fills it to `RECORD_BUFFER_SIZE`, and at process
  exit (`atexit`: gunicorn's graceful worker exit, a restart, SIGTERM). A worker killed with
  SIGKILL loses at most its last `RECORD_BUFFER_SECONDS` of records; `drain_buffered_records()`
  writes this process's queue.

Readers (monitoring, the security dashboard, the reports) see a record once it is drained; the
dashboard and `monitoring.events.catch_up` drain the tenant first.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import ForeignKey, Model
from django_tenants.utils import schema_context

from tenants.counters import OUTBOX, ProcessThread, RedisCache, RoundTrip

logger = logging.getLogger(__name__)

REQUEST_ID = "request_id"  # the unique column of every buffered model
LOCK_SECONDS = 60


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime):
            return o.isoformat()  # to the microsecond (DjangoJSONEncoder keeps milliseconds)
        return super().default(o)


def _prefix() -> str:
    return settings.RECORD_BUFFER_PREFIX


def _list_key(schema: str) -> str:
    return f"{_prefix()}:{schema}"


def _schemas_key() -> str:
    return f"{_prefix()}:schemas"


def _redis():
    """The Redis client of the counter store (settings.RATELIMIT_USE_CACHE), or None when the
    counter store is not Redis."""
    store = caches[settings.RATELIMIT_USE_CACHE]
    if RedisCache is None or not isinstance(store, RedisCache):
        return None
    return store.client.get_client(write=True)


# The Redis pushes a request defers to its last round trip (see `deferred_pushes`): (schema,
# entry) pairs, or None outside such a request (pushed at once).
_deferred: ContextVar[list[tuple[str, str]] | None] = ContextVar("deferred_pushes", default=None)


def queue_entry(model: type[Model], fields: dict) -> str:
    """One queued row, as Redis and the in-process queue keep it."""
    return json.dumps({"model": model._meta.label_lower, "fields": fields}, cls=_Encoder)


def buffer_record(model: type[Model], **fields) -> str:
    """Queue one row of `model` for the current tenant's schema; its request id."""
    fields.setdefault(REQUEST_ID, str(uuid.uuid4()))
    schema = connection.schema_name
    entry = queue_entry(model, fields)
    client = _redis()
    if client is None:
        _local.push(schema, entry)
        return fields[REQUEST_ID]
    deferred = _deferred.get()
    if deferred is not None:  # pushed with the request's settling round trip, before the answer
        deferred.append((schema, entry))
        return fields[REQUEST_ID]
    _push(client, [(schema, entry)])
    return fields[REQUEST_ID]


def _push(client, entries: list[tuple[str, str]]) -> None:
    """Push (schema, entry) pairs in one round trip; Redis unreachable: written at once."""
    pipe = RoundTrip(client)
    lengths = queue_pushes(pipe, entries)
    try:
        results = pipe.execute()
    except Exception:  # noqa: BLE001 - the rows must not be lost: written now
        pushes_failed(entries)
    else:
        pushes_done(client, lengths, results)


@contextmanager
def deferred_pushes():
    """Within it (an API request, TenantLicenceMiddleware), `buffer_record` keeps its Redis pushes
    for `take_deferred()`, which the request's settlement defers with the abuse throttle's
    give-back to the next round trip (tenants.throttling); whatever is left at the end is pushed
    then."""
    token = _deferred.set([])
    try:
        yield
    finally:
        left = _deferred.get() or []
        _deferred.reset(token)
        client = _redis() if left else None
        if client is not None:
            _push(client, left)


def take_deferred() -> list[tuple[str, str]]:
    """The pushes deferred so far in this request (taken: the caller sends them)."""
    deferred = _deferred.get()
    if not deferred:
        return []
    taken = list(deferred)
    deferred.clear()
    return taken


def _by_schema(entries: list[tuple[str, str]]) -> dict[str, list[str]]:
    by_schema: dict[str, list[str]] = {}
    for schema, entry in entries:
        by_schema.setdefault(schema, []).append(entry)
    return by_schema


def queue_pushes(pipe, entries: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """Queue the pushes of (schema, entry) pairs on a Redis pipeline (RPUSH per tenant, one SADD
    of the tenants): (schema, index of its RPUSH's result) per tenant, for `pushes_done`."""
    by_schema = _by_schema(entries)
    start = len(pipe)
    lengths = []
    for i, (schema, rows) in enumerate(by_schema.items()):
        pipe.rpush(_list_key(schema), *rows)
        lengths.append((schema, start + i))
    if by_schema:
        pipe.sadd(_schemas_key(), *by_schema)
    return lengths


def pushes_done(client, lengths: list[tuple[str, int]], results: list) -> None:
    """After the pipeline ran: a tenant whose list passed RECORD_BUFFER_MAX is drained now."""
    for schema, index in lengths:
        if results[index] > settings.RECORD_BUFFER_MAX:
            _drain_redis_schema(client, schema)


def pushes_failed(entries: list[tuple[str, str]]) -> None:
    """Redis unreachable: the rows must not be lost, they are written at once (a push that did
    reach Redis is written once anyway: ON CONFLICT (request_id) DO NOTHING)."""
    logger.warning("Record buffer unreachable; writing %d rows at once", len(entries))
    for schema, rows in _by_schema(entries).items():
        write_entries(schema, rows)


def drain_buffered_records(schema: str | None = None) -> int:
    """Write the queued rows of `schema` (default: every tenant): how many were written."""
    written = _local.drain(schema)
    client = _redis()
    if client is None:
        return written
    OUTBOX.flush()  # this process's deferred pushes first
    schemas = [schema] if schema else sorted(s.decode() for s in client.smembers(_schemas_key()))
    for name in schemas:
        try:
            written += _drain_redis_schema(client, name)
        except Exception:  # one tenant's problem must not stop the others' records
            logger.exception("Could not drain the buffered records of %s", name)
    return written


def discard_buffered_records() -> None:
    """Forget every queued row without writing it (tests: a rolled-back database's leftovers)."""
    _local.clear()
    OUTBOX.clear()
    client = _redis()
    if client is not None:
        schemas = [s.decode() for s in client.smembers(_schemas_key())]
        client.delete(_schemas_key(), *[_list_key(s) for s in schemas])


def _drain_redis_schema(client, schema: str) -> int:
    lock = f"{_prefix()}:lock:{schema}"
    if not client.set(lock, os.getpid(), nx=True, ex=LOCK_SECONDS):
        return 0  # another drain is writing this tenant's rows now
    written = 0
    try:
        key = _list_key(schema)
        while entries := client.lrange(key, 0, settings.RECORD_BUFFER_SIZE - 1):
            written += write_entries(schema, entries)
            client.ltrim(key, len(entries), -1)  # only pushes at the tail happen meanwhile
    finally:
        client.delete(lock)
    return written


# --- Writing: one multi-row INSERT per table


def write_entries(schema: str, entries: list) -> int:
    """Write queued rows of one tenant (ON CONFLICT DO NOTHING): how many were new."""
    by_model: dict[str, list[dict]] = {}
    for entry in entries:
        item = json.loads(entry)
        by_model.setdefault(item["model"], []).append(item["fields"])
    written = 0
    with schema_context(schema), transaction.atomic():
        for label, rows in by_model.items():
            written += _insert(apps.get_model(label), rows)
    return written


def _insert(model: type[Model], rows: list[dict]) -> int:
    """`INSERT INTO t (...) SELECT ... FROM unnest(<one array per column>) ON CONFLICT
    (request_id) DO NOTHING`: one parameter per column, whatever the number of rows (a VALUES list
    of one placeholder per value cost more to split and parse than to insert); a foreign key whose
    row was deleted meanwhile is stored as NULL (as on_delete would have)."""
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: it is read once per value below
    quote = db.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    arrays = ", ".join(f"%s::{f.cast_db_type(db)}[]" for f in fields)
    selected = []
    for f in fields:
        if isinstance(f, ForeignKey):
            target = f.target_field
            selected.append(
                f"(SELECT {quote(target.column)} FROM {quote(target.model._meta.db_table)} "  # noqa: S608
                f"WHERE {quote(target.column)} = v.{quote(f.column)})"
            )
        else:
            selected.append(f"v.{quote(f.column)}")
    values: list[list] = [[] for _ in fields]
    for row in rows:
        instance = model(**row)
        for column, f in zip(values, fields, strict=True):
            column.append(f.get_db_prep_save(f.pre_save(instance, add=False), db))
    table = quote(model._meta.db_table)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {', '.join(selected)} "  # noqa: S608
        f"FROM unnest({arrays}) AS v ({columns}) "
        f"ON CONFLICT ({quote(REQUEST_ID)}) DO NOTHING"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.rowcount


# --- The in-process queue (no Redis)


class LocalQueue:
    """This process's queued rows: (schema, entry) pairs, written by a daemon thread."""

    def __init__(self):
        self._entries: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        # Held for a whole drain, taking and writing: the exit's drain waits for the thread's, whose
        # rows are out of the queue but not yet written (they would die with the daemon thread).
        self._draining = threading.Lock()
        self._thread = ProcessThread(self._run, self._at_exit, "record-buffer")

    def push(self, schema: str, entry: str) -> None:
        # Under the lock: a drain sorting the queue replaces it (a row added meanwhile was lost).
        with self._lock:
            self._entries.append((schema, entry))
            queued = len(self._entries)
        self._start()
        if queued >= settings.RECORD_BUFFER_SIZE:
            self.drain()

    def drain(self, schema: str | None = None) -> int:
        with self._draining:
            return self._drain(schema)

    def _drain(self, schema: str | None) -> int:
        with self._lock:
            taken, kept = [], deque()
            for item in self._entries:
                (taken if schema is None or item[0] == schema else kept).append(item)
            self._entries = kept
        by_schema: dict[str, list[str]] = {}
        for name, entry in taken:
            by_schema.setdefault(name, []).append(entry)
        written = 0
        for name, entries in by_schema.items():
            try:
                written += write_entries(name, entries)
            except Exception:  # the database is away: keep them for the next drain
                logger.exception("Could not write %d buffered records of %s", len(entries), name)
                with self._lock:
                    self._entries.extendleft((name, e) for e in reversed(entries))
        return written

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _start(self) -> None:
        interval = settings.RECORD_BUFFER_SECONDS
        if interval > 0:
            self._thread.start(interval)

    def _run(self, interval: float) -> None:
        while True:
            time.sleep(interval)
            try:
                self.drain()
            finally:
                connection.close_if_unusable_or_obsolete()

    def _at_exit(self) -> None:
        # Even with the queue empty: the thread may hold a batch it took and has not written yet,
        # and it dies with the interpreter; the drain lock waits for it.
        self.drain()


_local = LocalQueue()
