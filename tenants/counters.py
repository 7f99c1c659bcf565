"""A request's counter operations in one round trip to the counter store.

A counted API request touches several counters: the tenant's licence counter (incremented), the
per-address abuse counter of its scope (read), and its User Token's usage counts (incremented,
stamped). Each used to be its own cache call (django-ratelimit alone makes two per counter,
`add` then `incr`). A `CounterBatch` collects them; `run()` sends them to Redis as ONE `EVALSHA`
of a small Lua script (registered once per server, loaded again on `NOSCRIPT`), which executes
them atomically in order. Without Redis (the PostgreSQL-backed counter of tenants.cache and the
in-process default cache), the same operations run one by one through the cache API; the
licence increment is then one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` statement.

The operations keep django-ratelimit's and the cache's semantics exactly: an increment creates a
missing counter with its timeout (`add`) and otherwise adds atomically (`incr`); values are
integers, which django-redis stores unencoded, so every other reader sees the same numbers.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from django.core.cache.backends.base import BaseCache
from django.db import connections

try:
    from django_redis.cache import RedisCache
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import DataError, NoScriptError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover - django-redis is a dependency; Redis itself is optional
    RedisCache = NoScriptError = ResponseError = DataError = None
    RedisConnectionError = RedisTimeoutError = None

logger = logging.getLogger(__name__)

# This process's id, kept up to date in a forked child: `os.getpid()` is a system call, and the
# per-process state below is checked on every round trip.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class Op(StrEnum):
    INCR = "incr"  # create with the timeout if missing, else add: the new value
    GET = "get"  # the value, 0 if missing
    SET = "set"  # set with the timeout: 1
    ADD = "add"  # set only if missing, with the timeout: 1 if it was set, else 0


# KEYS[i] is the i-th operation's key; ARGV holds (op, value, timeout in seconds) per operation.
SCRIPT = """
local results = {}
for i, key in ipairs(KEYS) do
  local op, value, ttl = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if op == 'incr' then
    if redis.call('SET', key, value, 'NX', 'EX', ttl) then
      results[i] = tonumber(value)
    else
      results[i] = redis.call('INCRBY', key, value)
    end
  elseif op == 'get' then
    results[i] = tonumber(redis.call('GET', key) or '0') or 0
  elseif op == 'set' then
    redis.call('SET', key, value, 'EX', ttl)
    results[i] = 1
  else
    results[i] = redis.call('SET', key, value, 'NX', 'EX', ttl) and 1 or 0
  end
end
return results
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


@dataclass
class _Operation:
    store: BaseCache
    op: Op
    key: str  # as given to the cache API
    stored_key: str  # as stored (the cache's key function applied: prefix, tenant schema)
    value: int
    timeout: int
    done: Callable[[int], None] | None


@dataclass
class CounterBatch:
    """Counter operations to run together; `run()` returns their results in order."""

    operations: list[_Operation] = field(default_factory=list)

    def add(
        self,
        store: BaseCache,
        op: Op,
        key: str,
        value: int = 0,
        timeout: int = 0,
        done: Callable[[int], None] | None = None,
    ) -> int:
        """Queue one operation; `done(result)` is called after the batch ran. Its index."""
        self.operations.append(
            _Operation(store, Op(op), key, store.make_key(key), int(value), int(timeout), done)
        )
        return len(self.operations) - 1

    def run(self) -> list[int]:
        """Run every queued operation (one round trip when they all live in one Redis)."""
        return self.start()()

    def start(self) -> Callable[[], list[int]]:
        """Send every queued operation now; the function returned reads their results (with
        Redis the packet is out, so a caller can wait for something else meanwhile: its reply
        waits in the socket). Read them before this thread's next round trip."""
        operations, self.operations = self.operations, []
        if not operations:
            return list
        redis_store = _shared_redis(operations)
        if redis_store is None:
            results = _run_each(operations)
            return lambda: results
        receive = _evalsha(redis_store, operations)

        def finish() -> list[int]:
            results = [int(r) for r in receive()]
            for operation, result in zip(operations, results, strict=True):
                if operation.done is not None:
                    operation.done(result)
            return results

        return finish


