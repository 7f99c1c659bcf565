"""Settings for the licensing platform. Every environment variable is read here, and only here."""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

from config.embedded_postgres import settings_for as embedded_database
from config.keys import development_keys

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("DATA_DIR") or BASE_DIR / ".data")


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

# Development (the embedded database) defaults to DEBUG on; a deployment with DATABASE_URL to off.
DEBUG = env_bool("DEBUG", default=not DATABASE_URL)


MIN_KEY_LENGTH = 50  # characters; an HS256 key must have at least 256 bits of entropy


def key(name: str) -> str:
    """A secret from the environment; in development generated once into DATA_DIR."""
    value = os.environ.get(name, "")
    if value:
        if len(value) < MIN_KEY_LENGTH:
            raise ImproperlyConfigured(
                f"{name} is too short: use at least {MIN_KEY_LENGTH} random characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
            )
        return value
    if not DEBUG:
        raise ImproperlyConfigured(f"{name} must be set in the environment when DEBUG is off.")
    return development_keys(DATA_DIR)[name]


SECRET_KEY = key("SECRET_KEY")
JWT_SIGNING_KEY = key("JWT_SIGNING_KEY")
# HMAC key for stored User Token digests; USER_TOKEN_HASH_KEY_ID names it so it can be rotated.
USER_TOKEN_HASH_KEY = key("USER_TOKEN_HASH_KEY")
USER_TOKEN_HASH_KEY_ID = os.environ.get("USER_TOKEN_HASH_KEY_ID", "k1")
# Retired hashing keys still accepted during a rotation: "k0:oldkey,k00:olderkey". A token found
# under an old key is re-hashed under the current one on its next exchange.
USER_TOKEN_OLD_HASH_KEYS = dict(
    item.split(":", 1) for item in env_list("USER_TOKEN_OLD_HASH_KEYS", []) if ":" in item
)
# Encrypts the tenants' Ed25519 signing keys at rest (AES-256-GCM, key derived by HKDF-SHA256;
# tenants/signing_keys.py). Losing it loses every stored private key: rotate to new ones.
SIGNING_KEY_ENCRYPTION_KEY = key("SIGNING_KEY_ENCRYPTION_KEY")
if len({SECRET_KEY, JWT_SIGNING_KEY, USER_TOKEN_HASH_KEY, SIGNING_KEY_ENCRYPTION_KEY}) != 4:
    raise ImproperlyConfigured(
        "SECRET_KEY, JWT_SIGNING_KEY, USER_TOKEN_HASH_KEY and SIGNING_KEY_ENCRYPTION_KEY must differ."
    )
# Seconds a worker keeps using the signing key it loaded; a rotation reaches every worker within it.
SIGNING_KEY_CACHE_SECONDS = env_int("SIGNING_KEY_CACHE_SECONDS", 10)

PUBLIC_DOMAIN = os.environ.get("PUBLIC_DOMAIN", "localhost")
ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS",
    [PUBLIC_DOMAIN, f".{PUBLIC_DOMAIN}"] + (["127.0.0.1", "[::1]"] if DEBUG else []),
)
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# Failed attempts (wrong token, unknown licence key) one client address may make per window and
# scope before it is answered 429 (tenants.throttling); django-ratelimit's rate syntax, e.g. 20/m.
ABUSE_FAILURE_RATE = os.environ.get("ABUSE_FAILURE_RATE", "20/m")
if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", ABUSE_FAILURE_RATE):
    raise ImproperlyConfigured(
        f"ABUSE_FAILURE_RATE must look like 20/m, not {ABUSE_FAILURE_RATE!r}"
    )

# --- Applications: `tenants` lives in the public schema; `licensing`, `tokens`, `monitoring` and
# `webhooks` per tenant.

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django_ratelimit",  # its system checks vet the counter cache
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",  # OpenAPI at /v1/schema, Swagger UI at /v1/docs (api/openapi.py)
    "drf_spectacular_sidecar",  # Swagger UI's assets, served locally
    # The task queue's tables and functions live in the public schema only (docs/operations.md);
    # every job names the tenant schema it works in (tenants.tasks).
    "procrastinate.contrib.django",
    "demo",  # `manage.py demo` only: no models, it seeds the other apps' sample data
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "licensing",
    "tokens",
    "monitoring",  # security events, alerts and usage of User Tokens (tables named tokens_*)
    "webhooks",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# Reads may go to DATABASE_REPLICA_URL where a view allows it; migrations only to the primary.
