from django.urls import path

from api.routers import resource
from licensing.api import views

urlpatterns = [
    path(
        "licenses/validate",
        views.LicenseValidationView.as_view(),
        name="license-validate",
    ),
    path("licenses/activate", views.LicenseActivationView.as_view(), name="license-activate"),
    path("licenses/deactivate", views.LicenseDeactivationView.as_view(), name="license-deactivate"),
    path("licenses/heartbeat", views.LicenseHeartbeatView.as_view(), name="license-heartbeat"),
    path("licenses/checkout", views.LicenseCheckoutView.as_view(), name="license-checkout"),
    path("licenses/revocations", views.RevocationsView.as_view(), name="license-revocations"),
    path("signing-keys", views.SigningKeysView.as_view(), name="signing-keys"),
    *resource("users", views.UserViewSet, "user"),
    *resource("groups", views.GroupViewSet, "group"),
    *resource("products", views.ProductViewSet, "product"),
    *resource("plans", views.PlanViewSet, "plan"),
    *resource("customers", views.CustomerViewSet, "customer"),
    *resource("licenses", views.LicenseViewSet, "license"),
    *resource("machines", views.MachineViewSet, "machine"),
]
