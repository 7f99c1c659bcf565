"""Usage per token: requests per day and per-permission last use, counted in the cache and
flushed at most about once a minute, never a database write per request."""

import io
import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache, caches
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from monitoring import usage
from monitoring.models import TokenPermissionUsage, TokenUsageDay
from tenants import throttling

pytestmark = pytest.mark.django_db

MONITORING_TABLES = ("tokens_tokenusageday", "tokens_tokenpermissionusage", "tokens_securityevent")


def stored_requests(token) -> int:
    with schema_context("alpha"):
        return sum(
            TokenUsageDay.objects.filter(user_token=token).values_list("requests", flat=True)
        )


def exercised(token) -> dict:
    with schema_context("alpha"):
        return dict(
            TokenPermissionUsage.objects.filter(user_token=token).values_list(
                "permission", "last_used_at"
            )
        )


def end_interval(token):
    """What a minute passing does: the token's flush interval is over."""
    with schema_context("alpha"):
        cache.delete(usage._interval_key(token))


def flush(token):
    with schema_context("alpha"):
        return usage.flush_tokens([token])


def test_each_permission_keeps_its_last_exercised_time(api_client):
    caller = api_client("alpha", ["view_users", "view_licenses", "view_products"])
    before = timezone.now().replace(microsecond=0)
    assert caller.get("/v1/users").status_code == 200
    assert caller.get("/v1/licenses").status_code == 200
    assert caller.get("/v1/auth/me").status_code == 200  # requires no permission
    assert exercised(caller.user_token) == {}  # still in the cache
    flush(caller.user_token)
    times = exercised(caller.user_token)
    assert set(times) == {"view_users", "view_licenses"}  # view_products never exercised
    assert all(before <= when <= timezone.now() for when in times.values())
    assert stored_requests(caller.user_token) == 3


def test_a_later_use_moves_the_time_forward_and_never_back(api_client):
    caller = api_client("alpha", ["view_users"])
    token = caller.user_token
    with schema_context("alpha"):
        old = timezone.now() - timedelta(days=30)
        TokenPermissionUsage.objects.create(
            user_token=token, permission="view_users", last_used_at=old
        )
        usage.count_request(token, ["view_users"], now=old - timedelta(days=1))  # a late write
        usage.flush_tokens([token])
        assert exercised(token)["view_users"] == old
        caller.get("/v1/users")
        usage.flush_tokens([token])
        assert exercised(token)["view_users"] > timezone.now() - timedelta(minutes=1)


def test_requests_are_flushed_by_a_request_once_the_interval_is_over(api_client):
    caller = api_client("alpha", ["view_users"])
    token = caller.user_token
    for _ in range(5):
        caller.get("/v1/users")
    assert stored_requests(token) == 0  # within the interval: cache only
    end_interval(token)
    caller.get("/v1/users")  # finds the interval over: writes the six pending requests
    assert stored_requests(token) == 6
    assert set(exercised(token)) == {"view_users"}
    caller.get("/v1/users")
    assert stored_requests(token) == 6  # a new interval started: pending again


def test_counts_arriving_during_a_flush_stay_pending(api_client):
    caller = api_client("alpha", ["view_users"])
    token = caller.user_token
    with schema_context("alpha"):
        key = usage._requests_key(token, timezone.now().date())
        usage.incr(cache, key, 60, delta=4)
        real_get_many = cache.get_many

        def get_many_then_more_requests(keys):
            values = real_get_many(keys)
            usage.incr(cache, key, 60, delta=2)  # two requests counted meanwhile
            return values

        cache.get_many = get_many_then_more_requests
        try:
            usage.flush_tokens([token])
        finally:
            del cache.get_many
        assert stored_requests(token) == 4
        assert cache.get(key) == 2
        usage.flush_tokens([token])
    assert stored_requests(token) == 6


def test_flush_usage_command_writes_quiet_tokens(api_client):
    caller = api_client("alpha", ["view_users"])
    caller.get("/v1/users")
    caller.get("/v1/users")
    assert stored_requests(caller.user_token) == 0
    out = io.StringIO()
    call_command("flush_usage", "--tenant", "alpha", stdout=out)
    assert stored_requests(caller.user_token) == 2
    assert "alpha: " in out.getvalue()


