"""The project's backend (tenants/postgresql_backend), starting the embedded server first
(config.embedded_postgres) on the first connection."""

from pathlib import Path

from config.embedded_postgres import ensure_server
from tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["host"] = ensure_server(Path(self.settings_dict["PGDATA"]))
        return params
