"""The licensing API (CONTRACT section 5): parse, call a service, shape the answer.

Querysets need no tenant filter: each tenant's rows live in its own schema, so an id of another
tenant is simply not there and answers 404.
"""

from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from config import db_routing
from config.client_address import client_address
from licensing import services
from licensing.api.serializers import (
    CustomerSerializer,
    GroupSerializer,
    LicenseSerializer,
    LicenseUpdateSerializer,
    PlanSerializer,
    ProductSerializer,
    UserSerializer,
    ValidatedLicenseSerializer,
    ValidationRequestSerializer,
)
from licensing.models import Customer, Group, License, LicenseStatus, Plan, Product, ValidationCode
from tenants.throttling import count_failed_attempt, guard_against_guessing
from tokens.catalogue import Permission

User = get_user_model()


def object_id():
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class ResourceViewSet(GenericViewSet):
    """A list/detail resource. `filters` maps a query parameter to a factory of the DRF field that
    validates it (a bad value answers 400) and, optionally, the lookup it filters on."""

    filters: dict[str, tuple] = {}

    def filter_queryset(self, queryset):
        lookups, errors = {}, {}
        for name, (make_field, lookup) in self.filters.items():
            raw = self.request.query_params.get(name)
            if raw is None:
                continue
            try:
                lookups[lookup] = make_field().run_validation(raw)
            except ValidationError as exc:
                errors[name] = exc.detail
        if errors:
            raise ValidationError(errors)
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


class UserViewSet(ResourceViewSet):
    required_permissions = {
        "GET": (Permission.VIEW_USERS,),
        "POST": (Permission.CREATE_USERS,),
        "PATCH": (Permission.EDIT_USERS,),
        "DELETE": (Permission.DELETE_USERS,),
    }
    serializer_class = UserSerializer
    queryset = User.objects.prefetch_related(
        Prefetch("licensing_groups", queryset=Group.objects.only("id"))
    )
    filters = {
        "username": (lambda: serializers.CharField(max_length=150), "username"),
        "is_active": (serializers.BooleanField, "is_active"),
    }

    def create(self, request):
        user = services.create_user(**self.validated())
        return self.answer(user, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        user = self.get_object()
        return self.answer(services.update_user(user, **self.validated(instance=user)))

    def destroy(self, request, pk=None):
        services.delete_user(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupViewSet(ResourceViewSet):
    required_permissions = {
        "GET": (Permission.VIEW_USERS,),
        "POST": (Permission.CREATE_GROUPS,),
        "PATCH": (Permission.EDIT_GROUPS,),
        "DELETE": (Permission.DELETE_GROUPS,),
    }
    serializer_class = GroupSerializer
    queryset = Group.objects.prefetch_related(Prefetch("members", queryset=User.objects.only("id")))
    filters = {"member": (object_id, "members")}

    def create(self, request):
        group = services.create_group(**self.validated())
        return self.answer(group, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        group = self.get_object()
        return self.answer(services.update_group(group, **self.validated(instance=group)))

    def destroy(self, request, pk=None):
        services.delete_group(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductViewSet(ResourceViewSet):
    required_permissions = {
        "GET": (Permission.VIEW_PRODUCTS,),
        "POST": (Permission.EDIT_PRODUCTS,),
        "PATCH": (Permission.EDIT_PRODUCTS,),
    }
    serializer_class = ProductSerializer
    queryset = Product.objects.prefetch_related(
        Prefetch("plans", queryset=Plan.objects.order_by("id"))
    )
    filters = {
        "code": (lambda: serializers.CharField(max_length=64), "code"),
        "active": (serializers.BooleanField, "active"),
    }

    def create(self, request):
        product = services.create_product(**self.validated())
        return self.answer(product, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        product = self.get_object()
        return self.answer(services.update_product(product, **self.validated(instance=product)))


class PlanViewSet(ResourceViewSet):
    required_permissions = {
        "GET": (Permission.VIEW_PRODUCTS,),
        "POST": (Permission.EDIT_PRODUCTS,),
        "PATCH": (Permission.EDIT_PRODUCTS,),
    }
    serializer_class = PlanSerializer
    queryset = Plan.objects.all()
    filters = {"product": (object_id, "product_id")}

    def create(self, request):
        plan = services.create_plan(**self.validated())
        return self.answer(plan, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        plan = self.get_object()
        return self.answer(services.update_plan(plan, **self.validated(instance=plan)))


class CustomerViewSet(ResourceViewSet):
    """Read-only over the API; customers are kept in the admin."""

    required_permissions = {"GET": (Permission.VIEW_CUSTOMERS,)}
    serializer_class = CustomerSerializer
    queryset = Customer.objects.all()
    filters = {"external_id": (lambda: serializers.CharField(max_length=128), "external_id")}


class LicenseViewSet(ResourceViewSet):
    required_permissions = {
        "GET": (Permission.VIEW_LICENSES,),
        "POST": (Permission.EDIT_LICENSES,),
        "PATCH": (Permission.EDIT_LICENSES,),
    }
    serializer_class = LicenseSerializer
    queryset = License.objects.all()
    filters = {
        "status": (lambda: serializers.ChoiceField(choices=LicenseStatus.choices), "status"),
        "product": (object_id, "product_id"),
        "customer": (object_id, "customer_id"),
        "user": (object_id, "user_id"),
    }

    def create(self, request):
        license = services.issue_license(**self.validated())
        return self.answer(license, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        license = self.get_object()
        changes = self.validated(LicenseUpdateSerializer, instance=license)
        return self.answer(services.update_license(license, **changes))


class LicenseValidationView(APIView):
    """POST /v1/licenses/validate: for client applications, without a token."""

    authentication_classes = []
    permission_classes = [AllowAny]
    abuse_scope = "validate"  # tenants.throttling: guessing keys is slowed per address

    def post(self, request):
        guard_against_guessing(request, self.abuse_scope)
        serializer = ValidationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.validate_license_key(
            serializer.validated_data["key"],
            product_code=serializer.validated_data.get("product"),
            client_address=client_address(request),
        )
        if result.code == ValidationCode.NOT_FOUND:
            count_failed_attempt(request, self.abuse_scope)
        body = {
            "valid": result.valid,
            "code": result.code.value,
            "detail": result.detail,
            "license": ValidatedLicenseSerializer(result.license).data if result.license else None,
        }
        return Response(body, headers={"Cache-Control": "no-store"})
