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