DATABASE_ROUTERS = ["api.db_routing.ReplicaRouter", "django_tenants.routers.TenantSyncRouter"]
# Set the search_path once per schema change instead of before every query.
TENANT_LIMIT_SET_CALLS = True
# New tenants are copies of a migrated template schema; migrate_schemas skips up-to-date schemas
# and keeps the template current (tenants/schema_template.py, tenants/migration_executor.py).
TENANT_TEMPLATE_SCHEMA = "tenant_template"
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.get_executor"

MIDDLEWARE = [
    "tenants.middleware.TenantMiddleware",
    # RFC 9421 signatures on every answer of the views that ask for them, error answers included.
    "tenants.http_signatures.SignedAnswerMiddleware",
    # HTTPS redirect and secure headers around everything below, error answers included.
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on the admin and /v1/docs pages (scripts and styles from files only).
    "config.content_security.ContentSecurityPolicyMiddleware",
    # Expired licence -> 403 on /v1/; X-RateLimit-* headers on every /v1/ answer.
    "tenants.throttling.TenantLicenceMiddleware",
    "api.errors.ApiErrorMiddleware",
    # Plain requests to validate, heartbeat and activate, answered without URL resolution or DRF.
    "licensing.api.hot_path.HotPathMiddleware",
    # Django's own, for browser pages; they pass API requests (/v1/) through (config/middleware.py).
    "config.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",  # as is: it sets Content-Length on API answers
    "django.middleware.csrf.CsrfViewMiddleware",  # as is: `check --deploy` looks for it by name
    "config.middleware.AuthenticationMiddleware",
    "config.middleware.MessageMiddleware",
]

ROOT_URLCONF = "config.urls"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
# `python -m bench` only: its reference endpoint /bench/reference on the public domain (bench/).
if env_bool("BENCH_REFERENCE", False):
    PUBLIC_SCHEMA_URLCONF = "bench.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Django's own admin templates come before django-tenants' copies of the index and app
        # list, which carry inline styles the Content-Security-Policy refuses (and mark apps of
        # the other schema type, which tenants.admin.SchemaScopedAdmin hides anyway).
        "DIRS": [BASE_DIR / "templates", Path(django.__file__).parent / "contrib/admin/templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: DATABASE_URL, or the embedded PostgreSQL under DATA_DIR.

# DATABASE_POOLING=transaction when DATABASE_URL points at a transaction pooler (pgbouncer's
# pool_mode = transaction): each statement then carries its search_path, nothing is prepared and
# no server-side cursor is used (tenants/postgresql_backend, docs/deployment.md).
DATABASE_POOLING = os.environ.get("DATABASE_POOLING", "").strip().lower()
if DATABASE_POOLING not in ("", "session", "transaction"):
    raise ImproperlyConfigured(
        f"DATABASE_POOLING must be 'transaction', 'session' or empty, not {DATABASE_POOLING!r}"
    )
# A streaming replica for reads that may be a little stale (api/db_routing.py).
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "")
# After a write, the same token's reads stay on the primary for this many seconds.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 5)


def tenant_database(url: str) -> dict:
    """django-tenants' backend, without a `SET search_path` per request (tenants/postgresql_backend)."""
    database = dj_database_url.parse(url, conn_max_age=60)
    database["ENGINE"] = "tenants.postgresql_backend"
    database["POOLING"] = DATABASE_POOLING
    database["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOLING == "transaction"
    database.setdefault("TEST", {})
    return database


if DATABASE_URL:
    DATABASES = {"default": tenant_database(DATABASE_URL)}
    if os.environ.get("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"]["NAME"] = os.environ["TEST_DATABASE_NAME"]
    if DATABASE_REPLICA_URL:
        DATABASES["replica"] = tenant_database(DATABASE_REPLICA_URL)
        # Tests read the primary through the replica alias (there is no test replica).
        DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
elif DATABASE_REPLICA_URL:
    raise ImproperlyConfigured("DATABASE_REPLICA_URL needs DATABASE_URL (the primary).")
else:
    DATABASES = {"default": embedded_database(DATA_DIR / "postgres")}
if DATABASE_REPLICA_URL and not REDIS_URL:
    # Read-your-writes pins live in the cache: every worker of every host must see them.
    raise ImproperlyConfigured("DATABASE_REPLICA_URL needs REDIS_URL (a cache all hosts share).")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared by every worker; keys carry the tenant's schema.

CACHE_KEY_SETTINGS = {
    "KEY_FUNCTION": "django_tenants.cache.make_key",
    "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
}
if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis keeps one client per process; Django's own RedisCache builds a redis-py
            # client object for every operation (about 1 ms of CPU each, docs/performance.md).
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            **CACHE_KEY_SETTINGS,
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            **CACHE_KEY_SETTINGS,
        }
    }
