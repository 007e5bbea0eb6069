"""Fleetdeck settings: one module, configured from environment variables (see ``.env.example``).

Development (``DEBUG=true``) runs with nothing installed: an embedded PostgreSQL and a filesystem Celery
broker under ``FLEETDECK_DATA_DIR``. Production (``DEBUG`` off, the default) refuses to start without a real
``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and ``CELERY_BROKER_URL``.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config.embedded import embedded_database_url, filesystem_broker_options

BASE_DIR = Path(__file__).resolve().parent.parent
# The development env file ``make demo`` writes (DEBUG=true for manage.py commands beside the demo) fills in
# variables the environment leaves unset and never overrides one that is set. It is .fleetdeck/dev.env, never
# .env: that name is the operator's production file for docker compose, which the settings never read (and
# the demo's file never reaches a production process). FLEETDECK_ENV_FILE names another file, or none if empty.
DEV_ENV_FILE = BASE_DIR / ".fleetdeck" / "dev.env"
ENV_FILE = os.environ.get("FLEETDECK_ENV_FILE", str(DEV_ENV_FILE))
if ENV_FILE and Path(ENV_FILE).is_file():
    load_dotenv(ENV_FILE, override=False, interpolate=False)  # a "$" in a value stays a "$"


def env_bool(name: str, default: bool = False) -> bool:
    """Read a boolean environment variable; accepts 1/0, true/false, yes/no, on/off."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, failing with the variable's name when it is not one."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, default: str = "") -> list[str]:
    """Read a comma-separated environment variable into a list of non-empty, stripped items."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# `or`, not a get() default: .env.example leaves the variable empty, and "" must not mean the working directory.
DATA_DIR = Path(os.environ.get("FLEETDECK_DATA_DIR") or BASE_DIR / ".fleetdeck").resolve()

# --- secrets and hosts -------------------------------------------------------------------------------------
_INSECURE_KEY_PREFIX = "django-insecure-"
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not DEBUG:
    _missing = []
    if len(SECRET_KEY) < 50 or SECRET_KEY.startswith(_INSECURE_KEY_PREFIX) or len(set(SECRET_KEY)) < 5:
        _missing.append(
            "SECRET_KEY must be set to a random string of at least 50 characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(64))")'
        )
    if not env_list("ALLOWED_HOSTS"):
        _missing.append("ALLOWED_HOSTS must list the host names this site is served under (comma-separated)")
    if not os.environ.get("DATABASE_URL"):
        _missing.append("DATABASE_URL must point at PostgreSQL (postgresql://user:pass@host:5432/db)")
    if not os.environ.get("CELERY_BROKER_URL"):
        _missing.append("CELERY_BROKER_URL must point at the broker (redis://host:6379/0)")
    if _missing:
        raise ImproperlyConfigured(
            "Fleetdeck is in production mode (DEBUG is off) and cannot start:\n  - "
            + "\n  - ".join(_missing)
            + "\nFor local development set DEBUG=true instead. Every variable is described in .env.example."
        )
elif not SECRET_KEY:
    SECRET_KEY = _INSECURE_KEY_PREFIX + "development-only-key-never-used-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- applications ------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "axes",
    "csp",
    "pgtrigger",
    "pghistory",
    "core",
    "fleet",
    "billing",
    "scheduler",
    "audit",  # the audit trail: pghistory event tables and the Changes page (docs/audit.md)
    "dashboard",
    "devtools",  # development tooling: the demo's seed, simulator and emulators, benchmarks (no models)
]

MIDDLEWARE = [
    "core.metrics.RequestMetricsMiddleware",  # first: /metrics' request latency includes the other middleware
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.middleware.LoginRequiredMiddleware",
    # Who changed what, through which interface: the audit trail's context for writes (audit.context).
    "audit.context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "core.context_processors.fleetdeck",
                "audit.context_processors.audit",
            ],
        },
    },
]

# --- database ----------------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or embedded_database_url(DATA_DIR / "pgdata")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE_S", 60),
        conn_health_checks=True,
    )
}
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured(f"DATABASE_URL must be a PostgreSQL URL; got engine {DATABASES['default']['ENGINE']}")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache -------------------------------------------------------------------------------------------------
CACHE_URL = os.environ.get("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- auth --------------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# django-axes counts failed logins (the login page and the admin's) per user name and client address: after
# AXES_FAILURE_LIMIT failures that pair is refused (429) for AXES_COOLOFF_TIME, even with the right password.
# Other users and the same user from another address are not affected, and API tokens never pass through
# authenticate(), so a guessing attack does not lock automation out. `manage.py axes_reset` unlocks at once.
# The client address is REMOTE_ADDR: behind a reverse proxy every client shares the proxy's, so a lockout then
# applies to the user name from everywhere (see docs/deployment.md).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "core/lockout.html"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"
# Paths served to clients that authenticate per request (API tokens) rather than with a session; the API
# answers 401 there instead of redirecting to the login page.
FLEETDECK_API_PATH_PREFIXES = ("/api/v1/", "/api/schema/")
API_TOKEN_DEFAULT_EXPIRY = timedelta(days=env_int("API_TOKEN_DEFAULT_EXPIRY_DAYS", 90))
# Writing last_used on every request would make each API call a write; once a minute is enough to audit.
API_TOKEN_LAST_USED_RESOLUTION = timedelta(seconds=60)

# --- single sign-on (OpenID Connect, mozilla-django-oidc): on when OIDC_RP_CLIENT_ID is set; docs/sso.md --------
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_ISSUER = os.environ.get("OIDC_OP_ISSUER", "")  # when set, the ID token's iss must be it
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_VERIFY_KID = env_bool("OIDC_VERIFY_KID", True)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_S", 10)
OIDC_USERNAME_CLAIM = os.environ.get("OIDC_USERNAME_CLAIM", "preferred_username")  # else the e-mail
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "groups")
OIDC_ADMIN_GROUPS = env_list("OIDC_ADMIN_GROUPS")
OIDC_OPERATOR_GROUPS = env_list("OIDC_OPERATOR_GROUPS")
OIDC_VIEWER_GROUPS = env_list("OIDC_VIEWER_GROUPS")
OIDC_DEFAULT_ROLE = os.environ.get("OIDC_DEFAULT_ROLE", "")  # empty: a user in no role group is refused
OIDC_TEAM_GROUP_PREFIX = os.environ.get("OIDC_TEAM_GROUP_PREFIX", "team:")
OIDC_LOCAL_LOGIN = env_bool("OIDC_LOCAL_LOGIN", True)  # false: only admins may still log in with a password
OIDC_CALLBACK_CLASS = "core.oidc_views.OIDCCallbackView"
OIDC_AUTHENTICATE_CLASS = "core.oidc_views.OIDCAuthenticateView"
LOGIN_REDIRECT_URL_FAILURE = "login"
if OIDC_RP_CLIENT_ID:
    _endpoints = {"AUTHORIZATION": OIDC_OP_AUTHORIZATION_ENDPOINT, "TOKEN": OIDC_OP_TOKEN_ENDPOINT}
    _endpoints |= {"USER": OIDC_OP_USER_ENDPOINT, "JWKS": OIDC_OP_JWKS_ENDPOINT}
    if _missing := [f"OIDC_OP_{name}_ENDPOINT" for name, url in _endpoints.items() if not url]:
        raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set, so single sign-on needs {', '.join(_missing)}.")
    if OIDC_DEFAULT_ROLE not in ("", "viewer", "operator", "admin"):
        raise ImproperlyConfigured(f"OIDC_DEFAULT_ROLE={OIDC_DEFAULT_ROLE!r}: use viewer, operator, admin or nothing.")
    AUTHENTICATION_BACKENDS.insert(1, "fleet.oidc.FleetdeckOIDCBackend")  # after axes, before passwords
# Refused single sign-ons are no password guesses, and all lack a user name: axes must not count them (core.oidc).
AXES_WHITELIST_CALLABLE = "core.oidc.axes_exempts_sso_callback"

# --- Content-Security-Policy (django-csp) ---------------------------------------------------------------------
# Pages load scripts and styles from this site's static files only: no inline script or style, no plugins, never
# framed, forms post home. The report preview alone also allows inline styles (the e-mail's own HTML needs them);
# scripts stay blocked there too (billing.views). htmx's injected indicator styles are turned off in base.html.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- i18n --------------------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static files ------------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- REST API ----------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header turns "not authenticated" into 401 rather than 403.
        "core.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.FleetdeckModelPermissions"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.OrderedPageNumberPagination",
    "PAGE_SIZE": 50,
    # Each FilterSet declares its own ``ordering`` filter, so HTML lists and the API sort the same way.
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # JSON nested too deep or holding lone surrogates is a 400, not a RecursionError or an encoding 500.
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fleetdeck API",
    "DESCRIPTION": "Inventory, telemetry, spend and placement for hybrid cloud/on-prem GPU fleets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set, so fields of several apps that share a choice set do not clash.
    "ENUM_NAME_OVERRIDES": {
        "ProviderKindEnum": "fleet.choices.ProviderKind",
        "ReportDeliveryStatusEnum": "billing.choices.DeliveryStatus",
        "ReportPeriodEnum": "billing.choices.ReportPeriod",
        "JobStateEnum": "scheduler.choices.JobState",
        "RunStatusEnum": "core.choices.RunStatus",
        "NodeStateEnum": "fleet.choices.NodeState",
        "NodeSourceEnum": "fleet.choices.NodeSource",
        "GpuSliceKindEnum": "fleet.choices.GpuSliceKind",
        "HealthEventKindEnum": "fleet.choices.HealthEventKind",
        "CommitmentKindEnum": "billing.choices.CommitmentKind",
        "IntensitySourceEnum": "billing.choices.IntensitySource",
    },
}

# --- Celery ------------------------------------------------------------------------------------------------
# Named queues, so a slow cloud API never delays telemetry. (Not CELERY_QUEUES: Celery reads that name.)
FLEETDECK_QUEUES = ("inventory", "telemetry", "billing", "scheduler", "reports")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    filesystem_broker_options(DATA_DIR / "broker") if CELERY_BROKER_URL.startswith("filesystem") else {}
)
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_DEFAULT_QUEUE = "telemetry"
CELERY_TASK_ROUTES = {
    "fleet.tasks.inventory_*": {"queue": "inventory"},
    "fleet.tasks.telemetry_*": {"queue": "telemetry"},
    # Routes are matched in order: report tasks before the rest of billing.
    "billing.tasks.report_*": {"queue": "reports"},
    "billing.tasks.*": {"queue": "billing"},
    "scheduler.tasks.*": {"queue": "scheduler"},
}
# A task is acknowledged after it ran, so a worker killed mid-task leaves it on the queue for another.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT_S", 240)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT_S", 300)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "core.beat:HeartbeatDatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat records itself and enqueues a heartbeat per queue this often; the dashboard warns after STALE.
HEARTBEAT_INTERVAL_S = env_int("HEARTBEAT_INTERVAL_S", 30)
HEARTBEAT_STALE_AFTER_S = env_int("HEARTBEAT_STALE_AFTER_S", 3 * HEARTBEAT_INTERVAL_S)

# --- inventory and telemetry -------------------------------------------------------------------------------
INVENTORY_SYNC_INTERVAL_S = env_int("INVENTORY_SYNC_INTERVAL_S", 300)
# Cloud tags (AWS) / labels (GCP) whose values name a node's team and project (matched to their slugs).
INVENTORY_TEAM_TAG = os.environ.get("INVENTORY_TEAM_TAG", "team")
INVENTORY_PROJECT_TAG = os.environ.get("INVENTORY_PROJECT_TAG", "project")
# A failing region or project is retried after BASE, then twice as long each time, up to MAX.
INVENTORY_BACKOFF_BASE_S = env_int("INVENTORY_BACKOFF_BASE_S", 60)
INVENTORY_BACKOFF_MAX_S = env_int("INVENTORY_BACKOFF_MAX_S", 3600)
# Endpoints for emulators (demo, tests) or private endpoints; unset means the real public APIs.
# boto3 itself honours AWS_ENDPOINT_URL; GCP_COMPUTE_ENDPOINT must include its scheme (http://127.0.0.1:PORT).
GCP_COMPUTE_ENDPOINT = os.environ.get("GCP_COMPUTE_ENDPOINT", "")

TELEMETRY_POLL_INTERVAL_S = env_int("TELEMETRY_POLL_INTERVAL_S", 15)
TELEMETRY_POLL_TIMEOUT_S = env_int("TELEMETRY_POLL_TIMEOUT_S", 5)
# Total time one endpoint gets (connect, TLS, headers, body), however slowly it answers; and the fetching of
# one poll cycle (nodes not reached by then are reported as skipped). Fetching 10,000 endpoints takes ~11 s
# (docs/benchmarks.md): keep the poll deadline above what your fleet needs.
TELEMETRY_FETCH_DEADLINE_S = env_int("TELEMETRY_FETCH_DEADLINE_S", 8)
TELEMETRY_POLL_DEADLINE_S = env_int("TELEMETRY_POLL_DEADLINE_S", 20)
# GPUs one scrape may report for one node; readings beyond are dropped (and noted on the node).
TELEMETRY_MAX_GPUS_PER_NODE = env_int("TELEMETRY_MAX_GPUS_PER_NODE", 64)
# The folder whose files 'file:' token references may name (after resolving symlinks); unset: none may.
FLEETDECK_SECRETS_DIR = os.environ.get("FLEETDECK_SECRETS_DIR", "")
# Endpoints fetched at once by one poll task.
TELEMETRY_POLL_CONCURRENCY = env_int("TELEMETRY_POLL_CONCURRENCY", 128)
# Nodes per scrape shard: each beat tick enqueues ceil(nodes / this) shard tasks (docs/telemetry.md).
TELEMETRY_SHARD_SIZE = env_int("TELEMETRY_SHARD_SIZE", 500)
# A node that fails this many polls in a row is marked unreachable (and comes back on its next answer).
TELEMETRY_UNREACHABLE_AFTER_POLLS = env_int("TELEMETRY_UNREACHABLE_AFTER_POLLS", 3)
TELEMETRY_RAW_RETENTION_H = env_int("TELEMETRY_RAW_RETENTION_H", 48)
TELEMETRY_ROLLUP_RETENTION_DAYS = env_int("TELEMETRY_ROLLUP_RETENTION_DAYS", 400)
TELEMETRY_FLEET_MINUTE_RETENTION_DAYS = env_int("TELEMETRY_FLEET_MINUTE_RETENTION_DAYS", 35)
# PromQL sources (fleet.telemetry.promql): how far back a new or long-failed source is read, and how long
# after a step its value is left to settle (the engine's scrape interval plus remote-write/ingest delay).
TELEMETRY_PROMQL_BACKFILL_S = env_int("TELEMETRY_PROMQL_BACKFILL_S", 600)
TELEMETRY_PROMQL_SETTLE_S = env_int("TELEMETRY_PROMQL_SETTLE_S", 30)
# Prometheus remote-write (fleet.telemetry.remote_write): the largest request body, compressed and decompressed.
TELEMETRY_REMOTE_WRITE_MAX_BYTES = env_int("TELEMETRY_REMOTE_WRITE_MAX_BYTES", 16 * 1024 * 1024)
# A GPU is idle once its utilisation has stayed under the threshold for at least the duration.
IDLE_UTIL_THRESHOLD_PCT = env_int("IDLE_UTIL_THRESHOLD_PCT", 5)
IDLE_MIN_DURATION_S = env_int("IDLE_MIN_DURATION_S", 900)
# How often live dashboard panels refresh themselves (HTMX polling).
DASHBOARD_REFRESH_S = env_int("DASHBOARD_REFRESH_S", 15)
# The overview's fleet-wide figures are shared by all viewers for this long (0 turns the cache off).
DASHBOARD_CACHE_S = env_int("DASHBOARD_CACHE_S", 5)
# Buy vs rent: the discount off on-demand assumed for "with commitments" where no commitment in force covers a
# GPU model (a typical 1-year, no-upfront savings plan; billing/buyrent/), in whole percent.
BUY_VS_RENT_SAVINGS_PLAN_PCT = env_int("BUY_VS_RENT_SAVINGS_PLAN_PCT", 30)
if not 0 <= BUY_VS_RENT_SAVINGS_PLAN_PCT < 100:
    raise ImproperlyConfigured(f"BUY_VS_RENT_SAVINGS_PLAN_PCT={BUY_VS_RENT_SAVINGS_PLAN_PCT}: use 0 to 99.")

# --- scheduler -------------------------------------------------------------------------------------------------
# "dry-run" records the cloud API call a placement would make (run_instances / instances.insert); "live" makes it.
SCHEDULER_LAUNCH = os.environ.get("SCHEDULER_LAUNCH", "dry-run")
if SCHEDULER_LAUNCH not in ("dry-run", "live"):
    raise ImproperlyConfigured(f"SCHEDULER_LAUNCH={SCHEDULER_LAUNCH!r}: use dry-run or live.")
# Live launches need the image to boot: an AMI id for EC2, an image or family URL for GCE.
SCHEDULER_AWS_IMAGE_ID = os.environ.get("SCHEDULER_AWS_IMAGE_ID", "")
SCHEDULER_GCP_IMAGE = os.environ.get("SCHEDULER_GCP_IMAGE", "")
# A placed job whose node is unreachable is re-queued only once the node's last successful poll is older than
# this: a short monitoring blip does not move placements (stopped and terminated nodes re-queue at once).
SCHEDULER_REQUEUE_GRACE_S = env_int("SCHEDULER_REQUEUE_GRACE_S", 300)

# --- audit trail (audit/, docs/audit.md) ---------------------------------------------------------------------
# Database triggers record every change of the tracked models; pgtrigger installs them after every migrate
# (they are not in migrations, so no other app gets a migration for being audited).
PGTRIGGER_MIGRATIONS = False
PGTRIGGER_INSTALL_ON_MIGRATE = True
# Changes older than this are purged daily; 0 keeps them forever.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365)
if AUDIT_RETENTION_DAYS < 0:
    raise ImproperlyConfigured(f"AUDIT_RETENTION_DAYS={AUDIT_RETENTION_DAYS}: use 0 (keep forever) or more days.")

# --- the app's own metrics (GET /metrics for Prometheus; docs/metrics.md) -----------------------------------
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")  # when set, a scraper sends "Authorization: Bearer <it>"
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.1/32,::1/128")  # client CIDRs; empty: any
METRICS_TRUST_X_FORWARDED_FOR = env_bool("METRICS_TRUST_X_FORWARDED_FOR", False)  # only behind a proxy that sets it
try:
    for _network in METRICS_ALLOWED_NETWORKS:
        ipaddress.ip_network(_network, strict=False)
except ValueError as _exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_exc}; use CIDRs such as 10.0.0.0/8,::1/128.") from None

# --- email -------------------------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_S", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "fleetdeck@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- security (production) ---------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", False) else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Container and load-balancer health checks speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]  # probes and Prometheus scrape the web port inside
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- logging -----------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; its warnings (failures, lockouts) are what operators need.
    # pgtrigger logs each trigger it installs after every migrate (75 lines); its warnings are what matter.
    "loggers": {"pgserver": {"level": "WARNING"}, "axes": {"level": "WARNING"}, "pgtrigger": {"level": "WARNING"}},
}
