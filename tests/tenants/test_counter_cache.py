"""The PostgreSQL-backed counter cache (tenants.cache) that django-ratelimit uses without Redis."""

import os
import subprocess
import sys
import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import DataError, connection, connections
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tenants.cache import PostgresCounterCache
from tenants.models import RateCounter

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def counters():
    cache = PostgresCounterCache(
        "default",
        {"KEY_FUNCTION": "django_tenants.cache.make_key", "KEY_PREFIX": uuid.uuid4().hex[:8]},
    )
    cache.cull_probability = 0
    return cache


def let_expire(key: str) -> None:
    """Move a counter's expiry into the past by the database's clock (which the cache reads), so a
    test need not sleep until its timeout elapses."""
    past = ExpressionWrapper(Now() - timedelta(seconds=1), output_field=DateTimeField())
    assert RateCounter.objects.filter(key__endswith=f":{key}").update(expires_at=past) == 1


def test_add_only_when_absent_then_increment(counters):
    assert counters.add("hits", 1, 60) is True
    assert counters.add("hits", 1, 60) is False  # a live counter is never replaced
    assert counters.incr("hits") == 2
    assert counters.incr("hits", 5) == 7
    assert counters.decr("hits") == 6
    assert counters.get("hits") == 6
    assert counters.get("missing", "default") == "default"
    with pytest.raises(ValueError):
        counters.incr("missing")


def test_set_touch_delete_clear(counters):
    counters.set("a", 3, 60)
    counters.set("a", 4, 60)
    assert counters.get("a") == 4
    assert counters.touch("a", 120) is True
    assert counters.touch("missing", 120) is False
    assert counters.delete("a") is True
    assert counters.delete("a") is False
    counters.set("b", 1, None)  # never expires
    assert counters.has_key("b")
    counters.clear()
    assert not counters.has_key("b")


def test_expired_counters_are_absent(counters):
    counters.add("window", 9, 60)
    let_expire("window")
    assert counters.get("window") is None
    with pytest.raises(ValueError):
        counters.incr("window")
    assert counters.touch("window", 60) is False
    assert counters.add("window", 1, 60) is True  # the expired row is replaced atomically
    assert counters.incr("window") == 2


def test_count_creates_then_increments_in_one_statement(counters):
    """A rate-limit counter's step (django-ratelimit's add-then-incr), one upsert each time."""
    with CaptureQueriesContext(connection) as captured:
        assert counters.count("window", 1, 60) == 1
        assert counters.count("window", 1, 60) == 2
        assert counters.count("window", 3, 60) == 5
    statements = [q["sql"] for q in captured.captured_queries if "tenants_ratecounter" in q["sql"]]
    assert len(statements) == 3, statements  # (besides savepoints and the search path)
    counters.set("window", 5, 60)
    let_expire("window")  # expired: the next count starts a new window
    assert counters.count("window", 1, 60) == 1
    assert counters.get("window") == 1


def test_expired_rows_are_culled(counters):
    counters.add("old", 1, 60)
    let_expire("old")
    counters.cull_probability = 1
    counters.add("new", 1, 60)
    assert not RateCounter.objects.filter(key__endswith=":old").exists()
    assert RateCounter.objects.filter(key__endswith=":new").exists()


def test_only_integers_are_stored(counters):
    for value in ("1", 1.5, True, None):
        with pytest.raises(TypeError):
            counters.set("x", value)


def test_counters_live_in_the_public_schema_and_keys_carry_the_tenant(counters):
    with schema_context("alpha"):  # the connection's search_path is alpha's
        counters.add("requests", 1, 60)
        assert counters.incr("requests") == 2
    with schema_context("beta"):
        assert counters.get("requests") is None  # beta's key differs
        counters.add("requests", 1, 60)
    keys = set(RateCounter.objects.filter(key__endswith=":requests").values_list("key", flat=True))
    assert {key.split(":")[0] for key in keys} == {"alpha", "beta"}


def test_a_failing_statement_leaves_the_callers_transaction_usable(counters):
    counters.set("big", 2**62, 60)
    with pytest.raises(DataError):  # bigint overflow inside the caller's open transaction
        counters.incr("big", 2**62)
    assert counters.get("big") == 2**62
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_increments_from_concurrent_connections_are_never_lost(counters):
    """Each thread has its own database connection (committed, autocommit): no lost update."""
    threads, per_thread = 6, 25
    seen: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work():
        try:
            counters.add("shared", 0, 60)
            for _ in range(per_thread):
                value = counters.incr("shared")
                with lock:
                    seen.append(value)
            if counters.get("shared") == threads * per_thread:
                counters.delete("shared")  # the last one tidies the committed row away
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors
    assert sorted(seen) == list(range(1, threads * per_thread + 1))


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:6379/0"])
def test_ratelimit_system_checks_pass_with_only_w001_silenced_for_the_postgresql_counter(
    redis_url,
):
    env = {**os.environ, "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # django-redis is officially supported; our own backend's "not officially supported" (W001)
    # is silenced, as its increment is atomic. No error of django-ratelimit is ever silenced.
    assert "django_ratelimit" not in output
    settings_check = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings;"
            "print(settings.SILENCED_SYSTEM_CHECKS, settings.RATELIMIT_USE_CACHE)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    silenced = "'django_ratelimit.W001'" in settings_check.stdout
    assert silenced == (not redis_url), settings_check.stdout
    assert "django_ratelimit.E" not in settings_check.stdout
    assert "ratelimit" in settings_check.stdout