# Rate-limit counters (django-ratelimit, tenants.throttling), shared by every worker with atomic
# increments: Redis (django-redis) with REDIS_URL, else a PostgreSQL-backed counter (tenants.cache).
if REDIS_URL:
    CACHES["ratelimit"] = {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        # An unreachable Redis costs a request at most this long; the API then fails open.
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        **CACHE_KEY_SETTINGS,
    }
else:
    CACHES["ratelimit"] = {
        "BACKEND": "tenants.cache.PostgresCounterCache",
        "LOCATION": "default",  # the database alias
        **CACHE_KEY_SETTINGS,
    }
RATELIMIT_USE_CACHE = "ratelimit"
# A counter that cannot be read lets the request through (logged at ERROR by tenants.throttling).
RATELIMIT_FAIL_OPEN = True

# --- Auth and admin

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
# Admin sessions end after this long without a request (each request starts the time again).
ADMIN_SESSION_IDLE_SECONDS = env_int("ADMIN_SESSION_IDLE_SECONDS", 8 * 3600)
if ADMIN_SESSION_IDLE_SECONDS < 60:
    raise ImproperlyConfigured("ADMIN_SESSION_IDLE_SECONDS must be at least 60.")
SESSION_COOKIE_AGE = ADMIN_SESSION_IDLE_SECONDS
SESSION_SAVE_EVERY_REQUEST = True  # only sessions that exist: API requests carry none

# --- Security headers, HTTPS and request limits (`check --deploy` clean; see docs/security.md)

# A body larger than this answers 413 {"error": "Request too large"} (checked on Content-Length).
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# Plain HTTP is redirected to HTTPS in production. Behind a TLS-terminating proxy keep it on and
# set TRUSTED_PROXY_COUNT: the proxy's X-Forwarded-Proto then tells which scheme the client used.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Regexes (no leading slash) of paths answered over plain HTTP too, e.g. a load balancer's probe.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [])
if TRUSTED_PROXY_COUNT > 0:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS goes out on HTTPS responses only; one year in production, covering the tenants' subdomains.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading commits the whole registrable domain to HTTPS in browsers for months: the operator's
# decision, off by default (and its deploy check silenced while off, see docs/security.md).
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if CACHES["ratelimit"]["BACKEND"] == "tenants.cache.PostgresCounterCache":
    # "Not officially supported" cache: its increment is atomic (tests/tenants/test_ratelimit_live.py)
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.W001")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Failed admin logins allowed per client address (django-ratelimit rate: count/period).
ADMIN_LOGIN_RATE = os.environ.get("ADMIN_LOGIN_RATE", "5/15m")
if not re.fullmatch(r"[1-9]\d*/\d*[smhd]", ADMIN_LOGIN_RATE):
    raise ImproperlyConfigured(f"ADMIN_LOGIN_RATE must look like 5/15m, not {ADMIN_LOGIN_RATE!r}")

# --- REST API

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.ApiJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["tokens.api.authentication.AccessTokenAuthentication"],
    # Default deny: a view must declare `required_permissions` per method (api.permissions).
    "DEFAULT_PERMISSION_CLASSES": ["tokens.api.permissions.HasTokenPermissions"],
    # Every request of a tenant counts against its licence (views must not replace this list).
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.TenantLicenceThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.ApiCursorPagination",
    "EXCEPTION_HANDLER": "api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "api.openapi.ApiAutoSchema",
}
API_MAX_PAGE_SIZE = 500

# --- OpenAPI description (drf-spectacular; see api/openapi.py)

SPECTACULAR_SETTINGS = {
    "TITLE": "Licensing platform API",
    "VERSION": "1",
    "DESCRIPTION": "The REST API of one tenant. Operations that need a token take "
    "`Authorization: Bearer <access token>` from `POST /v1/auth/token`; each operation's "
    'description names the permission it needs. Errors are `{"error": ...}` bodies.',
    "SCHEMA_PATH_PREFIX": r"/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Fields named `status` of licences, machines and the JWKS's keys: one enum name each.
    "ENUM_NAME_OVERRIDES": {
        "LicenseStatusEnum": "licensing.models.LicenseStatus",
        "MachineStatusEnum": "licensing.models.MachineStatus",
        "SigningKeyStatusEnum": ["current", "retiring"],
        "WebhookDeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.openapi.add_error_components",
    ],
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(hours=24),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

# --- Internationalisation, static files

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Logging: to stderr; tokens are redacted before any handler sees a record.

LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Every handler carries it; tokens.apps also redacts every record at creation.
    "filters": {"redact_secrets": {"()": "tokens.logging.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.server": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "INFO"},
        # Task registration at start-up would print a dozen INFO lines before every command.
        "procrastinate.periodic": {"level": "WARNING"},
        "procrastinate.blueprints": {"level": "WARNING"},
    },
}

