"""django-tenants' PostgreSQL backend, remembering the search_path of the open session.

django-tenants forgets which search_path the session has whenever the schema is chosen again, and
its middleware chooses it on every request (public first, then the tenant), so every request
began with a `SET search_path` round trip although a persistent connection (CONN_MAX_AGE) still
had the right one from the previous request. This backend skips the statement when the session
already has the path. It forgets the path whenever the session may have lost it: a new
connection, a rollback (a `SET` is undone with its transaction) or a rollback to a savepoint.
"""

from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls

# (schema, include public) -> its validated search path; one entry per schema used by the process.
_VALIDATED_PATHS: dict[tuple[str, bool], tuple[str, ...]] = {}


class DatabaseWrapper(TenantDatabaseWrapper):
    def __init__(self, *args, **kwargs):
        self._session_search_path = None
        super().__init__(*args, **kwargs)

    def _handle_search_path(self, cursor=None):
        if (
            self.search_path_set_schemas is None
            and self._session_search_path is not None
            and not self._setting_search_path
            and get_limit_set_calls()
            and self._get_cursor_search_paths() == self._session_search_path
        ):
            self.search_path_set_schemas = self._session_search_path
            return
        super()._handle_search_path(cursor)
        paths = self.search_path_set_schemas
        self._session_search_path = list(paths) if paths is not None else None

    def _get_cursor_search_paths(self):
        # django-tenants validates every part with a regex on each cursor; a schema's paths never
        # change, so they are validated once per schema and process.
        key = (self.schema_name, self.include_public_schema)
        paths = _VALIDATED_PATHS.get(key)
        if paths is None:
            paths = _VALIDATED_PATHS[key] = tuple(super()._get_cursor_search_paths())
        return list(paths)

    def forget_search_path(self) -> None:
        """For code that changed the search_path itself: the next query sets it again."""
        self.search_path_set_schemas = None
        self._session_search_path = None

    def connect(self):
        self._session_search_path = None
        super().connect()

    def close(self):
        self._session_search_path = None
        super().close()

    def rollback(self):
        self._session_search_path = None
        super().rollback()

    def savepoint_rollback(self, sid):
        try:
            super().savepoint_rollback(sid)
        finally:
            self._session_search_path = None
