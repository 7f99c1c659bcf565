"""The platform admin cannot lose a tenant by a click (issue 11, item 1).

The public tenant and its domain can be neither deleted nor renamed (admin and services); deleting
another tenant lists what goes with it and needs its schema name typed; there is no bulk delete;
adding a tenant provisions it like `manage.py provision_tenant`, first administrator included.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django_tenants.utils import schema_context, schema_exists

from tenants import services
from tenants.models import Domain, Tenant
from tests.helpers import TENANTS, TenantClient
from tokens.catalogue import Permission

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tenants/tenant/"
ADD = "/admin/tenants/tenant/add/"


@pytest.fixture
def operator(db, admin_password):
    """A platform operator (superuser of the public schema), logged into the public admin."""
    with schema_context("public"):
        get_user_model().objects.create_superuser("operator", "op@localhost", admin_password)
    client = Client(HTTP_HOST="localhost")
    assert client.login(username="operator", password=admin_password)
    return client


@pytest.fixture
def public_tenant(db):
    return services.ensure_public_tenant()


@pytest.fixture
def doomed(db, admin_password):
    """A tenant of its own for the test to delete (alpha and beta serve the whole session)."""
    return services.provision_tenant(
        schema_name="doomed",
        name="Doomed Ltd",
        domain="doomed.localhost",
        admin=services.AdminAccount("dora", "dora@doomed.localhost", admin_password),
    )


def text(response) -> str:
    return response.content.decode()


# --- The public tenant


def test_the_public_tenant_cannot_be_deleted_in_the_admin(operator, public_tenant):
    url = f"{CHANGELIST}{public_tenant.pk}/delete/"
    change = operator.get(f"{CHANGELIST}{public_tenant.pk}/change/")
    assert change.status_code == 200
    assert url not in text(change)
    assert operator.get(url).status_code == 403
    assert operator.post(url, {"confirmation": "public"}).status_code == 403
    assert Tenant.objects.filter(pk=public_tenant.pk).exists()
    assert schema_exists("public")


def test_the_public_tenant_cannot_be_deleted_through_the_services(public_tenant):
    with pytest.raises(PermissionDenied):
        services.delete_tenant(public_tenant, confirmation="public")
    with pytest.raises(PermissionDenied):
        public_tenant.delete()
    assert Tenant.objects.filter(pk=public_tenant.pk).exists()
    assert schema_exists("public")


def test_the_public_tenant_and_its_domain_cannot_be_renamed(operator, public_tenant, settings):
    domain = Domain.objects.get(domain=settings.PUBLIC_DOMAIN)
    page = operator.get(f"{CHANGELIST}{public_tenant.pk}/change/")
    assert 'name="name"' not in text(page)  # read-only
    assert 'name="domains-0-domain"' not in text(page)
    operator.post(
        f"{CHANGELIST}{public_tenant.pk}/change/",
        {
            "name": "Renamed",
            "request_limit": "10",
            "request_period": "minute",
            "domains-TOTAL_FORMS": "1",
            "domains-INITIAL_FORMS": "1",
            "domains-0-id": str(domain.pk),
            "domains-0-tenant": str(public_tenant.pk),
            "domains-0-domain": "hijacked.localhost",
            "domains-0-is_primary": "on",
            "domains-0-DELETE": "on",
        },
    )
    domain_url = f"/admin/tenants/domain/{domain.pk}/"
    assert operator.post(f"{domain_url}change/", {"domain": "x.localhost"}).status_code == 403
    assert operator.post(f"{domain_url}delete/", {"post": "yes"}).status_code == 403
    public_tenant.refresh_from_db()
    assert public_tenant.name == "Platform"
    assert Domain.objects.get(pk=domain.pk).domain == settings.PUBLIC_DOMAIN

    with pytest.raises(PermissionDenied):
        services.rename_tenant(public_tenant, "Renamed")
    domain.domain = "hijacked.localhost"
    with pytest.raises(PermissionDenied):
        services.save_domain(domain)
    with pytest.raises(PermissionDenied):
        services.delete_domain(domain)
    alpha_domain = Domain.objects.get(domain=TENANTS["alpha"])
    alpha_domain.tenant = public_tenant
    with pytest.raises(PermissionDenied):  # nor can a domain be moved onto the public tenant
        services.save_domain(alpha_domain)
    assert Domain.objects.get(domain=settings.PUBLIC_DOMAIN).tenant_id == public_tenant.pk


def test_a_domain_added_in_the_admin_must_resolve_to_its_tenant(operator):
    alpha = Tenant.objects.get(schema_name="alpha")
    response = operator.post(
        "/admin/tenants/domain/add/",
        {"domain": "www.alpha-shop.localhost", "tenant": alpha.pk, "is_primary": ""},
    )
    assert response.status_code == 200  # the form again, with the reason
    assert "without &#x27;www.&#x27;" in text(response) or "without 'www.'" in text(response)
    assert not Domain.objects.filter(domain__icontains="alpha-shop").exists()
    response = operator.post(
        "/admin/tenants/domain/add/",
        {"domain": "Alpha-Shop.localhost", "tenant": alpha.pk, "is_primary": ""},
    )
    assert response.status_code == 302  # stored as hosts are matched: in lower case
    assert Domain.objects.filter(domain="alpha-shop.localhost", tenant=alpha).exists()
    Domain.objects.filter(domain="alpha-shop.localhost").delete()


def test_the_domain_admin_offers_no_public_tenant(operator, public_tenant):
    page = text(operator.get("/admin/tenants/domain/add/"))
    assert f'value="{public_tenant.pk}"' not in page
    assert "Alpha Software" in page


# --- Deleting a tenant


def test_there_is_no_bulk_delete_of_tenants_or_domains(operator, doomed):
    for url in (CHANGELIST, "/admin/tenants/domain/"):
        assert 'value="delete_selected"' not in text(operator.get(url))
    response = operator.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [doomed.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert Tenant.objects.filter(pk=doomed.pk).exists()
    assert schema_exists("doomed")


def test_deleting_a_tenant_lists_what_goes_with_it_and_needs_its_schema_name(
    operator, doomed, make_user_token
):
    make_user_token("doomed", [Permission.VIEW_USERS])
    url = f"{CHANGELIST}{doomed.pk}/delete/"
    page = operator.get(url)
    assert page.status_code == 200
    content = text(page)
    assert "doomed.localhost" in content
    assert "Users: 2" in content  # the first administrator and the token's owner
    assert "User tokens: 1" in content
    assert "Licences: 0" in content
    assert 'name="confirmation"' in content

    for wrong in ("", "Doomed", "alpha", "public"):
        refused = operator.post(url, {"confirmation": wrong})
        assert refused.status_code == 200
        assert schema_exists("doomed") and Tenant.objects.filter(pk=doomed.pk).exists()
    assert "exactly to delete this tenant" in text(refused)
    with pytest.raises(ValidationError):
        services.delete_tenant(doomed, confirmation="alpha")

    done = operator.post(url, {"confirmation": "doomed"})
    assert done.status_code == 302
    assert not Tenant.objects.filter(schema_name="doomed").exists()
    assert not Domain.objects.filter(domain="doomed.localhost").exists()
    assert not schema_exists("doomed")
    assert schema_exists("alpha")


# --- Adding a tenant


def add_data(**overrides):
    data = {
        "name": "Gamma GmbH",
        "schema_name": "gamma",
        "domain": "gamma.localhost",
        "admin_username": "gina",
        "admin_email": "gina@gamma.localhost",
        "admin_password": "Gamma-password-2026!",
        "admin_password_again": "Gamma-password-2026!",
        "request_limit": "50",
        "request_period": "hour",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    data.update(overrides)
    return data


def test_adding_a_tenant_provisions_it_with_its_first_administrator(operator):
    form = text(operator.get(ADD))
    for field in ("schema_name", "domain", "admin_username", "admin_email", "admin_password"):
        assert f'name="{field}"' in form, field

    response = operator.post(ADD, add_data())
    assert response.status_code == 302, text(response)[:3000]
    tenant = Tenant.objects.get(schema_name="gamma")
    assert (tenant.name, tenant.request_limit, tenant.request_period) == ("Gamma GmbH", 50, "hour")
    assert Domain.objects.get(domain="gamma.localhost").tenant == tenant
    with schema_context("gamma"):
        admin = get_user_model().objects.get(username="gina")
        assert admin.is_superuser and admin.is_staff
        assert admin.check_password("Gamma-password-2026!")
        # Cloned from the migrated template: the permissions table is filled like a migrated one.
        from django.contrib.auth.models import Permission as AuthPermission

        assert AuthPermission.objects.filter(content_type__app_label="tokens").exists()
    tenant_admin = TenantClient(tenant, "gamma.localhost")
    assert tenant_admin.login(username="gina", password="Gamma-password-2026!")
    assert tenant_admin.get("/admin/tokens/usertoken/").status_code == 200
    assert "Gamma-password-2026!" not in text(operator.get(f"{CHANGELIST}{tenant.pk}/change/"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"admin_password_again": "something else"}, "The passwords do not match."),
        ({"admin_password": "short", "admin_password_again": "short"}, "too short"),
        ({"schema_name": "alpha"}, "already exists"),
        ({"schema_name": "public"}, "reserved"),
        ({"domain": TENANTS["beta"]}, "already belongs"),
        ({"request_limit": "0"}, "whole number from 1"),
    ],
)
def test_the_add_form_refuses_bad_input_and_creates_nothing(operator, overrides, message):
    response = operator.post(ADD, add_data(**overrides))
    assert response.status_code == 200
    assert message in text(response)
    assert not Tenant.objects.filter(schema_name="gamma").exists()
    assert not schema_exists("gamma")
    assert "Gamma-password-2026!" not in text(response)
