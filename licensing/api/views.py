"""The licensing API (CONTRACT section 5): parse, call a service, shape the answer.

Querysets need no tenant filter: each tenant's rows live in its own schema, so an id of another
tenant is simply not there and answers 404.
"""

from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.db import connection, router
from django.db.models import Prefetch, Q
from django.utils import timezone
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from api.client_address import client_address
from api.errors import ACTIVATION_LIMIT_REACHED, DEACTIVATION_LIMIT_REACHED, error_body
from api.pagination import ApiCursorPagination
from api.statements import prepared_cursor
from api.timestamps import use_utc_text_timestamps
from api.views import MAX_ID, ResourceViewSet, object_id
from licensing import clock, offline, services
from licensing.api import openapi
from licensing.api.serializers import (
    LICENSE_COLUMNS,
    ActivationRequestSerializer,
    CheckoutRequestSerializer,
    CustomerSerializer,
    GroupSerializer,
    LicenseKeyRequestSerializer,
    LicenseSerializer,
    LicenseUpdateSerializer,
    MachineSerializer,
    PlanSerializer,
    ProductSerializer,
    UserSerializer,
    ValidatedLicenseSerializer,
    ValidationRequestSerializer,
    activated_machine_answer,
    checked_license_answer,
    license_answer,
    license_answers,
    plain_activation_request,
    plain_machine_request,
    plain_validation_request,
)
from licensing.models import (
    Customer,
    Group,
    License,
    LicenseStatus,
    Machine,
    MachineStatus,
    Plan,
    Product,
    ValidationCode,
)
from tenants.http_signatures import SignedAnswers, iso_utc, signed_body
from tenants.signing_keys import jwks
from tenants.throttling import count_failed_attempt, guard_against_guessing
from tokens.catalogue import Permission
from tokens.services import RowRead

User = get_user_model()
NO_STORE = {"Cache-Control": "no-store"}


@openapi.users
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


@openapi.groups
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


@openapi.products
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


@openapi.plans
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


@openapi.customers
class CustomerViewSet(ResourceViewSet):
    """Read-only over the API; customers are kept in the admin."""

    required_permissions = {"GET": (Permission.VIEW_CUSTOMERS,)}
    serializer_class = CustomerSerializer
    queryset = Customer.objects.all()
    filters = {"external_id": (lambda: serializers.CharField(max_length=128), "external_id")}


def expired_license_filter(expired: bool) -> Q:
    unexpired = services.unexpired(clock.now())
    return ~unexpired if expired else unexpired


def _license_column(name: str) -> str:
    return connection.ops.quote_name(License._meta.get_field(name).column)


# The WHERE of each filter of LicenseViewSet.filters, as the ORM writes it (the expired filter:
# services.unexpired at clock.now(), or its negation).
_LICENSE_CONDITIONS = {
    "status": "{status} = %s",
    "product": "{product_id} = %s",
    "customer": "{customer_id} = %s",
    "user": "{user_id} = %s",
    ("expired", False): "({expires_at} IS NULL OR {expires_at} > %s)",
    ("expired", True): "({expires_at} IS NOT NULL AND {expires_at} <= %s)",
}
_license_page_statements: dict[tuple, str] = {}


def license_page_statement(filters: dict, position, reverse: bool, offset: int, limit: int):
    """(sql, params) of a page of licences: DRF's CursorPagination query over the filtered
    queryset, ordered by id (descending if `reverse`), after (before) `position`."""
    keys = tuple((name, value) if name == "expired" else name for name, value in filters.items())
    shape = (keys, position is not None, reverse, offset > 0)
    sql = _license_page_statements.get(shape)
    if sql is None:
        columns = {
            name: _license_column(name)
            for name in ("id", "status", "product_id", "customer_id", "user_id", "expires_at")
        }
        conditions = [_LICENSE_CONDITIONS[key].format(**columns) for key in keys]
        if position is not None:
            conditions.append(f"{columns['id']} {'<' if reverse else '>'} %s")
        sql = "SELECT {} FROM {}{} ORDER BY {} {} LIMIT %s{}".format(  # noqa: S608 (quoted names)
            ", ".join(_license_column(name) for name in LICENSE_COLUMNS),
            connection.ops.quote_name(License._meta.db_table),
            " WHERE " + " AND ".join(conditions) if conditions else "",
            columns["id"],
            "DESC" if reverse else "ASC",
            " OFFSET %s" if offset > 0 else "",
        )
        _license_page_statements[shape] = sql
    params = [clock.now() if name == "expired" else value for name, value in filters.items()]
    if position is not None:
        params.append(position)
    params.append(limit)
    if offset > 0:
        params.append(offset)
    return sql, params


