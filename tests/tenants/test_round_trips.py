"""Round trips to Redis per warm request (docs/performance.md): one.

Every packet redis-py sends to the server is counted (a counting wrapper around the connection's
send; the commands still go to the real Redis and are answered by it). A warm request sends one:
the EVALSHA that counts it against the tenant's licence, reads its abuse counter and counts the
User Token's usage. What validation and token exchange owe once their answer is settled (the
abuse throttle's unit of an attempt that did not fail given back, the record pushed to the
buffer) rides ahead of it in the next request's packet (tenants.counters.Outbox).
"""

import hashlib
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import connections
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
    """The commands sent to Redis, as packed by redis-py: one entry per round trip. The outbox's
    thread does not send what requests deferred (`send_deferred` does), so the packets are the
    same however slow the machine."""
    settings.TENANT_CACHE_CHECK_SECONDS = 3600  # the tenant cache's version check: once, warm-up
    packets: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        packets.append(b"".join(command) if isinstance(command, list) else command)
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    monkeypatch.setattr(counters.OUTBOX, "flush", lambda: None)
    return packets


def send_deferred() -> None:
    """What requests deferred, sent now (as the outbox's thread would, DELAY later)."""
    counters.Outbox.flush(counters.OUTBOX)


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


HANDSHAKE = {b"HELLO", b"CLIENT", b"SELECT", b"AUTH"}


def requests_sent(sent) -> list[list[bytes]]:
    """The commands of each packet, without those of a new connection's handshake (redis-py's
    own calls may open one: round trips keep theirs, tenants.counters)."""
    packets = [commands(p) for p in sent]
    return [names for names in packets if not set(names) <= HANDSHAKE]


# The previous request's give-back and record push, then this request's counters.
WITH_DEFERRED = [[b"EVALSHA", b"RPUSH", b"SADD", b"EVALSHA"]]


@pytest.mark.parametrize("full", [False, True], ids=["key", "key-product-fingerprint-nonce"])
def test_a_warm_validation_is_one_round_trip(sent, alpha_client, licence, full):
    """The counters (the attempt counted before the key is checked) in one EVALSHA. Once the
    answer is settled, the attempt's unit is given back, since it did not fail (exact throttles),
    and the validation record is pushed to the buffer (tenants.record_buffer): both deferred to
    the next round trip, which carries them ahead of its own EVALSHA in one packet."""
    body = {"key": licence.key}
    if full:  # FINGERPRINT_NOT_ACTIVATED is no failed guess: the unit is given back too
        body |= {"product": licence.product.code, "fingerprint": "fp-1", "nonce": "n"}
    packets = round_trips(
        sent,
        lambda: alpha_client.post("/v1/licenses/validate", body, content_type="application/json"),
    )
    assert [commands(p) for p in packets] == WITH_DEFERRED, packets
    assert len(counters.OUTBOX) == 1  # this request's, for the next round trip


def test_before_the_answer_a_validation_is_two_round_trips(sent, settings, alpha_client, licence):
    """RECORD_PUSH_BEFORE_ANSWER: the give-back and the record's push are sent in a round trip of
    their own before the answer leaves (a worker killed after it loses nothing)."""
    settings.RECORD_PUSH_BEFORE_ANSWER = True
    client = record_buffer._redis()
    list_key = record_buffer._list_key("alpha")
    send_deferred()
    before = client.llen(list_key)
    packets = round_trips(sent, lambda: validate(alpha_client, licence.key))
    assert [commands(p) for p in packets] == [[b"EVALSHA"], [b"EVALSHA", b"RPUSH", b"SADD"]]
    assert len(counters.OUTBOX) == 0
    assert client.llen(list_key) == before + 2  # the warm-up's and this one's, already
    assert abuse_count("validate") == 0


def test_a_warm_token_exchange_is_one_round_trip(sent, alpha_client, make_user_token):
    _, secret = make_user_token("alpha", [Permission.VIEW_LICENSES])
    packets = round_trips(
        sent,
        lambda: alpha_client.post(
            "/v1/auth/token", {"user_token": secret}, content_type="application/json"
        ),
    )
    assert [commands(p) for p in packets] == WITH_DEFERRED, packets


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
    assert requests_sent(sent) == [[b"EVALSHA"], [b"SCRIPT"], [b"EVALSHA"]]
    assert store.get(key) == 5  # the cache API reads what the script wrote
    store.delete(key)


