"""The SSRF guard, at save and at delivery. No request is ever sent to a refused address."""

import socket

import pytest
from django.core.exceptions import ValidationError

from webhooks import services, targets
from webhooks.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    return settings


REFUSED = [
    ("https://10.0.0.7/hook", "private"),
    ("https://172.16.3.4/hook", "private"),
    ("https://192.168.1.20/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fd00:ec2::254]/hook", "private"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://0.0.0.0/hook", "private"),
    ("https://100.64.0.1/hook", "reserved"),
    ("https://240.0.0.1/hook", "private"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://[::ffff:10.0.0.1]/hook", "private"),
    ("https://localhost/hook", "loopback"),  # a name that resolves to loopback
]


@pytest.mark.parametrize(("url", "why"), REFUSED)
def test_internal_addresses_are_refused_in_production(production, in_alpha, url, why):
    with pytest.raises(targets.TargetRefused, match=why):
        targets.check_url(url)
    with pytest.raises(ValidationError) as refused:
        services.create_endpoint(url=url)
    assert why in str(refused.value.message_dict["url"])


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # a public address, but plain http
        "ftp://93.184.215.14/hook",
        "https://user:pass@93.184.215.14/hook",
        "https://93.184.215.14:99999/hook",
        "https://no-such-host.invalid/hook",
        "not a url",
    ],
)
def test_malformed_or_insecure_urls_are_refused(production, in_alpha, url):
    with pytest.raises(ValidationError):
        services.create_endpoint(url=url)


def test_a_public_https_address_is_accepted_and_pinned(production):
    target = targets.check_url("https://93.184.215.14:8443/hooks/in?x=1")
    assert (target.host, target.port, target.path, target.address) == (
        "93.184.215.14",
        8443,
        "/hooks/in?x=1",
        "93.184.215.14",
    )


def test_loopback_is_allowed_by_the_setting_only(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    assert targets.check_url("http://127.0.0.1:9/hook").address == "127.0.0.1"
    assert targets.check_url("http://localhost:9/hook").address in ("127.0.0.1", "::1")
    with pytest.raises(targets.TargetRefused, match="private"):
        targets.check_url("http://10.0.0.7/hook")  # the setting is about loopback only
    with pytest.raises(targets.TargetRefused, match="https"):
        targets.check_url("http://93.184.215.14/hook")


def test_a_name_resolving_to_a_private_address_is_refused(production, monkeypatch):
    """DNS answers are checked, every one of them: one internal address refuses the URL."""
    real = socket.getaddrinfo

    def fake_dns(host, *args, **kwargs):
        if host == "hooks.example.com":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    with pytest.raises(targets.TargetRefused, match=r"private address \(10\.1\.2\.3\)"):
        targets.check_url("https://hooks.example.com/in")


def test_the_guard_runs_again_at_delivery(settings, in_alpha):
    """An endpoint saved while loopback was allowed (or whose name now resolves inside) is
    refused at delivery, without a connection, and retried later like any failure."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    endpoint, _ = services.create_endpoint(url="http://localhost:9/hook")
    event = services.emit_event("license.created", {"license": {"id": 1}})
    delivery = WebhookDelivery.objects.get(event=event)
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(services.DeliveryFailed):
        services.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.last_status_code is None
    assert delivery.last_error.startswith("Refused: The URL's host resolves to a loopback")
    assert delivery.status == WebhookDelivery.Status.PENDING


def test_connections_go_to_the_checked_address_with_the_hosts_name(settings):
    """No second DNS lookup: the socket connects to the checked IP; Host and SNI keep the name."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    target = targets.check_url("https://localhost:8443/in")
    connection = targets.connection_to(target, timeout=1)
    assert connection.host == "localhost"  # Host header and server_hostname (SNI)
    assert connection._address == target.address
