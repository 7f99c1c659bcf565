"""Round trips to Redis per warm request (docs/performance.md): one, two with a buffered record.

Every packet redis-py sends to the server is counted (a counting wrapper around the connection's
send; the commands still go to the real Redis and are answered by it). A warm request sends one:
the EVALSHA that counts it against the tenant's licence, reads its abuse counter and counts the
User Token's usage. Validation and token exchange push their record to the buffer in one more,
which also gives back the abuse throttle's unit of an attempt that did not fail.
"""

import hashlib
import uuid

import pytest
from django.conf import settings
from django.core.cache import caches
from django_tenants.utils import schema_context
from redis.connection import AbstractConnection

from tenants import counters, record_buffer, throttling
from tests.licensing.factories import make_license
from tokens.catalogue import Permission

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (.ci/run provides one)"),
]


@pytest.fixture
def sent(monkeypatch, settings):
    """The commands sent to Redis, as packed by redis-py: one entry per round trip."""
    settings.TENANT_CACHE_CHECK_SECONDS = 3600  # the tenant cache's version check: once, warm-up
    packets: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        packets.append(b"".join(command) if isinstance(command, list) else command)
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return packets


def round_trips(sent, request) -> list[bytes]:
    """The packets one warm request sent (after the same request once, to warm up)."""
    request()
    sent.clear()
    response = request()
    assert response.status_code == 200, response.content
    return list(sent)


@pytest.fixture
def licence(tenant_alpha):
    with schema_context("alpha"):
        return make_license()


@pytest.mark.parametrize("path", ["/v1/licenses/{id}", "/v1/licenses", "/v1/auth/me"])
def test_a_warm_read_is_one_round_trip(sent, api_client, licence, path):
    client = api_client("alpha", [Permission.VIEW_LICENSES])
    packets = round_trips(sent, lambda: client.get(path.format(id=licence.pk)))
    assert [commands(p) for p in packets] == [[b"EVALSHA"]], packets


def commands(packet: bytes) -> list[bytes]:
    """The command names in one packet (a pipeline packs several)."""
    parts = packet.split(b"\r\n")
    return [parts[i + 2] for i, part in enumerate(parts) if part.startswith(b"*")]


SETTLED = [[b"EVALSHA"], [b"EVALSHA", b"RPUSH", b"SADD"]]


@pytest.mark.parametrize("full", [False, True], ids=["key", "key-product-fingerprint-nonce"])
def test_a_warm_validation_is_two_round_trips(sent, alpha_client, licence, full):
    """The counters (the attempt counted before the key is checked), then one pipeline once the
    answer is settled, before it leaves: the attempt's unit given back, since it did not fail
    (exact throttles), and the validation record pushed to the buffer (tenants.record_buffer: a
    killed worker loses nothing it answered)."""
    body = {"key": licence.key}
    if full:  # FINGERPRINT_NOT_ACTIVATED is no failed guess: the unit is given back too
        body |= {"product": licence.product.code, "fingerprint": "fp-1", "nonce": "n"}
    packets = round_trips(
        sent,
        lambda: alpha_client.post("/v1/licenses/validate", body, content_type="application/json"),
    )
    assert [commands(p) for p in packets] == SETTLED, packets


def test_a_warm_token_exchange_is_two_round_trips(sent, alpha_client, make_user_token):
    _, secret = make_user_token("alpha", [Permission.VIEW_LICENSES])
    packets = round_trips(
        sent,
        lambda: alpha_client.post(
            "/v1/auth/token", {"user_token": secret}, content_type="application/json"
        ),
    )
    assert [commands(p) for p in packets] == SETTLED, packets


def test_an_unknown_script_is_loaded_again(monkeypatch, sent):
    """A Redis that lost the script (restarted, SCRIPT FLUSH) answers NOSCRIPT: loaded, retried."""
    script = f"-- {uuid.uuid4()}\n{counters.SCRIPT}"  # surely unknown to the server
    monkeypatch.setattr(counters, "SCRIPT", script)
    monkeypatch.setattr(counters, "SCRIPT_SHA", counters.hashlib.sha1(script.encode()).hexdigest())
    store = caches[settings.RATELIMIT_USE_CACHE]
    key = f"test:round-trips:{uuid.uuid4()}"
    batch = counters.CounterBatch()
    batch.add(store, counters.Op.INCR, key, 2, 60)
    batch.add(store, counters.Op.INCR, key, 3, 60)
    batch.add(store, counters.Op.GET, key)
    assert batch.run() == [2, 5, 5]
    assert [commands(p) for p in sent] == [[b"EVALSHA"], [b"SCRIPT"], [b"EVALSHA"]]
    assert store.get(key) == 5  # the cache API reads what the script wrote
    store.delete(key)


def abuse_count(scope: str) -> int:
    """The test client's (127.0.0.1) count on the abuse counter of `scope`, this window."""
    key = throttling.counter_key(f"abuse:{scope}", "127.0.0.1", settings.ABUSE_FAILURE_RATE)
    with schema_context("alpha"):
        return int(caches[settings.RATELIMIT_USE_CACHE].get(key) or 0)


def validate(client, key):
    return client.post("/v1/licenses/validate", {"key": key}, content_type="application/json")


def test_the_settling_round_trip_gives_back_and_pushes(sent, alpha_client, licence):
    """After a successful validation its abuse unit is back and its record is in Redis's buffer
    (not yet in PostgreSQL): both went in the one pipeline sent before the answer left."""
    client = record_buffer._redis()
    list_key = record_buffer._list_key("alpha")
    before = client.llen(list_key)
    assert validate(alpha_client, licence.key).status_code == 200
    assert abuse_count("validate") == 0
    assert client.llen(list_key) == before + 1
    assert b"alpha" in client.smembers(record_buffer._schemas_key())
    assert validate(alpha_client, "no-such-key").json()["code"] == "NOT_FOUND"  # keeps its unit
    assert abuse_count("validate") == 1
    assert client.llen(list_key) == before + 2


def test_an_unknown_give_back_script_is_loaded_again(monkeypatch, sent, alpha_client, licence):
    """A Redis that lost the give-back script answers NOSCRIPT in the pipeline: the record was
    pushed all the same, the script is loaded and the unit given back."""
    script = f"-- {uuid.uuid4()}\n{throttling.GIVE_BACK_SCRIPT}"  # surely unknown to the server
    monkeypatch.setattr(throttling, "GIVE_BACK_SCRIPT", script)
    monkeypatch.setattr(throttling, "GIVE_BACK_SHA", hashlib.sha1(script.encode()).hexdigest())
    client = record_buffer._redis()
    before = client.llen(record_buffer._list_key("alpha"))
    sent.clear()
    assert validate(alpha_client, licence.key).status_code == 200
    packets = [commands(p) for p in sent]
    assert abuse_count("validate") == 0
    assert client.llen(record_buffer._list_key("alpha")) == before + 1
    assert packets[-3:] == [
        [b"EVALSHA", b"RPUSH", b"SADD"],
        [b"SCRIPT"],
        [b"EVALSHA"],
    ]