def abuse_count(scope: str) -> int:
    """The test client's (127.0.0.1) count on the abuse counter of `scope`, this window."""
    key = throttling.counter_key(f"abuse:{scope}", "127.0.0.1", settings.ABUSE_FAILURE_RATE)
    with schema_context("alpha"):
        return int(caches[settings.RATELIMIT_USE_CACHE].get(key) or 0)


def validate(client, key):
    return client.post("/v1/licenses/validate", {"key": key}, content_type="application/json")


def test_the_deferred_commands_give_back_and_push(sent, alpha_client, licence):
    """Once what a successful validation deferred is sent, its abuse unit is back and its record
    is in Redis's buffer (not yet in PostgreSQL); a failed guess keeps its unit."""
    client = record_buffer._redis()
    list_key = record_buffer._list_key("alpha")
    send_deferred()
    before = client.llen(list_key)
    assert validate(alpha_client, licence.key).status_code == 200
    assert abuse_count("validate") == 1  # counted before the key was checked, not yet given back
    assert client.llen(list_key) == before
    send_deferred()
    assert abuse_count("validate") == 0
    assert client.llen(list_key) == before + 1
    assert b"alpha" in client.smembers(record_buffer._schemas_key())
    assert validate(alpha_client, "no-such-key").json()["code"] == "NOT_FOUND"  # keeps its unit
    send_deferred()
    assert abuse_count("validate") == 1
    assert client.llen(list_key) == before + 2


def test_the_next_request_carries_the_deferred_commands(sent, alpha_client, api_client, licence):
    """The next request of the process carries them, whatever its endpoint."""
    reader = api_client("alpha", [Permission.VIEW_LICENSES])
    client = record_buffer._redis()
    list_key = record_buffer._list_key("alpha")
    send_deferred()
    before = client.llen(list_key)
    assert validate(alpha_client, licence.key).status_code == 200
    sent.clear()
    assert reader.get(f"/v1/licenses/{licence.pk}").status_code == 200
    assert [commands(p) for p in sent] == [[b"EVALSHA", b"RPUSH", b"SADD", b"EVALSHA"]]
    assert client.llen(list_key) == before + 1
    assert abuse_count("validate") == 0
    assert len(counters.OUTBOX) == 0


def test_the_outbox_thread_sends_what_no_request_took(alpha_client, licence):
    """Without a next request, the outbox's daemon thread sends the commands DELAY later."""
    client = record_buffer._redis()
    list_key = record_buffer._list_key("alpha")
    send_deferred()
    before = client.llen(list_key)
    assert validate(alpha_client, licence.key).status_code == 200
    deadline = time.monotonic() + 10
    while client.llen(list_key) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.llen(list_key) == before + 1
    assert abuse_count("validate") == 0


def test_an_unknown_give_back_script_is_loaded_again(monkeypatch, sent, alpha_client, licence):
    """A Redis that lost the give-back script answers NOSCRIPT in the pipeline: the record was
    pushed all the same, the script is loaded and the unit given back."""
    script = f"-- {uuid.uuid4()}\n{throttling.GIVE_BACK_SCRIPT}"  # surely unknown to the server
    monkeypatch.setattr(throttling, "GIVE_BACK_SCRIPT", script)
    monkeypatch.setattr(throttling, "GIVE_BACK_SHA", hashlib.sha1(script.encode()).hexdigest())
    client = record_buffer._redis()
    send_deferred()
    before = client.llen(record_buffer._list_key("alpha"))
    assert validate(alpha_client, licence.key).status_code == 200
    sent.clear()
    send_deferred()
    packets = requests_sent(sent)
    assert abuse_count("validate") == 0
    assert client.llen(record_buffer._list_key("alpha")) == before + 1
    assert packets[-3:] == [
        [b"EVALSHA", b"RPUSH", b"SADD"],
        [b"SCRIPT"],
        [b"EVALSHA"],
    ]


def test_a_thread_gives_its_kept_connection_back_when_it_ends(alpha_client, licence):
    """Round trips keep their thread's connection (tenants.counters); a server that starts a
    thread per request must not use up the pool."""
    pool = record_buffer._redis().connection_pool

    def one():
        try:
            assert validate(alpha_client, licence.key).status_code == 200
        finally:
            connections.close_all()  # the thread's own database connection

    in_use = len(pool._in_use_connections)
    for _ in range(5):
        thread = threading.Thread(target=one)
        thread.start()
        thread.join()
    assert len(pool._in_use_connections) <= in_use + 1
