from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and platform licences"

    def ready(self):
        from tenants import resolution  # noqa: F401 (connects the tenant-cache invalidation signals)