def _shared_redis(operations: list[_Operation]) -> BaseCache | None:
    """The django-redis cache all operations can go through, or None."""
    first = operations[0].store
    if RedisCache is None or not isinstance(first, RedisCache):
        return None
    for operation in operations[1:]:
        store = operation.store
        if store is not first and (
            not isinstance(store, RedisCache) or store._server != first._server  # noqa: SLF001
        ):
            return None
    return first


def _evalsha(store, operations: list[_Operation]) -> Callable[[], list]:
    """Send the script's EVALSHA; the function returned reads its result."""
    client = store.client.get_client(write=True)
    keys = [operation.stored_key for operation in operations]
    args = []
    for operation in operations:
        args += [operation.op.value, operation.value, max(1, operation.timeout)]
    receive = RoundTrip(client).evalsha(SCRIPT_SHA, len(keys), *keys, *args).start()

    def result() -> list:
        try:
            return receive()[0]
        except NoScriptError:  # a restarted or flushed Redis: register the script again
            client.script_load(SCRIPT)
            return client.evalsha(SCRIPT_SHA, len(keys), *keys, *args)

    return result


def increment(store: BaseCache, key: str, delta: int, timeout: int) -> int:
    """Add `delta` to a counter, creating it with `timeout` when missing: the new value."""
    count = getattr(store, "count", None)
    if count is not None:  # tenants.cache.PostgresCounterCache: one statement
        return count(key, delta, timeout)
    if store.add(key, delta, timeout):
        return delta
    try:
        return store.incr(key, delta)
    except ValueError:  # expired between the two calls: start again
        store.add(key, delta, timeout)
        return delta


def _run_each(operations: list[_Operation]) -> list[int]:
    """One by one; a store that fails skips its remaining operations, the other stores' still run
    (and report), then the first failure is raised."""
    results, failures = [], {}
    for operation in operations:
        store_id = id(operation.store)
        if store_id in failures:
            results.append(None)
            continue
        try:
            result = _run_one(operation)
        except Exception as error:  # noqa: BLE001 - re-raised below, once the rest has run
            failures[store_id] = error
            results.append(None)
            continue
        results.append(result)
        if operation.done is not None:
            operation.done(result)
    if failures:
        raise next(iter(failures.values()))
    return results


def _run_one(operation: _Operation) -> int:
    store, key = operation.store, operation.key
    if operation.op == Op.INCR:
        return increment(store, key, operation.value, operation.timeout)
    if operation.op == Op.GET:
        return int(store.get(key) or 0)
    if operation.op == Op.SET:
        store.set(key, operation.value, operation.timeout)
        return 1
    return int(store.add(key, operation.value, operation.timeout))


# --- Commands in one packet, without redis-py's per-command and Pipeline machinery.


def _encode(value) -> bytes:
    # As redis-py's Encoder (decode_responses off, UTF-8): bytes as they are, numbers by repr.
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    raise DataError(f"Invalid input of type: {type(value).__name__!r}")


