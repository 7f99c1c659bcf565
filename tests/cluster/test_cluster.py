"""The deployment of docs/deployment.md, on the local cluster (tests/cluster/conftest.py): two app
hosts behind HAProxy, pgbouncer in transaction mode, a primary and a delayed streaming replica.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.cluster.conftest import ABUSE_RATE, REPLICA_DELAY
from tests.servers import AppServer

pytestmark = pytest.mark.cluster

CLIENTS = 12  # client threads; pgbouncer has 2 server sessions for all of them


@pytest.fixture(scope="module")
def tenants(cluster):
    """Two tenants, each with two tokens, one product and one licence of its own."""
    pair = [cluster.seed("tenant", name, "100000") for name in ("north", "south")]
    for tenant in pair:
        tenant["tokens"] = [cluster.access_token(tenant, i) for i in range(2)]
    time.sleep(REPLICA_DELAY + 1)  # lists are read from the replica: let it catch up
    return pair


def wrong_answers(request, tenants, rounds: int) -> list:
    """Hammer both tenants concurrently (product lists and licence validations, interleaved);
    every answer that is not 200 with exactly that tenant's own data."""

    def one(i):
        tenant = tenants[i % 2]
        if i % 4 < 2:
            status, _, body = request(
                "GET", "/v1/products", host=tenant["domain"], token=tenant["tokens"][0]
            )
            ok = status == 200 and [p["code"] for p in body["results"]] == [tenant["product"]]
        else:
            status, _, body = request(
                "POST", "/v1/licenses/validate", host=tenant["domain"], body={"key": tenant["key"]}
            )
            ok = status == 200 and body["valid"] and body["license"]["product"] == tenant["product"]
        return None if ok else (tenant["schema"], status, body)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return [answer for answer in pool.map(one, range(rounds)) if answer]


def test_tenants_stay_isolated_through_transaction_pooling(cluster, tenants):
    """DATABASE_POOLING=transaction (the cluster's setting): not one answer from another schema."""
    assert wrong_answers(cluster.request, tenants, 400) == []


def test_the_remembered_search_path_breaks_under_transaction_pooling(cluster, tenants, tmp_path):
    """The same load on servers WITHOUT DATABASE_POOLING behind the same pgbouncer: the
    search-path memory then runs statements in another tenant's schema, so the isolation test
    above would catch it."""
    env = {
        **cluster.app_env,
        "PATH": cluster.env["PATH"],
        "DATABASE_POOLING": "",
        "LOG_LEVEL": "ERROR",
    }
    env.pop("DATABASE_REPLICA_URL")  # primary only: the path memory is what is tested
    server = AppServer(env, tmp_path / "unpooled.log", range(38100, 38200), workers=4).start()
    try:

        def direct(method, path, *, host, body=None, token=None):
            headers = {"Authorization": f"Bearer {token}"} if token else None
            status, answer_headers, raw = server.request(
                method, path, host=host, body=body, headers=headers
            )
            import json

            try:
                return status, answer_headers, json.loads(raw)
            except ValueError:
                return status, answer_headers, raw

        wrong = wrong_answers(direct, tenants, 400)
    finally:
        server.stop()
    assert wrong, "expected cross-schema answers with the search-path memory behind pgbouncer"


