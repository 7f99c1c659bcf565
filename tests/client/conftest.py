"""The client package against the live tenant server (tests/live.py), with committed tokens."""

import socket

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context


@pytest.fixture(autouse=True)
def localhost_names_resolve(monkeypatch):
    """Browsers resolve *.localhost to the loopback address; the C library here does not."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def committed_token(live_tenant_server, django_db_blocker):
    """committed_token(permissions) -> (UserToken, secret), owned by the server's owner user.

    Committed so the server's threads see it; the live server fixture deletes it afterwards.
    """
    from tokens.services import create_user_token

    def make(permissions, name="client test"):
        with django_db_blocker.unblock(), schema_context(live_tenant_server.tenant.schema_name):
            owner = get_user_model().objects.get(pk=live_tenant_server.owner_id)
            return create_user_token(owner=owner, name=name, permissions=list(permissions))

    return make