def _pack(args: tuple) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if type(arg) is str else _encode(arg)
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class RoundTrip:
    """Redis commands sent as one packet and answered in order: a non-transactional pipeline
    (the same packet, replies, retries and errors as redis-py's) without its per-command work.
    The hot path's few commands only: their replies need no response callback."""

    def __init__(self, client):
        self.client = client
        self.commands: list[tuple] = []

    def __len__(self) -> int:
        return len(self.commands)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args) -> RoundTrip:
        self.commands.append(("EVALSHA", sha, numkeys, *keys_and_args))
        return self

    def rpush(self, name: str, *values) -> RoundTrip:
        self.commands.append(("RPUSH", name, *values))
        return self

    def sadd(self, name: str, *values) -> RoundTrip:
        self.commands.append(("SADD", name, *values))
        return self

    def defer(self, done: Callable[[list], None], failed: Callable[[Exception], None]) -> None:
        """Send the queued commands with the next round trip instead of now (see `Outbox`):
        `done(replies)` once they were answered (error replies in place), `failed(error)` if
        they could not be sent."""
        commands, self.commands = self.commands, []
        if commands:
            OUTBOX.put(self.client, commands, done, failed)

    def execute(self, raise_on_error: bool = True) -> list:
        """The replies in order; an error reply is raised (the first) or, with raise_on_error
        False, returned in its place. The commands deferred to this Redis go first, in the same
        packet."""
        return self.start(raise_on_error)()

    def start(self, raise_on_error: bool = True) -> Callable[[], list]:
        """`execute()` in two steps: the packet is sent now, the function returned reads the
        replies (read them before this thread's next round trip)."""
        deferred = OUTBOX.take(self.client)
        own, self.commands = self.commands, []
        if not own and not deferred:
            return list
        commands = [command for item in deferred for command in item.commands] + own
        try:
            receive = self._send(commands)
        except Exception as error:
            for item in deferred:
                item.fail(error)
            raise

        def finish() -> list:
            try:
                replies = receive()
            except Exception as error:
                for item in deferred:
                    item.fail(error)
                raise
            start = 0
            for item in deferred:
                item.answer(replies[start : start + len(item.commands)])
                start += len(item.commands)
            replies = replies[start:]
            if raise_on_error:
                for reply in replies:
                    if isinstance(reply, ResponseError):
                        raise reply
            return replies

        return finish

    def _send(self, commands: list[tuple]) -> Callable[[], list]:
        """Send the packet; the function returned reads the replies. A connection error on
        either side disconnects and retries the whole round trip, as redis-py's own calls do."""
        packet = b"".join(_pack(command) for command in commands)
        kept, connection = _round_trip_connection(self.client.connection_pool)

        def send() -> None:
            connection.send_packed_command([packet])

        def read() -> list:
            replies = []
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:
                    replies.append(error)
            return replies

        def again() -> list:
            send()
            return read()

        def settled(replies: list) -> list:
            if connection.should_reconnect():  # as redis-py: marked by a maintenance notice
                connection.disconnect()
            kept.done()
            return replies

        try:
            connection.retry.call_with_retry(send, lambda _: connection.disconnect())
        except BaseException:
            connection.disconnect()
            kept.done()
            raise

        def receive() -> list:
            try:
                try:
                    replies = read()
                except (RedisConnectionError, RedisTimeoutError):
                    connection.disconnect()
                    replies = connection.retry.call_with_retry(
                        again, lambda _: connection.disconnect()
                    )
            except BaseException:  # replies may be left unread: never reuse it as it is
                connection.disconnect()
                kept.done()
                raise
            return settled(replies)

        return receive


_pinned = threading.local()


class _Kept(dict):
    """One thread's kept connections ({id(pool): _KeptConnection}): given back to their pools
    when the thread ends and its locals go (a server may start a thread per request)."""

    def __del__(self):
        for kept in self.values():
            with contextlib.suppress(Exception):  # a pool that is gone has nothing to take back
                kept.pool.release(kept.connection)


@dataclass
class _KeptConnection:
    pool: object
    connection: object
    busy: bool = False  # between a round trip's send and its read

    def done(self) -> None:
        self.busy = False


class _Borrowed:
    """A connection of the pool for one round trip (the thread's kept one is busy)."""

    def __init__(self, pool):
        self.pool, self.connection = pool, pool.get_connection()

    def done(self) -> None:
        self.pool.release(self.connection)


