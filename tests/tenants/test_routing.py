import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django_tenants.utils import schema_context

pytestmark = pytest.mark.django_db


def test_unknown_host_gets_json_404_on_api(db):
    response = Client(HTTP_HOST="nobody.localhost").get("/v1/licenses")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_disallowed_host_gets_same_404(db):
    response = Client(HTTP_HOST="attacker.example.org").post("/v1/licenses/validate", {})
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_unknown_route_on_tenant_is_json_404(alpha_client):
    response = alpha_client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_each_host_reaches_its_own_admin(alpha_client, beta_client, admin_password):
    assert alpha_client.login(username="alpha-admin", password=admin_password)
    assert alpha_client.get("/admin/").status_code == 200
    # alpha's administrator does not exist in beta's schema.
    assert not beta_client.login(username="alpha-admin", password=admin_password)
    assert beta_client.login(username="beta-admin", password=admin_password)


def test_admin_login_page_over_http(alpha_client, admin_password):
    page = alpha_client.get("/admin/login/")
    assert page.status_code == 200
    response = alpha_client.post(
        "/admin/login/?next=/admin/",
        {"username": "alpha-admin", "password": admin_password, "next": "/admin/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert "Site administration" in alpha_client.get("/admin/").content.decode()


def test_row_written_in_one_schema_is_invisible_from_the_other(tenant_alpha, tenant_beta):
    User = get_user_model()
    with schema_context("alpha"):
        User.objects.create_user("only-in-alpha", password="x")
        assert User.objects.filter(username="only-in-alpha").exists()
    with schema_context("beta"):
        assert not User.objects.filter(username="only-in-alpha").exists()


def test_tenant_admin_does_not_show_platform_tenants(alpha_client, admin_password):
    alpha_client.login(username="alpha-admin", password=admin_password)
    index = alpha_client.get("/admin/").content.decode()
    assert "/admin/tenants/tenant/" not in index and "/admin/tenants/domain/" not in index
    assert alpha_client.get("/admin/tenants/tenant/").status_code in (403, 404)


def test_public_admin_manages_tenants(db, admin_password):
    User = get_user_model()
    with schema_context("public"):
        User.objects.create_superuser("operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="operator", password=admin_password)
    page = client.get("/admin/tenants/tenant/")
    assert page.status_code == 200
    assert "alpha" in page.content.decode()


@pytest.mark.parametrize(
    "path", ["/admin/licensing/product/", "/admin/tokens/usertoken/", "/admin/licensing/license/"]
)
def test_public_admin_never_shows_tenant_data(db, admin_password, path):
    User = get_user_model()
    with schema_context("public"):
        User.objects.create_superuser("operator2", "op2@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="operator2", password=admin_password)
    index = client.get("/admin/").content.decode()
    assert path not in index
    assert client.get(path).status_code == 403
