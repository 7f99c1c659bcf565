"""The REST API of a tenant's domain; each app contributes its own `api/urls.py`."""

urlpatterns = []
