"""The licence list of the tenant admin: key search as people type keys, and a list that fits."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.licensing.factories import make_customer, make_license, make_plan

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/licensing/license/"


@pytest.fixture
def licences(tenant_alpha):
    with schema_context("alpha"):
        plan = make_plan()
        wanted = make_license(plan, customer=make_customer(name="Wanted Holder"))
        other = make_license(plan, customer=make_customer(name="Other Holder"))
    return wanted, other


def listed_keys(response) -> set[str]:
    assert response.status_code == 200
    return set(re.findall(r'<code class="license-key">([0-9A-Z-]{29})</code>', response.text))


def typed_forms(key: str) -> list[str]:
    bare = key.replace("-", "")
    return [key, key.lower(), bare, bare.lower(), f"  {key.lower()}  ", key.replace("-", " ")]


def test_search_finds_a_key_typed_without_dashes_or_in_any_case(admin_client, licences):
    wanted, other = licences
    for typed in typed_forms(wanted.key):
        assert listed_keys(admin_client.get(LIST_URL, {"q": typed})) == {wanted.key}, typed


def test_key_search_is_exact_and_one_index_lookup(admin_client, licences):
    wanted, other = licences
    # A part of a key is not a key: no substring match on keys.
    assert listed_keys(admin_client.get(LIST_URL, {"q": wanted.key[:11]})) == set()
    # One changed symbol: nothing, not the nearest key.
    last = "0" if wanted.key[-1] != "0" else "1"
    assert listed_keys(admin_client.get(LIST_URL, {"q": wanted.key[:-1] + last})) == set()
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(LIST_URL, {"q": wanted.key.replace("-", "").lower()})
    license_queries = [q["sql"] for q in queries if '"licensing_license"' in q["sql"]]
    assert license_queries
    for sql in license_queries:
        assert "LIKE" not in sql.upper() and "UPPER(" not in sql.upper(), sql
    assert any(f""""licensing_license"."key" = '{wanted.key}'""" in sql for sql in license_queries)


def test_other_searches_still_match_holders(admin_client, licences):
    wanted, other = licences
    assert listed_keys(admin_client.get(LIST_URL, {"q": "wanted"})) == {wanted.key}


def test_list_shows_status_and_short_expiry(admin_client, tenant_alpha):
    with schema_context("alpha"):
        plan = make_plan()
        dated = make_license(plan, expires_at=timezone.now() + timedelta(days=30))
        perpetual = make_license(plan, expires_at=None)
    page = admin_client.get(LIST_URL).text
    for header in ("Key", "Status", "Activations", "Expires"):
        assert f">{header}<" in page or f"{header}</a>" in page, header
    expected = timezone.localtime(dated.expires_at).strftime("%Y-%m-%d")
    assert re.search(rf'<time class="license-expiry" datetime="[^"]+">{expected}</time>', page)
    assert perpetual.key in page and "Perpetual" in page
    assert 'class="license-status license-status-active"' in page


def test_admin_labels_say_licence_in_prose(admin_client, tenant_alpha):
    from licensing.models import LicenseValidation
    from tests.licensing.factories import make_group, make_machine

    with schema_context("alpha"):
        machine = make_machine()
        group = make_group(name="Labelled")
        LicenseValidation.objects.create(license=machine.license, code="VALID")
    pages = {
        "/admin/licensing/machine/": ["Licence"],
        f"/admin/licensing/machine/{machine.pk}/change/": ["Licence"],
        "/admin/licensing/licensevalidation/": ["Licence"],
        "/admin/licensing/group/": ["Max licences per member"],
        f"/admin/licensing/group/{group.pk}/change/": ["Max licences per member"],
    }
    for url, labels in pages.items():
        page = admin_client.get(url)
        assert page.status_code == 200, url
        text = re.sub(r"<[^>]+>", " ", page.text)
        for label in labels:
            assert label in text, (url, label)
        assert not re.search(r"\bLicense\b|\blicenses per\b", text), url
    machine_page = admin_client.get(f"/admin/licensing/machine/{machine.pk}/change/").text
    assert f'/admin/licensing/license/{machine.license.pk}/change/"' in machine_page
