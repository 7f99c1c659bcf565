from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and platform licences"

    def ready(self):
        from django.contrib import admin

        from tenants import resolution  # noqa: F401 (connects the tenant-cache invalidation signals)

        # One admin site serves the platform and every tenant; its pages name the product.
        admin.site.site_header = admin.site.site_title = "Licensing platform"
        admin.site.site_url = "/v1/docs"  # "View site": the tenant's API documentation
