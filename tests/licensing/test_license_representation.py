"""The licence's hand-built representation (the list's hot path) is DRF's, field for field."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework import serializers

from licensing.api.serializers import LicenseSerializer, LicenseUpdateSerializer
from licensing.models import LicenseStatus
from tests.licensing.factories import make_customer, make_license, make_user

pytestmark = pytest.mark.django_db


def drf_representation(serializer_class, instance):
    """What DRF's ModelSerializer makes of the declared fields, without the override."""
    return serializers.ModelSerializer.to_representation(serializer_class(instance), instance)


@pytest.fixture
def licences(in_alpha):
    plain = make_license()
    rich = make_license(
        customer=make_customer(),
        user=make_user(),
        expires_at=timezone.now() + timedelta(days=3, microseconds=7),
        metadata={"seats": 5, "tags": ["a", "b"], "nested": {"x": None}},
    )
    rich.status = LicenseStatus.SUSPENDED
    expired = make_license(
        starts_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(days=1)
    )
    return [plain, rich, expired]


@pytest.mark.parametrize("serializer_class", [LicenseSerializer, LicenseUpdateSerializer])
def test_the_fast_representation_is_drfs(licences, serializer_class):
    for licence in licences:
        assert serializer_class(licence).data == drf_representation(serializer_class, licence)
    many = serializer_class(licences, many=True).data
    assert many == [drf_representation(serializer_class, licence) for licence in licences]


def test_every_declared_field_is_presented(licences):
    assert set(LicenseSerializer(licences[0]).data) == set(LicenseSerializer.Meta.fields)


def test_times_are_utc_with_a_z(licences):
    data = LicenseSerializer(licences[1]).data
    assert data["expires_at"].endswith("Z") and data["expires_at"] > data["starts_at"]
    assert data["expired"] is False and LicenseSerializer(licences[2]).data["expired"] is True


def test_the_read_paths_answer_is_the_serializers_byte_for_byte(licences):
    """`license_answer` (GET /v1/licenses and /v1/licenses/{id}) renders the same JSON as the
    serializer (and DRF's field-by-field representation), nulls, times, expiry and metadata."""
    from rest_framework.renderers import JSONRenderer

    from licensing.api.serializers import LICENSE_COLUMNS, license_answer
    from licensing.models import License

    licences[1].save()  # the suspended status, stored
    rows = {row["id"]: row for row in License.objects.values(*LICENSE_COLUMNS)}
    render = JSONRenderer().render
    for licence in licences:
        licence.refresh_from_db()
        lean = license_answer(rows[licence.pk])
        assert render(lean) == render(LicenseSerializer(licence).data)
        assert render(lean) == render(drf_representation(LicenseSerializer, licence))
    assert [license_answer(rows[licence.pk])["expired"] for licence in licences] == [
        False,
        False,
        True,
    ]
    assert license_answer(rows[licences[0].pk])["customer"] is None
    assert license_answer(rows[licences[1].pk])["metadata"]["nested"] == {"x": None}


def test_a_single_read_is_the_serializers_answer_byte_for_byte(api_client, licences):
    """GET /v1/licenses/{id} answers from the row read with the User Token (tokens.services
    RowRead): the same bytes as the serializer's representation, and 404 for an absent id."""
    from rest_framework.renderers import JSONRenderer

    from tokens.catalogue import Permission

    client = api_client("alpha", [Permission.VIEW_LICENSES])
    licences[1].save()
    for licence in licences:
        licence.refresh_from_db()
        response = client.get(f"/v1/licenses/{licence.pk}")
        assert response.status_code == 200
        assert response.content == JSONRenderer().render(LicenseSerializer(licence).data)
    missing = client.get(f"/v1/licenses/{licences[-1].pk + 1000}")
    assert missing.status_code == 404
    assert missing.content == client.get("/v1/licenses/0").content


def test_a_page_is_the_serializers_answer_byte_for_byte(api_client, licences):
    """GET /v1/licenses loads its times with psycopg's compiled loader (licensing.api.views):
    each result renders as the serializer renders the licence."""
    from rest_framework.renderers import JSONRenderer

    from tokens.catalogue import Permission

    client = api_client("alpha", [Permission.VIEW_LICENSES])
    licences[1].save()
    results = client.get("/v1/licenses?limit=500").json()["results"]
    by_id = {result["id"]: result for result in results}
    render = JSONRenderer().render
    for licence in licences:
        licence.refresh_from_db()
        assert render(by_id[licence.pk]) == render(LicenseSerializer(licence).data)
