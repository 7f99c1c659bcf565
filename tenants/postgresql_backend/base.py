"""django-tenants' PostgreSQL backend, remembering the search_path of the open session.

django-tenants forgets which search_path the session has whenever the schema is chosen again, and
its middleware chooses it on every request (public first, then the tenant), so every request
began with a `SET search_path` round trip although a persistent connection (CONN_MAX_AGE) still
had the right one from the previous request. This backend skips the statement when the session
already has the path. It forgets the path whenever the session may have lost it: a new
connection, a rollback (a `SET` is undone with its transaction) or a rollback to a savepoint.

Behind a transaction pooler (DATABASE_POOLING=transaction) a session outlives no transaction, so
nothing is remembered: every statement carries its search_path (SearchPathCursor), and no
statement is prepared.
"""

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql.base import Cursor as ClientBindingCursor
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresOperations
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls

# Statements sent without the path in front: transaction control (a SET would fail in an aborted
# transaction, before the ROLLBACK that ends it) and what PostgreSQL refuses inside a transaction
# block. None of them reads the search_path, except CREATE/DROP INDEX CONCURRENTLY (also sent
# alone: run migrations against the primary itself, not through the pooler).
PATH_FREE_STATEMENTS = (
    "ROLLBACK",
    "COMMIT",
    "RELEASE",
    "SAVEPOINT",
    "BEGIN",
    "START TRANSACTION",
    "SET CONSTRAINTS",
    "CREATE DATABASE",
    "DROP DATABASE",
    "ALTER SYSTEM",
    "VACUUM",
    "CREATE TABLESPACE",
    "DROP TABLESPACE",
)


class SearchPathCursor(ClientBindingCursor):
    """A cursor that sends its search_path in front of every statement, in the same query.

    Behind a transaction pooler (pgbouncer `pool_mode = transaction`) consecutive statements of one
    client may run on different server sessions, so a `SET search_path` sent on its own -- once
    per session, or even before each statement -- can set another session's path. Sent as
    `SET search_path TO ...; <statement>` in one simple-protocol query (client-side binding), both
    run in one implicit transaction on one server session: no extra round trip, nothing to
    remember. The cursor then moves on to the statement's own result.
    """

    search_path_statement = ""  # set by DatabaseWrapper._handle_search_path

    def execute(self, query, params=None, **kwargs):
        if not self.search_path_statement:  # the backend's own setup (time zone, role)
            return super().execute(query, params, **kwargs)
        if isinstance(query, bytes):
            query = query.decode()
        if not isinstance(query, str):
            query = query.as_string(self.connection)
        head = query[:64].lstrip().upper()
        if head.startswith(("SET SEARCH_PATH", "SET LOCAL SEARCH_PATH")):
            # The caller sets the path itself (schema cloning, introspection) for the statements
            # that follow in its transaction: this cursor stops sending its own.
            self.search_path_statement = ""
            return super().execute(query, params, **kwargs)
        if head.startswith(PATH_FREE_STATEMENTS) or "CONCURRENTLY" in head:
            return super().execute(query, params, **kwargs)
        super().execute(f"{self.search_path_statement}; {query}", params, **kwargs)
        self.nextset()
        return self

    def executemany(self, query, params_seq, **kwargs):
        for params in params_seq:
            self.execute(query, params, **kwargs)


# (schema, include public) -> its validated search path; one entry per schema used by the process.
_VALIDATED_PATHS: dict[tuple[str, bool], tuple[str, ...]] = {}


class DatabaseOperations(PostgresOperations):
    def last_executed_query(self, cursor, sql, params):
        """The statements of api.statements' cursors are bound on the server (psycopg keeps no
        text of a prepared one): logged as Django's client-side binding would have sent them."""
        if isinstance(cursor, psycopg.ClientCursor):
            return super().last_executed_query(cursor, sql, params)
        try:
            return self.compose_sql(sql, params)
        except psycopg.Error:
            return sql


class DatabaseWrapper(TenantDatabaseWrapper):
    ops_class = DatabaseOperations

    def __init__(self, *args, **kwargs):
        self._session_search_path = None
        super().__init__(*args, **kwargs)

    @property
    def transaction_pooling(self) -> bool:
        """DATABASE_POOLING=transaction: a pooler may give each transaction another session."""
        return self.settings_dict.get("POOLING") == "transaction"

    def get_connection_params(self):
        params = super().get_connection_params()
        if self.transaction_pooling:
            if self.settings_dict["OPTIONS"].get("server_side_binding") is True:
                raise ImproperlyConfigured(
                    "DATABASE_POOLING=transaction needs client-side binding: drop "
                    "server_side_binding from the database OPTIONS."
                )
            params["cursor_factory"] = SearchPathCursor
            # Prepared statements live in one server session: never prepare behind a pooler.
            params["prepare_threshold"] = None
        return params

    def _handle_search_path(self, cursor=None):
        if self.transaction_pooling:
            self._prefix_search_path(cursor)
            return
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

    def _prefix_search_path(self, cursor) -> None:
        """Transaction pooling: the cursor carries the path to every statement it sends, and no
        session's path is remembered (the next statement may run in another session)."""
        if cursor is None:
            raise ImproperlyConfigured(
                "DATABASE_POOLING=transaction cannot use server-side cursors: "
                "set DISABLE_SERVER_SIDE_CURSORS."
            )
        paths = self._get_cursor_search_paths()  # validated schema names
        cursor = getattr(cursor, "cursor", cursor)  # the driver's cursor inside Django's wrapper
        cursor.search_path_statement = "SET search_path TO " + ",".join(f'"{p}"' for p in paths)
        self.search_path_set_schemas = None
        self._session_search_path = None

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