def test_usage_is_per_tenant(api_client):
    alpha = api_client("alpha", ["view_users"])
    beta = api_client("beta", ["view_users"])
    alpha.get("/v1/users")
    beta.get("/v1/users")
    beta.get("/v1/users")
    with schema_context("beta"):
        usage.flush_tenant()
        assert TokenUsageDay.objects.get(user_token_id=beta.user_token.pk).requests == 2
        assert not TokenUsageDay.objects.filter(user_token_id=alpha.user_token.pk).exists()
    with schema_context("alpha"):
        usage.flush_tenant()
    assert stored_requests(alpha.user_token) == 1


# Statements that come and go on their own clocks, independently of usage counting: tenant
# resolution re-checks a shared version stamp (tenants.resolution); the licence counter takes one
# statement fewer when its window rolls over; last use is written once a minute (mark_used).
BACKGROUND = ("SAVEPOINT", "RELEASE SAVEPOINT", "SET search_path", 'UPDATE "tokens_usertoken"')
BACKGROUND_TABLES = ("tenants_domain", "resolution-version", "tenants_ratecounter")


def queries_of(client, path="/v1/auth/me"):
    """The statements a request runs, without tenant-resolution and savepoint bookkeeping."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return [
        q["sql"]
        for q in captured
        if not q["sql"].strip().startswith(BACKGROUND)
        and not any(table in q["sql"] for table in BACKGROUND_TABLES)
    ]


@pytest.fixture
def no_random_cull(monkeypatch):
    """The PostgreSQL rate-limit counter deletes expired rows on a random 1% of writes."""
    counters = caches[getattr(settings, "RATELIMIT_USE_CACHE", None) or "default"]
    if hasattr(counters, "cull_probability"):
        monkeypatch.setattr(counters, "cull_probability", 0.0)


def test_counting_adds_no_query_to_a_hot_endpoint(api_client, settings, no_random_cull):
    caller = api_client("alpha", ["view_users"])
    settings.USAGE_TRACKING = True
    queries_of(caller)  # the token's first request: starts its flush interval
    tracked = [len(queries_of(caller)) for _ in range(20)]
    settings.USAGE_TRACKING = False
    untracked = [len(queries_of(caller)) for _ in range(5)]
    assert set(tracked) == set(untracked) and len(set(tracked)) == 1, (tracked, untracked)
    settings.USAGE_TRACKING = True
    assert stored_requests(caller.user_token) == 0


def test_under_load_no_request_writes_usage_rows(api_client, no_random_cull):
    caller = api_client("alpha", ["view_users"])
    statements = []
    per_request = set()
    for _ in range(50):
        queries = queries_of(caller, "/v1/users")
        per_request.add(len(queries))
        statements += queries
    assert len(per_request) == 1
    assert not [sql for sql in statements if any(t in sql for t in MONITORING_TABLES)]
    flush(caller.user_token)
    assert stored_requests(caller.user_token) == 50


def test_the_flush_itself_is_a_handful_of_statements(api_client):
    caller = api_client("alpha", ["view_users", "view_licenses"])
    caller.get("/v1/users")
    caller.get("/v1/licenses")
    with schema_context("alpha"), CaptureQueriesContext(connection) as captured:
        usage.flush_tokens([caller.user_token])
    writes = [q["sql"] for q in captured if q["sql"].startswith("INSERT")]
    assert len(writes) == 3  # one day row, two permissions


def test_a_broken_cache_never_breaks_a_request(api_client, settings, caplog):
    caller = api_client("alpha", ["view_users"])
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
            "KEY_FUNCTION": "django_tenants.cache.make_key",
        },
    }
    throttling._last_store_error_logged = 0.0
    with caplog.at_level(logging.ERROR):
        answers = [caller.get("/v1/users") for _ in range(5)]
    assert [answer.status_code for answer in answers] == [200] * 5
    # The licence counter (another store) still counted every request.
    remaining = [int(answer["X-RateLimit-Remaining"]) for answer in answers]
    assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 5
    errors = [r for r in caplog.records if "counter store unavailable" in r.getMessage()]
    assert len(errors) == 1  # logged once in a while, not per request
