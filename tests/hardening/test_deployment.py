"""Production settings pass Django's deployment checks without a single warning."""

import os
import secrets
import subprocess
import sys

import pytest

from tests.servers import ROOT


def check_deploy(**overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECURE_")}
    env.update(
        DATABASE_URL="postgres://app@db.internal:5432/licensing",  # not contacted by the checks
        SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(50),
        USER_TOKEN_HASH_KEY=secrets.token_urlsafe(50),
        SIGNING_KEY_ENCRYPTION_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS=".licensing.example.com",
        PUBLIC_DOMAIN="licensing.example.com",
        REDIS_URL="redis://cache.internal:6379/0",  # the production counter store; not contacted
    )
    env.pop("DEBUG", None)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"TRUSTED_PROXY_COUNT": "1"},
        {"SECURE_HSTS_PRELOAD": "on"},
        {  # docs/deployment.md: behind HAProxy and pgbouncer, with a replica
            "TRUSTED_PROXY_COUNT": "1",
            "DATABASE_POOLING": "transaction",
            "DATABASE_REPLICA_URL": "postgres://app@pgbouncer.internal:6432/licensing_replica",
        },
    ],
    ids=["defaults", "behind-a-proxy", "hsts-preload", "cluster"],
)
def test_production_settings_pass_check_deploy_without_warnings(overrides):
    done = check_deploy(**overrides)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output and "?:" not in output


def test_without_redis_the_postgresql_counter_passes_without_a_remark():
    # django-ratelimit's W001 ("not officially supported" cache) is silenced for
    # tenants.cache.PostgresCounterCache only: its increment is atomic (test_ratelimit_live.py).
    done = check_deploy(REDIS_URL="")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in output
    assert "django_ratelimit" not in output and "WARNING" not in output


def test_the_check_does_catch_an_unsafe_setting():
    # The same command fails when a protection is switched off, so the test above can fail.
    done = check_deploy(SECURE_SSL_REDIRECT="off")
    assert done.returncode != 0
    assert "security.W008" in done.stdout + done.stderr


@pytest.mark.parametrize("name", ["SECRET_KEY", "SIGNING_KEY_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_keys(name):
    done = check_deploy(**{name: ""})
    assert done.returncode != 0
    assert f"{name} must be set" in done.stderr


def test_production_refuses_a_signing_key_encryption_key_equal_to_another_key():
    same = secrets.token_urlsafe(50)
    done = check_deploy(SIGNING_KEY_ENCRYPTION_KEY=same, JWT_SIGNING_KEY=same)
    assert done.returncode != 0
    assert "must differ" in done.stderr


def test_production_refuses_short_keys():
    done = check_deploy(JWT_SIGNING_KEY="short-and-guessable")
    assert done.returncode != 0
    assert "JWT_SIGNING_KEY is too short" in done.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DATABASE_POOLING": "statement"}, "DATABASE_POOLING must be 'transaction'"),
        (
            {"DATABASE_REPLICA_URL": "postgres://app@replica.internal/licensing", "REDIS_URL": ""},
            "DATABASE_REPLICA_URL needs REDIS_URL",
        ),
    ],
    ids=["unknown-pooling-mode", "replica-without-redis"],
)
def test_a_wrong_database_setting_stops_the_start_with_its_name(overrides, message):
    done = check_deploy(**overrides)
    assert done.returncode != 0
    assert message in done.stderr
