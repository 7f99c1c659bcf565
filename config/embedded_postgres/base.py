"""django-tenants' PostgreSQL backend, starting the embedded server before it connects."""

from pathlib import Path

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper

from config.embedded_postgres import ensure_server


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["host"] = ensure_server(Path(self.settings_dict["PGDATA"]))
        return params
