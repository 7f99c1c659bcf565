"""Settings for the licensing platform. Every environment variable is read here, and only here."""

import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
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
if len({SECRET_KEY, JWT_SIGNING_KEY, USER_TOKEN_HASH_KEY}) != 3:
    raise ImproperlyConfigured("SECRET_KEY, JWT_SIGNING_KEY and USER_TOKEN_HASH_KEY must differ.")

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

# --- Applications: `tenants` lives in the public schema, `licensing` and `tokens` per tenant.

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
    "drf_spectacular",  # OpenAPI at /v1/schema, Swagger UI at /v1/docs (config/openapi.py)
    "drf_spectacular_sidecar",  # Swagger UI's assets, served locally
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "licensing",
    "tokens",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Set the search_path once per schema change instead of before every query.
TENANT_LIMIT_SET_CALLS = True
# New tenants are copies of a migrated template schema; migrate_schemas skips up-to-date schemas
# and keeps the template current (tenants/schema_template.py, tenants/migration_executor.py).
TENANT_TEMPLATE_SCHEMA = "tenant_template"
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.get_executor"

MIDDLEWARE = [
    "tenants.middleware.TenantMiddleware",
    # HTTPS redirect and secure headers around everything below, error answers included.
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Expired licence -> 403 on /v1/; X-RateLimit-* headers on every /v1/ answer.
    "tenants.throttling.TenantLicenceMiddleware",
    "config.errors.ApiErrorMiddleware",
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
        "DIRS": [BASE_DIR / "templates"],
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

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    # django-tenants' backend, without a `SET search_path` per request (tenants/postgresql_backend).
    DATABASES["default"]["ENGINE"] = "tenants.postgresql_backend"
    DATABASES["default"].setdefault("TEST", {})
    if os.environ.get("TEST_DATABASE_NAME"):
        DATABASES["default"]["TEST"]["NAME"] = os.environ["TEST_DATABASE_NAME"]
else:
    DATABASES = {"default": embedded_database(DATA_DIR / "postgres")}
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
    "DEFAULT_PARSER_CLASSES": ["config.parsers.ApiJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["tokens.api.authentication.AccessTokenAuthentication"],
    # Default deny: a view must declare `required_permissions` per method (tokens.api.permissions).
    "DEFAULT_PERMISSION_CLASSES": ["tokens.api.permissions.HasTokenPermissions"],
    # Every request of a tenant counts against its licence (views must not replace this list).
    "DEFAULT_THROTTLE_CLASSES": ["tenants.throttling.TenantLicenceThrottle"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.ApiCursorPagination",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.ApiAutoSchema",
}
API_MAX_PAGE_SIZE = 500

# --- OpenAPI description (drf-spectacular; see config/openapi.py)

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
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_error_components",
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
    },
}

# --- Monitoring and audit (tokens.monitoring, tokens.usage, tokens.alerts; docs/operations.md)

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

# --- Buffered records (tenants/record_buffer.py): validation records and token-exchange events
# are queued (Redis list with REDIS_URL, else in-process) and written in batches by
# `manage.py drain_records` (run it every few seconds: --every 2).
RECORD_BUFFER_PREFIX = "records"  # Redis keys: records:<schema>, records:schemas
RECORD_BUFFER_SIZE = env_int("RECORD_BUFFER_SIZE", 500)  # rows per INSERT; in-process: the bound
RECORD_BUFFER_MAX = env_int("RECORD_BUFFER_MAX", 100_000)  # a Redis list past this drains at once
# In-process queue only: how often its thread writes it, in seconds (0: only when full or drained).
RECORD_BUFFER_SECONDS = env_int("RECORD_BUFFER_SECONDS", 1)
