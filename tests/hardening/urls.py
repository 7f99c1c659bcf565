"""A tenant urlconf with views that fail on purpose, for the failure-behaviour tests."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import OperationalError
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from config.urls import urlpatterns as tenant_urlpatterns


class Failing(Exception):
    pass


def plain_view_failure(request):
    raise Failing("a bug in a plain Django view")


def plain_view_database_down(request):
    raise OperationalError("connection refused")


def plain_view_refusal(request):
    raise PermissionDenied


def plain_view_bad_input(request):
    raise ValidationError({"name": ["Not this name."]})


class ApiViewRefusal(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise PermissionDenied


class ApiViewBadInput(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise ValidationError({"name": ["Not this name."]})


class ApiViewFailure(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise Failing("a bug in a DRF view")


class ApiViewDatabaseDown(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise OperationalError("connection refused")


urlpatterns = [
    path("v1/test-failures/plain", plain_view_failure),
    path("v1/test-failures/plain-db", plain_view_database_down),
    path("v1/test-failures/api", ApiViewFailure.as_view()),
    path("v1/test-failures/api-db", ApiViewDatabaseDown.as_view()),
    path("v1/test-failures/plain-refusal", plain_view_refusal),
    path("v1/test-failures/api-refusal", ApiViewRefusal.as_view()),
    path("v1/test-failures/plain-bad-input", plain_view_bad_input),
    path("v1/test-failures/api-bad-input", ApiViewBadInput.as_view()),
    *tenant_urlpatterns,
]


class FailingMiddleware:
    """Placed inside ApiErrorMiddleware: fails before any view for /v1/test-failures/middleware*."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path == "/v1/test-failures/middleware":
            raise Failing("a bug in a middleware")
        if request.path == "/v1/test-failures/middleware-db":
            raise OperationalError("connection refused")
        return self.get_response(request)