@openapi.licenses
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
        # Independent of `status`: an `active` licence past its expires_at is expired.
        "expired": (serializers.BooleanField, expired_license_filter),
        "product": (object_id, "product_id"),
        "customer": (object_id, "customer_id"),
        "user": (object_id, "user_id"),
    }

    def row_read_with_token(self, request) -> RowRead | None:
        """A plain GET of one licence reads it in the User Token's statement (tokens.services);
        with a filter in the query string (a 400 or a 404 to give) it is read as before."""
        pk = self.kwargs.get("pk")
        if (
            self.action != "retrieve"
            or request.method != "GET"
            or not 0 < pk <= MAX_ID
            or any(name in request.query_params for name in self.filters)
        ):
            return None
        return RowRead(License, LICENSE_COLUMNS, pk)

    def retrieve(self, request, pk=None):
        row = getattr(request.auth, "row", None)
        if row is None:  # not read with the token, or no such licence: get_object answers
            return super().retrieve(request, pk)
        return Response(license_answer(row))

    # A page is one statement written once per filter shape (license_page_statement), its rows
    # tuples, answered without a serializer or model instances (license_answers:
    # LicenseSerializer's JSON, byte for byte); DRF's cursors and links (paginate_rows).
    def list_page(self):
        filters = self.filter_values()
        alias = router.db_for_read(License)
        zone = timezone.get_current_timezone()
        utc_text = False

        def read(position, reverse, offset, limit):
            nonlocal utc_text
            sql, params = license_page_statement(filters, position, reverse, offset, limit)
            with prepared_cursor(alias) as cursor:
                utc_text = use_utc_text_timestamps(cursor, zone)
                cursor.execute(sql, params)
                return cursor.fetchall()

        rows = self.paginator.paginate_rows(self.request, read)
        page = license_answers(rows, zone, utc_text=utc_text)
        return self.get_paginated_response(page)

    def create(self, request):
        license = services.issue_license(**self.validated())
        return self.answer(license, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        license = self.get_object()
        changes = self.validated(LicenseUpdateSerializer, instance=license)
        return self.answer(services.update_license(license, **changes))


def machine_status_filter(status: str) -> Q:
    now = clock.now()
    if status == MachineStatus.DEACTIVATED:
        return Q(deactivated_at__isnull=False)
    if status == MachineStatus.DEAD:
        return Q(deactivated_at__isnull=True, dies_at__lte=now)
    return services.alive(now)


def active_machine_filter(active: bool) -> Q:
    return services.alive(clock.now()) if active else ~services.alive(clock.now())


@openapi.machines
class MachineViewSet(ResourceViewSet):
    """The machines licences are activated on; DELETE deactivates (not counted against the
    licence's churn budget)."""

    required_permissions = {
        "GET": (Permission.VIEW_LICENSES,),
        "DELETE": (Permission.EDIT_LICENSES,),
    }
    serializer_class = MachineSerializer
    queryset = Machine.objects.select_related("license__plan")
    filters = {
        "license": (object_id, "license_id"),
        "fingerprint": (
            lambda: serializers.CharField(max_length=255, trim_whitespace=False),
            "fingerprint",
        ),
        "active": (serializers.BooleanField, active_machine_filter),
        "status": (
            lambda: serializers.ChoiceField(choices=MachineStatus.choices),
            machine_status_filter,
        ),
    }

    def destroy(self, request, pk=None):
        services.deactivate_machine(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def checked(request, code: ValidationCode, abuse_scope: str) -> None:
    """A key that matches no licence is a failed guess of the client's address."""
    if code == ValidationCode.NOT_FOUND:
        count_failed_attempt(request, abuse_scope)


class ClientApplicationView(SignedAnswers, APIView):
    """An endpoint for client applications: no token, signed answers (tenants.http_signatures),
    counted against the tenant's licence like any request."""

    authentication_classes = []
    permission_classes = [AllowAny]
    abuse_scope = "validate"  # one guessing budget for every endpoint that takes a licence key
    request_serializer: type[serializers.Serializer]
    # The serializer's validated data of a request it takes as sent, found without it; None for
    # anything else (licensing.api.serializers.plain_validation_request).
    plain_request: Callable[[object], dict | None] | None = None

    def key_request(self) -> dict:
        """The request's fields, once its address is allowed another try (else 429)."""
        guard_against_guessing(self.request, self.abuse_scope)
        return self.request_fields(self.request.data)

    def request_fields(self, data) -> dict:
        # A well-formed request needs no serializer; anything unusual goes through it.
        if self.plain_request is not None:
            fields = self.plain_request(data)
            if fields is not None:
                return fields
        serializer = self.request_serializer(data=data)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def checked(self, code: ValidationCode) -> None:
        checked(self.request, code, self.abuse_scope)


# An answer before it is a response: status, body, headers (a view's and its hot path's).
Answer = tuple[int, dict, dict]


def respond(answer: Answer) -> Response:
    status_code, body, headers = answer
    return Response(body, status=status_code, headers=headers)


def machine_answer(request, result: services.ValidationResult, nonce, status_code=200) -> Answer:
    """The machine of an activation or heartbeat, or the licence check that refused it."""
    if result.machine is None:
        body, status_code = validation_body(result.code, result.license), status.HTTP_200_OK
    else:
        body = activated_machine_answer(result.machine, result.rules)
    return status_code, signed_body(request, body, nonce), NO_STORE


def validation_body(code: ValidationCode, license) -> dict:
    """The body of a licence check: validation, or an activation or heartbeat refused by it."""
    return code_body(code, ValidatedLicenseSerializer(license).data if license else None)


def code_body(code: ValidationCode, license: dict | None) -> dict:
    return {
        "valid": code == ValidationCode.VALID,
        "code": code.value,
        "detail": code.label,
        "license": license,
    }


@openapi.validation
class LicenseValidationView(ClientApplicationView):
    """POST /v1/licenses/validate: for client applications, without a token."""

    request_serializer = ValidationRequestSerializer
    plain_request = staticmethod(plain_validation_request)

    def post(self, request):
        return Response(validation_answer(request, self.key_request()), headers=NO_STORE)


def validation_answer(request, data: dict) -> dict:
    """The signed body answering a validation of `data` (the request's fields), once the client's
    address was allowed the attempt."""
    return checked_answer(request, data, read_key(data))


def read_key(data: dict) -> services.KeyCheck:
    """The licence's columns by one prepared statement (the record comes with the answer)."""
    return services.read_license_key(
        data["key"], product_code=data.get("product"), fingerprint=data.get("fingerprint")
    )


def checked_answer(request, data: dict, check: services.KeyCheck) -> dict:
    """The signed body of a key's check, its record made and a failed guess counted: this
    view's and its hot path's (licensing.api.hot_path)."""
    services.record_check(check, client_address(request))
    checked(request, check.code, LicenseValidationView.abuse_scope)
    license = check.license
    answer = code_body(check.code, checked_license_answer(license) if license else None)
    return signed_body(request, answer, data.get("nonce"))


def limit_reached(message: str, retry_after: int | None = None) -> Answer:
    headers = {**NO_STORE, **({"Retry-After": str(retry_after)} if retry_after else {})}
    return status.HTTP_409_CONFLICT, error_body(message), headers


@openapi.activation
class LicenseActivationView(ClientApplicationView):
    """A client application binds its licence to this machine (its fingerprint).

    201: activated, one of the plan's `max_activations` slots taken. 200: the machine, already
    active with this fingerprint (idempotent), or the licence's validation code when it is not
    VALID. 409: every slot is taken.
    """

    request_serializer = ActivationRequestSerializer
    plain_request = staticmethod(plain_activation_request)
    error_responses = {"409": "ActivationLimitReached"}  # api.openapi: components/responses

    def post(self, request):
        return respond(activation_answer(request, self.key_request()))


def activation_answer(request, fields: dict) -> Answer:
    """The answer to an activation with these request fields, once the client's address was
    allowed the attempt: LicenseActivationView's and its hot path's (licensing.api.hot_path)."""
    fields = dict(fields)
    nonce = fields.pop("nonce", None)
    try:
        result = services.activate_machine(
            fields.pop("key"), fields.pop("fingerprint"), request=request, **fields
        )
    except services.ActivationLimitReached:
        return limit_reached(ACTIVATION_LIMIT_REACHED)
    checked(request, result.code, ClientApplicationView.abuse_scope)
    created = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return machine_answer(request, result, nonce, created)


@openapi.heartbeat
class LicenseHeartbeatView(ClientApplicationView):
    """An activated machine says it is still running.

    200: the machine with its next `heartbeat_deadline` (revived if it was dead for less than the
    plan's `revive_seconds` and a slot is free), or the code that refused it: the licence's,
    `FINGERPRINT_NOT_ACTIVATED`, or `HEARTBEAT_DEAD` (activate it again). 409: dead, and its slot
    was taken meanwhile.
    """

    request_serializer = LicenseKeyRequestSerializer
    plain_request = staticmethod(plain_machine_request)
    error_responses = {"409": "ActivationLimitReached"}  # api.openapi: components/responses

    def post(self, request):
        return respond(heartbeat_answer(request, self.key_request()))


def heartbeat_answer(request, data: dict) -> Answer:
    """The answer to a heartbeat with these request fields, once the client's address was allowed
    the attempt: LicenseHeartbeatView's and its hot path's (licensing.api.hot_path)."""
    try:
        result = services.heartbeat(data["key"], data["fingerprint"], request=request)
    except services.ActivationLimitReached:
        return limit_reached(ACTIVATION_LIMIT_REACHED)
    checked(request, result.code, ClientApplicationView.abuse_scope)
    return machine_answer(request, result, data.get("nonce"))


@openapi.deactivation
class LicenseDeactivationView(ClientApplicationView):
    """A client application frees its machine's slot.

    204: deactivated. Any licence may free its machines, valid or not, within the plan's churn
    budget (`max_deactivations` per 30 days; 409 with `Retry-After` past it).
    """

    request_serializer = LicenseKeyRequestSerializer
    plain_request = staticmethod(plain_machine_request)
    error_responses = {"404": "MachineNotFound", "409": "DeactivationLimitReached"}

    def post(self, request):
        data = self.key_request()
        try:
            services.deactivate_by_client(data["key"], data["fingerprint"], request=request)
        except services.MachineNotFound:
            self.checked(ValidationCode.NOT_FOUND)
            raise NotFound from None
        except services.DeactivationLimitReached as refused:
            return respond(limit_reached(DEACTIVATION_LIMIT_REACHED, refused.retry_after))
        return Response(status=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


@openapi.checkout
class LicenseCheckoutView(ClientApplicationView):
    """POST /v1/licenses/checkout: a signed (optionally encrypted) offline licence file."""

    request_serializer = CheckoutRequestSerializer

    def post(self, request):
        data = self.key_request()
        checkout = offline.check_out_license(
            data["key"],
            tenant=request.tenant,
            fingerprint=data.get("fingerprint"),
            ttl_seconds=data.get("ttl_seconds"),
            encrypt=data["encrypt"],
            product_code=data.get("product"),
            client_address=client_address(request),
        )
        self.checked(checkout.code)
        body = {
            **validation_body(checkout.code, checkout.license),
            "license_file": checkout.license_file,
            "expires": iso_utc(checkout.expires) if checkout.expires else None,
        }
        return Response(self.signed_body(body, data.get("nonce")), headers=NO_STORE)


@openapi.signing_keys
class SigningKeysView(ClientApplicationView):
    """GET /v1/signing-keys: the tenant's public keys (a JWKS), current first."""

    def get(self, request):
        # Revalidated on every use: right after a rotation a cached set would lack the new key.
        return Response(jwks(request.tenant), headers={"Cache-Control": "no-cache"})


@openapi.revocations
class RevocationsView(ClientApplicationView):
    """GET /v1/licenses/revocations: licences revoked or suspended within the last 365 days, so
    an offline client can drop a licence file early (docs/offline.md)."""

    pagination_class = ApiCursorPagination
    paginated = True  # api.openapi: `limit` and `cursor` are validated (400)

    def get(self, request):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(offline.revoked_licenses(), request, view=self)
        results = [
            {"license_key_hash": offline.license_key_hash(license.key), "epoch": license.epoch}
            for license in page
        ]
        body = paginator.get_paginated_response(results).data
        return Response(self.signed_body(body), headers=NO_STORE)
