"""licensing_client's machine calls against the live server: activate, validate with a
fingerprint, heartbeat (and the background helper), deactivate."""

import threading

import pytest

from licensing_client import (
    ConflictError,
    Heartbeats,
    LicensingClient,
    MachineResult,
    NotFoundError,
    TransportError,
)

pytestmark = pytest.mark.live


@pytest.fixture
def app(live_tenant_server):
    """A client application: no User Token, only the licence key."""
    return LicensingClient(live_tenant_server.url, user_token="")


def test_a_desktop_app_flow(app, committed_licence):
    licence = committed_licence(max_activations=1, heartbeat_seconds=600)
    first = app.activate(licence.key, "hw-1", name="Laptop", platform="Linux", hostname="lap")
    assert (first.active, first.created, first.code) == (True, True, "VALID")
    assert first.machine["fingerprint"] == "hw-1"
    assert first.machine["heartbeat"]["interval_seconds"] == 600
    again = app.activate(licence.key, "hw-1")
    assert (again.active, again.created) == (True, False)
    assert again.machine["id"] == first.machine["id"]

    result = app.validate(licence.key, fingerprint="hw-1")
    assert (result.valid, result.code) == (True, "VALID")
    assert result.license["activations"] == {"used": 1, "max": 1}
    assert app.validate_license(licence.key, fingerprint="hw-2").code == (
        "FINGERPRINT_NOT_ACTIVATED"
    )

    beat = app.heartbeat(licence.key, "hw-1")
    assert beat.active and beat.machine["heartbeat_deadline"] is not None

    with pytest.raises(ConflictError) as full:
        app.activate(licence.key, "hw-2")
    assert (full.value.status, full.value.activation_limit) == (409, True)

    app.deactivate(licence.key, "hw-1")
    with pytest.raises(NotFoundError):
        app.deactivate(licence.key, "hw-1")
    assert app.activate(licence.key, "hw-2").created


def test_refusals_come_back_as_codes(app, committed_licence):
    licence = committed_licence()
    refused = app.heartbeat(licence.key, "never-activated")
    assert refused == MachineResult(
        False, "FINGERPRINT_NOT_ACTIVATED", refused.detail, None, refused.license
    )
    unknown = app.activate("NO-SUCH-KEY", "hw")
    assert (unknown.active, unknown.code, unknown.license) == (False, "NOT_FOUND", None)


def test_the_churn_budget_says_when_to_retry(app, committed_licence):
    licence = committed_licence(max_deactivations=1)
    app.activate(licence.key, "a")
    app.activate(licence.key, "b")
    app.deactivate(licence.key, "a")
    with pytest.raises(ConflictError) as refused:
        app.deactivate(licence.key, "b")
    assert refused.value.error == "Deactivation limit reached"
    assert refused.value.retry_after > 29 * 86400


def test_background_heartbeats_beat_until_stopped(app, committed_licence):
    licence = committed_licence(heartbeat_seconds=1)  # a beat every half second
    app.activate(licence.key, "hw")
    beats = []
    counted = threading.Event()

    class Counting(LicensingClient):
        def heartbeat(self, key, fingerprint):
            result = super().heartbeat(key, fingerprint)
            beats.append(result)
            if len(beats) >= 3:
                counted.set()
            return result

    client = Counting(app.base_url, user_token="")
    with Heartbeats(client, licence.key, "hw") as helper:
        assert counted.wait(10)
        assert helper.running
    assert not helper.running and helper.refused is None
    assert all(beat.active for beat in beats)
    assert beats[-1].machine["last_heartbeat_at"] > beats[0].machine["last_heartbeat_at"]


def test_background_heartbeats_stop_when_refused(app, committed_licence):
    licence = committed_licence(heartbeat_seconds=1)
    app.activate(licence.key, "hw")
    refused = threading.Event()
    helper = Heartbeats(app, licence.key, "hw", on_refused=lambda _: refused.set()).start()
    app.deactivate(licence.key, "hw")
    assert refused.wait(10)
    helper.stop()
    assert helper.refused.code == "FINGERPRINT_NOT_ACTIVATED" and not helper.running


def test_background_heartbeats_back_off_while_the_server_is_unreachable():
    unreachable = LicensingClient("http://127.0.0.1:9", user_token="", max_retries=0)
    waits = []
    failed_three_times = threading.Event()

    def on_error(error, wait):
        assert isinstance(error, TransportError)
        waits.append(wait)
        if len(waits) == 3:
            failed_three_times.set()

    helper = Heartbeats(unreachable, "KEY", "hw", on_error=on_error, min_backoff=0.01)
    helper.start()
    assert failed_three_times.wait(10)
    helper.stop()
    assert not helper.running
    # Doubling (with jitter between half and the whole of each ceiling).
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02 and 0.02 <= waits[2] <= 0.04


def test_backoff_is_capped():
    helper = Heartbeats(None, "KEY", "hw", min_backoff=1, max_backoff=60)
    assert all(30 <= helper.backoff(failures) <= 60 for failures in (7, 20, 100))