def test_licence_limit_is_exact_across_both_hosts(cluster):
    limit, extra = 24, 9
    tenant = cluster.seed("tenant", "limited", str(limit))
    before = cluster.served_by_host()

    def one(i):
        return cluster.request(
            "POST", "/v1/licenses/validate", host=tenant["domain"], body={"key": tenant["key"]}
        )[0]

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        statuses = Counter(pool.map(one, range(limit + extra)))

    after = cluster.served_by_host()
    print(f"\n{dict(statuses)}, served: { ({h: after[h] - before[h] for h in after}) }")
    assert statuses == {200: limit, 429: extra}
    assert all(after[host] - before[host] >= (limit + extra) // 3 for host in ("app1", "app2"))


def test_abuse_throttle_keys_on_the_client_address_behind_haproxy(cluster):
    tenant = cluster.seed("tenant", "abuse", "100000")

    def guess(source, headers=None):
        return cluster.request(
            "POST",
            "/v1/licenses/validate",
            host=tenant["domain"],
            body={"key": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"},
            source=source,
            headers=headers,
        )[0]

    # 127.0.0.2 fails ABUSE_RATE times (spread over both hosts), then is refused...
    assert [guess("127.0.0.2") for _ in range(ABUSE_RATE)] == [200] * ABUSE_RATE
    assert guess("127.0.0.2") == 429
    # ...also when it claims another address: HAProxy appends the one it saw, the app trusts
    # only that last entry (TRUSTED_PROXY_COUNT=1).
    assert guess("127.0.0.2", {"X-Forwarded-For": "198.51.100.7"}) == 429
    # Another client address is not affected.
    assert guess("127.0.0.3") == 200
    # The records keep the real client address, not HAProxy's nor a forged one.
    status, _, body = cluster.request(
        "POST", "/v1/licenses/validate", host=tenant["domain"], body={"key": tenant["key"]},
        source="127.0.0.4", headers={"X-Forwarded-For": "198.51.100.7"},
    )  # fmt: skip
    assert status == 200 and body["valid"]
    records = cluster.seed("validations", tenant["schema"])["records"]
    assert ["VALID", "127.0.0.4"] in records
    assert {address for _, address in records} == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}


def test_a_read_after_a_write_sees_the_write(cluster, tenants):
    """Lists are read from the replica (REPLICA_DELAY stale), except by a token that just wrote."""
    tenant = tenants[0]
    writer, other = tenant["tokens"]
    code = f"fresh-{time.monotonic_ns()}"
    status, _, body = cluster.request(
        "POST",
        "/v1/products",
        host=tenant["domain"],
        token=writer,
        body={"code": code, "name": "Fresh"},
    )
    assert status == 201, body

    def listed(token):
        status, _, body = cluster.request(
            "GET", f"/v1/products?code={code}", host=tenant["domain"], token=token
        )
        assert status == 200, body
        return [p["code"] for p in body["results"]]

    started = time.monotonic()
    # The writer's next reads (on either host) come from the primary...
    assert listed(writer) == [code]
    assert listed(writer) == [code]
    # ...while another token, reading from the replica, does not see it yet (the proof that
    # lists do go to the replica), and sees it once the replica has caught up.
    stale, elapsed = listed(other), time.monotonic() - started
    print(f"\nanother token {elapsed:.2f}s after the write: {stale}")
    if elapsed < REPLICA_DELAY * 0.75:  # a very slow machine: the replica may have caught up
        assert stale == []
    time.sleep(REPLICA_DELAY + 1)
    assert listed(other) == [code]


def test_the_api_serves_from_the_primary_while_the_replica_is_down(cluster, tenants):
    tenant = tenants[1]
    cluster.run("stop", "replica")
    try:
        for _ in range(8):  # every worker of both hosts meets the dead replica
            status, _, body = cluster.request(
                "GET", "/v1/products", host=tenant["domain"], token=tenant["tokens"][1]
            )
            assert status == 200, body
            assert [p["code"] for p in body["results"]] == [tenant["product"]]
    finally:
        cluster.run("start", "replica")


def test_killing_an_app_host_mid_load_loses_no_retryable_request(cluster):
    """app1 is killed (SIGKILL) while clients send product lists (GET) and validations (POST):
    HAProxy retries every GET on app2; a POST can fail only if it was in flight on app1; every
    validation answered 200 has its record."""
    tenant = cluster.seed("tenant", "failover", "100000")
    token = cluster.access_token(tenant)
    total, kill_at = 300, 100
    sent = itertools.count()
    killed = threading.Event()

    def one(i):
        if next(sent) == kill_at:
            cluster.run("stop", "app1")
            killed.set()
        method = "GET" if i % 2 else "POST"
        try:
            if method == "GET":
                return method, cluster.request(
                    "GET", "/v1/products", host=tenant["domain"], token=token
                )[0]
            return method, cluster.request(
                "POST", "/v1/licenses/validate", host=tenant["domain"], body={"key": tenant["key"]}
            )[0]
        except (http.client.HTTPException, OSError):
            return method, "cut"  # app1 died while this answer was on its way

    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = list(pool.map(one, range(total)))
    finally:
        cluster.run("start", "app1")
        cluster.wait_until_both_hosts_up()
    assert killed.is_set()
    print(f"\nGET and POST answers with app1 killed: {Counter(answers)}")
    # Only what was in flight on app1 when it died can fail (at most one request per client
    # thread): HAProxy cannot replay an answer it had begun to pass on, nor a POST app1 had taken.
    # Everything sent after the kill, or refused by the dead host, is served by app2.
    failed = [(method, status) for method, status in answers if status != 200]
    assert len(failed) <= CLIENTS, failed
    assert {status for _, status in failed} <= {502, 503, 504, "cut"}, failed
    posts = Counter(status for method, status in answers if method == "POST")
    validations = cluster.seed("validations", tenant["schema"])
    assert len(validations["records"]) >= posts[200]
    assert len(validations["records"]) <= total // 2 + CLIENTS  # a retried POST may count twice