def _round_trip_connection(pool) -> tuple[_KeptConnection | _Borrowed, object]:
    """This thread's connection of `pool` for round trips, taken from the pool once and kept.

    The pool's checkout (locks, observability counters, a poll of the socket for unread data)
    cost as much as packing the commands; a round trip always reads every reply, or disconnects,
    so the kept connection is ready for the next one. While it waits for a reply (`start()`), a
    round trip of the same thread borrows another. After a fork the pool starts again, and so
    does this."""
    connections = getattr(_pinned, "connections", None)
    if connections is None or _pinned.pid != _pid:
        connections = _pinned.connections = _Kept()
        _pinned.pid = _pid
    kept = connections.get(id(pool))
    if kept is None or kept.pool is not pool:  # (an id can be reused by a later pool)
        kept = connections[id(pool)] = _KeptConnection(pool, pool.get_connection())
    if kept.busy:
        borrowed = _Borrowed(pool)
        return borrowed, borrowed.connection
    kept.busy = True
    return kept, kept.connection


# --- Commands that need not be answered before the answer leaves


class ProcessThread:
    """A daemon thread started once per process, on first use (a forked worker starts its own),
    with `at_exit` registered to run when the process exits (atexit: a graceful worker exit, a
    restart, SIGTERM)."""

    def __init__(self, target: Callable, at_exit: Callable[[], object], name: str):
        self._target, self._at_exit, self._name = target, at_exit, name
        self._lock = threading.Lock()
        self._started_in: int | None = None  # the pid whose thread runs

    def start(self, *args) -> None:
        """Start it with `args` unless this process started it already."""
        if self._started_in == _pid:
            return
        with self._lock:
            if self._started_in == _pid:
                return
            self._started_in = _pid
        threading.Thread(target=self._target, args=args, daemon=True, name=self._name).start()
        atexit.register(self._at_exit)


@dataclass
class _Deferred:
    client: object
    commands: list[tuple]
    done: Callable[[list], None]
    failed: Callable[[Exception], None]

    def answer(self, replies: list) -> None:
        self._settle(self.done, replies)

    def fail(self, error: Exception) -> None:
        self._settle(self.failed, error)

    def _settle(self, callback, value) -> None:
        try:
            callback(value)
        except Exception:  # another request's round trip carried it: never that request's error
            logger.exception("Could not settle %d deferred Redis commands", len(self.commands))


class Outbox:
    """Redis commands a request owes but need not wait for: the give-back of an attempt that did
    not fail, the records it buffered (tenants.throttling, tenants.record_buffer).

    They ride the next round trip of this process to the same Redis, ahead of its own commands in
    its packet, so a warm request costs one round trip. When no request comes, a daemon thread
    sends them `DELAY` seconds later; the process's exit sends what is left (atexit: a graceful
    worker exit, a restart, SIGTERM). A worker killed with SIGKILL loses what it deferred last:
    its last request's commands, at most `DELAY` old."""

    DELAY = 0.05  # seconds

    def __init__(self):
        self._items: list[_Deferred] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = ProcessThread(self._run, self.flush, "redis-outbox")

    def put(self, client, commands: list[tuple], done, failed) -> None:
        with self._lock:
            self._items.append(_Deferred(client, commands, done, failed))
        self._start()
        self._wake.set()

    def take(self, client) -> list[_Deferred]:
        """The commands deferred to `client`'s Redis (taken: the caller sends them)."""
        if not self._items:
            return []
        pool = client.connection_pool
        with self._lock:
            taken = [item for item in self._items if item.client.connection_pool is pool]
            if taken:
                self._items = [i for i in self._items if i.client.connection_pool is not pool]
        return taken

    def flush(self) -> None:
        """Send every deferred command now (one round trip per Redis)."""
        while self._items:
            client = self._items[0].client
            try:
                RoundTrip(client).execute()
            except Exception:  # noqa: BLE001 - the items' own `failed` handled it
                logger.warning("Deferred Redis commands could not be sent", exc_info=True)

    def clear(self) -> None:
        with self._lock:
            self._items = []

    def __len__(self) -> int:
        return len(self._items)

    def _start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.DELAY)
            self._wake.clear()
            try:
                self.flush()
            finally:  # a failed push wrote its rows with this thread's database connection
                connections.close_all()


OUTBOX = Outbox()
