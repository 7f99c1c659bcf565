"""The benchmark's environment: which database, which keys, production settings (DEBUG off).

The driver process and every server it starts share this environment, so they see the same
database and signing keys. Without DATABASE_URL the embedded PostgreSQL server of the project is
started and a database of the benchmark's own (`licensing_bench`, `licensing_bench_smoke`) is
created on it, so the development database is left alone.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def embedded_database_url(name: str) -> str:
    sys.path.insert(0, str(ROOT))
    from config.embedded_postgres import ensure_server

    data_dir = Path(os.environ.get("DATA_DIR") or ROOT / ".data")
    socket_dir = ensure_server(data_dir / "postgres")
    import psycopg

    with psycopg.connect(
        host=socket_dir, user="postgres", dbname="postgres", autocommit=True
    ) as db:
        if not db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            db.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@{quote(socket_dir, safe='')}/{name}"


def configure(database: str) -> dict[str, str]:
    """Set this process's environment for Django and return it (for the servers)."""
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = embedded_database_url(database)
    os.environ["DEBUG"] = "0"
    for name in (
        "SECRET_KEY",
        "JWT_SIGNING_KEY",
        "USER_TOKEN_HASH_KEY",
        "SIGNING_KEY_ENCRYPTION_KEY",
    ):
        os.environ.setdefault(name, f"bench-{name.lower()}-{secrets.token_urlsafe(32)}")
    os.environ["BENCH_REFERENCE"] = "1"
    # Plain HTTP on the loopback: TLS is the load balancer's work in a deployment.
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    return dict(os.environ)


def setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()