# --- Monitoring and audit (the monitoring app: events, usage, alerts, audit; docs/operations.md)

# Security events (and acknowledged alerts, daily usage rows) older than this are pruned.
SECURITY_EVENT_RETENTION_DAYS = env_int("SECURITY_EVENT_RETENTION_DAYS", 90)
# Alerts: this many failed authentications from one address, or permission denials of one token,
# within the window raise an alert (a WARNING log line and an Alert in the tenant's admin).
ALERT_WINDOW_SECONDS = env_int("ALERT_WINDOW_SECONDS", 300)
ALERT_FAILED_AUTH_THRESHOLD = env_int("ALERT_FAILED_AUTH_THRESHOLD", 10)
ALERT_DENIED_THRESHOLD = env_int("ALERT_DENIED_THRESHOLD", 10)
# Request counts per token and day are kept in the cache and written at most this often per token.
USAGE_TRACKING = env_bool("USAGE_TRACKING", True)
USAGE_FLUSH_SECONDS = env_int("USAGE_FLUSH_SECONDS", 60)
# The quarterly review: a secret older than this is flagged "refresh overdue".
TOKEN_REFRESH_MAX_AGE_DAYS = env_int("TOKEN_REFRESH_MAX_AGE_DAYS", 90)

# --- Background jobs (procrastinate, in the public schema; tenants.tasks) and webhooks

# Workers find tasks in each app's tasks.py. A worker's heartbeat; a worker silent for three of
# them is presumed dead and its running jobs are retried (tenants.tasks.retry_stalled_jobs).
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10)
PROCRASTINATE_WORKER_DEFAULTS = {
    "update_heartbeat_interval": WORKER_HEARTBEAT_SECONDS,
    "stalled_worker_timeout": 3 * WORKER_HEARTBEAT_SECONDS,
    # Jobs arrive by LISTEN/NOTIFY at once; polling only backs that up.
    "fetch_job_polling_interval": 5,
    "delete_jobs": "successful",
}
# Loopback webhook targets (and plain http:// to them) are refused unless this is on; private,
# link-local, multicast, reserved and metadata addresses are always refused (webhooks.targets).
WEBHOOK_ALLOW_LOOPBACK = env_bool("WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)
# Delivery attempts: the first at once, then retries after about BASE * 2**n seconds (at most
# WEBHOOK_RETRY_MAX_DELAY_SECONDS, with 20 % jitter) until WEBHOOK_RETRY_ATTEMPTS attempts.
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 60)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_int("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 8 * 3600)
WEBHOOK_RETRY_ATTEMPTS = env_int("WEBHOOK_RETRY_ATTEMPTS", 15)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10)
# An endpoint whose deliveries have failed for this long is disabled, with an alert.
WEBHOOK_DISABLE_AFTER_DAYS = env_int("WEBHOOK_DISABLE_AFTER_DAYS", 5)
# Events (and their delivery log) older than this are deleted daily, unless still being retried.
WEBHOOK_RETENTION_DAYS = env_int("WEBHOOK_RETENTION_DAYS", 30)

# --- Buffered records (tenants/record_buffer.py): validation records and token-exchange events
# are queued (Redis list with REDIS_URL, else in-process) and written in batches by
# `manage.py drain_records` (run it every few seconds: --every 2).
RECORD_BUFFER_PREFIX = "records"  # Redis keys: records:<schema>, records:schemas
RECORD_BUFFER_SIZE = env_int("RECORD_BUFFER_SIZE", 500)  # rows per INSERT; in-process: the bound
RECORD_BUFFER_MAX = env_int("RECORD_BUFFER_MAX", 100_000)  # a Redis list past this drains at once
# In-process queue only: how often its thread writes it, in seconds (0: only when full or drained).
RECORD_BUFFER_SECONDS = env_int("RECORD_BUFFER_SECONDS", 1)
# With Redis: a request's pushes (and the abuse throttle's give-back) ride the next round trip of
# its worker (one round trip per request; a worker killed by SIGKILL loses its last request's
# record). True: they get a round trip of their own before the answer leaves (two on validation
# and exchange; SIGKILL loses nothing answered). tenants.counters.Outbox, docs/operations.md.
RECORD_PUSH_BEFORE_ANSWER = env_bool("RECORD_PUSH_BEFORE_ANSWER", False)
