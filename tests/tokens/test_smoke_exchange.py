import pytest

pytestmark = pytest.mark.django_db


def test_exchange_and_me(api_client):
    client = api_client("alpha", ["view_users", "view_licenses"])
    assert client.tokens["token_type"] == "Bearer"
    assert client.tokens["expires_in"] == 86400
    assert client.tokens["permissions"] == ["view_licenses", "view_users"]
    me = client.get("/v1/auth/me")
    assert me.status_code == 200, me.content
    assert me.json()["permissions"] == ["view_licenses", "view_users"]
