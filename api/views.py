"""The base of every resource endpoint (NetBox's BaseViewSet): filters, lists read from the
replica, answers re-read through the view's queryset."""

from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from api import db_routing

MAX_ID = 2**63 - 1  # bigint: a larger id is no row (the ORM answers 404 without a query)


def object_id():
    return serializers.IntegerField(min_value=1, max_value=MAX_ID)


class ResourceViewSet(GenericViewSet):
    """A list/detail resource. `filters` maps a query parameter to a factory of the DRF field that
    validates it (a bad value answers 400) and, optionally, the lookup it filters on."""

    filters: dict[str, tuple] = {}

    def filter_values(self) -> dict:
        """{filter name: its validated value} of the query string; a bad value answers 400."""
        values, errors = {}, {}
        for name, (make_field, _) in self.filters.items():
            raw = self.request.query_params.get(name)
            if raw is None:
                continue
            try:
                values[name] = make_field().run_validation(raw)
            except ValidationError as exc:
                errors[name] = exc.detail
        if errors:
            raise ValidationError(errors)
        return values

    def filter_queryset(self, queryset):
        lookups = {}
        for name, value in self.filter_values().items():
            lookup = self.filters[name][1]
            if callable(lookup):  # a filter that is not one field's value: value -> Q
                queryset = queryset.filter(lookup(value))
            else:
                lookups[lookup] = value
        return queryset.filter(**lookups)

    def list(self, request):
        # A list may be a moment stale: read from the replica where one is configured.
        return db_routing.replica_reads(request, self.list_page)

    def list_page(self):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def finalize_response(self, request, response, *args, **kwargs):
        if request.method not in SAFE_METHODS and response.status_code < 400:
            db_routing.note_write(request)  # this token's next reads see the write
        return super().finalize_response(request, response, *args, **kwargs)

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)

    def validated(self, serializer_class=None, instance=None) -> dict:
        serializer = (serializer_class or self.get_serializer_class())(
            instance, data=self.request.data, partial=instance is not None
        )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def answer(self, instance, status_code=status.HTTP_200_OK) -> Response:
        # Re-read through the view's queryset so the answer has the same shape as a GET.
        instance = self.get_queryset().get(pk=instance.pk)
        return Response(self.get_serializer(instance).data, status=status_code)
