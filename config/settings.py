"""Wafaa settings: one module, every value from the environment with a safe development default.

Sections, in order: environment helpers, core, apps and tenancy, database, cache and Redis,
HTTP and security, REST API, Celery, AI providers, channels, knowledge, conversations,
observability. Every variable read here is listed in `.env.example` and the README.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

# --- environment helpers ---------------------------------------------------------------------

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def _services_env_file() -> dict[str, str]:
    """URLs written by scripts/devservices.py, used when the environment does not set them."""
    path = BASE_DIR / ".run" / "services.env"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


_DEV_SERVICES = _services_env_file()

# --- core ------------------------------------------------------------------------------------

DEBUG = env_bool("DEBUG", True)
TESTING = env_bool("WAFAA_TESTING", False)


def _refuse_weak_key(name: str, value: str) -> None:
    """Production refuses a guessable signing key (Django's own --deploy criteria, enforced)."""
    if len(value) < 50 or len(set(value)) < 5 or value.startswith("django-insecure"):
        raise RuntimeError(
            f"{name} is too weak for DEBUG=false: use 50+ random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )


if DEBUG:
    SECRET_KEY = env("SECRET_KEY", "dev-insecure-secret-key-change-me-0123456789abcdefghijklmnop")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "*")
    JWT_SIGNING_KEY = env("JWT_SIGNING_KEY") or SECRET_KEY
else:
    # Production refuses to start without these: a default here would be a shared secret.
    SECRET_KEY = os.environ["SECRET_KEY"]
    _refuse_weak_key("SECRET_KEY", SECRET_KEY)
    # A key of its own for tokens: a leak of one (a debug page, a backup of the sessions)
    # does not let anyone mint the other.
    JWT_SIGNING_KEY = env("JWT_SIGNING_KEY")
    if not JWT_SIGNING_KEY or JWT_SIGNING_KEY == SECRET_KEY:
        raise RuntimeError(
            "JWT_SIGNING_KEY must be set, and differ from SECRET_KEY, when DEBUG is off"
        )
    _refuse_weak_key("JWT_SIGNING_KEY", JWT_SIGNING_KEY)
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise RuntimeError("ALLOWED_HOSTS must be set when DEBUG is off")
    if TESTING:
        # WAFAA_TESTING weakens password hashing and moves Redis databases: never in production.
        raise RuntimeError("WAFAA_TESTING cannot be set when DEBUG is off")

ENVIRONMENT = env("ENVIRONMENT", "development" if DEBUG else "production")
RELEASE = env("RELEASE", "dev")
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# The agents' inbox speaks these (desk/locale holds the translations).
LANGUAGES = [("en", "English"), ("ar", "العربية")]
LOCALE_PATHS = [BASE_DIR / "desk" / "locale"]
# Where a signed-out person is sent from an inbox page (the admin has its own login).
LOGIN_URL = "desk:login"
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies made by collectstatic (the Dockerfile runs it); no manifest, so a
    # development server or a test never needs collectstatic first.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Development and tests serve straight from the apps' static folders (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG

# --- apps and tenancy ------------------------------------------------------------------------

SHARED_APPS = [
    "django_tenants",
    "wafaa",
    "tenants",
    "channels_app",
    "backoffice",
    # The agents' inbox (/inbox/): no models; its views enter a client's schema themselves.
    "desk",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    # Refresh tokens rotate, and a used or logged-out one is refused (tables in public).
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    # Swagger UI's own files, served by us (no CDN in the API docs page).
    "drf_spectacular_sidecar",
    # Failed logins counted per (account, IP) and per IP on every login surface.
    "axes",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "knowledge",
    "conversations",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Client"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New client schemas are copied from the migrated template schema (tenants.cloning), about
# 0.05 s each; django-tenants' own cloner (TENANT_BASE_SCHEMA) is not used: its clone_schema()
# drops the dimensions of pgvector columns.
TENANT_DOMAIN_SUFFIX = env("TENANT_DOMAIN_SUFFIX", "clients.wafaa.local")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: a locked-out caller is refused before any password is checked.
AUTHENTICATION_BACKENDS = [
    "tenants.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "wafaa.middleware.RequestContextMiddleware",
    "wafaa.middleware.NulCharacterMiddleware",
    "wafaa.middleware.PublicSchemaMiddleware",
    "wafaa.middleware.RequestLimitsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin CSS, API docs assets) from the app itself, in every mode: gunicorn
    # serves none, and a deployment needs no separate file server for them.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language of the inbox's pages: the cookie set by /inbox/i18n/setlang/, else the
    # browser's Accept-Language, among LANGUAGES.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a locked-out admin login into its 429 answer (tenants.login_throttle).
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

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

# --- database --------------------------------------------------------------------------------


def _database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise RuntimeError(
            f"DATABASE_URL must be a postgresql:// URL, got scheme {parsed.scheme!r}"
        )
    options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    return {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": unquote(parsed.path.lstrip("/")) or "wafaa",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        # Persistent connections, checked before reuse, sized by the number of processes.
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": env_int("DB_CONNECT_TIMEOUT", 3), **_timeouts, **options},
    }


# 0: no limit (workers). gunicorn.conf.py sets it for web processes, under the worker timeout.
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 0)
_timeouts = (
    {"options": f"-c statement_timeout={DB_STATEMENT_TIMEOUT_MS}"}
    if DB_STATEMENT_TIMEOUT_MS > 0
    else {}
)


DATABASE_URL = env("DATABASE_URL") or _DEV_SERVICES.get("DATABASE_URL", "")
if not DATABASE_URL:
    raise RuntimeError(
        "DATABASE_URL is not set and no embedded services run: "
        "start them with `python scripts/devservices.py start` or set DATABASE_URL"
    )
DATABASES = {"default": _database_from_url(DATABASE_URL)}
# A bounded pool of connections per process (Django's psycopg pool), for processes that run
# many tasks at once (the `replies` worker: threads). 0 keeps one persistent connection per
# thread. Pooled connections are given back while a task waits on an LLM or Meta
# (wafaa.db.connection_released), so a few serve a hundred conversations in flight.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 0)
if DB_POOL_MAX_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them; Django must not
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": min(env_int("DB_POOL_MIN_SIZE", 2), DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        # Waiting longer for a connection than this is an error (PoolTimeout), not a hang.
        "timeout": env_float("DB_POOL_TIMEOUT", 10.0),
    }
# django-tenants wraps this backend: query metrics from django-prometheus, schemas from tenants.
ORIGINAL_BACKEND = "django_prometheus.db.backends.postgresql"
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# Issue `SET search_path` once per schema switch, not before every query (it halves the
# round trips on the webhook and reply paths). django-tenants forgets the cached path on
# rollback and savepoint rollback, where PostgreSQL reverts a SET, so it cannot go stale.
TENANT_LIMIT_SET_CALLS = env_bool("TENANT_LIMIT_SET_CALLS", True)
SLOW_QUERY_MS = env_int("SLOW_QUERY_MS", 200)

# --- cache and Redis -------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL") or _DEV_SERVICES.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if TESTING and not env("REDIS_URL") and REDIS_URL.endswith("/0"):
    # Tests use their own Redis database, so a `make run` worker never takes a test's task.
    REDIS_URL = REDIS_URL[:-2] + "/1"
CACHES = {
    "default": {
        "BACKEND": "django_prometheus.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Keys are prefixed with the current client's schema so clients never share entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "TIMEOUT": 300,
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 2},
    }
}

# --- HTTP and security -----------------------------------------------------------------------

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 5 * 1024 * 1024)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # /health, /ready and /metrics are probed over plain HTTP inside the cluster.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
X_FRAME_OPTIONS = "DENY"
# Reverse proxies in front of gunicorn that append the caller's address to X-Forwarded-For;
# 0 trusts no header (REMOTE_ADDR). Login and sign-up throttles count per caller address.
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
# Pages we serve (admin, API docs) load scripts only from us; inline styles stay allowed for
# the admin's and Swagger UI's style attributes. JSON responses carry the same header.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# Requests whose URL is longer than this get the 414 envelope from the app (gunicorn answers
# lines over its limit_request_line itself, in plain text: see config/gunicorn.conf.py).
MAX_URL_LENGTH = env_int("MAX_URL_LENGTH", 4096)

# --- accounts: login throttling, sign-up, invitations, email -----------------------------------

# django-axes with our handler (tenants.login_throttle): a (account, IP) pair is locked after
# LOGIN_FAILURES_PER_ACCOUNT_AND_IP failures, an IP after LOGIN_FAILURES_PER_IP failures over any
# accounts (password spraying), each for LOGIN_LOCKOUT_MINUTES after its last failure. No
# account-wide lock: an attacker elsewhere cannot lock the real person out.
LOGIN_FAILURES_PER_ACCOUNT_AND_IP = env_int("LOGIN_FAILURES_PER_ACCOUNT_AND_IP", 10)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 20)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15)
AXES_HANDLER = "tenants.login_throttle.LoginFailureHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_FAILURE_LIMIT = LOGIN_FAILURES_PER_IP
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_CLIENT_IP_CALLABLE = "wafaa.clientip.client_ip"
AXES_USERNAME_CALLABLE = "tenants.login_throttle.username_of"
AXES_CLIENT_STR_CALLABLE = "tenants.login_throttle.describe_client"
AXES_LOCKOUT_CALLABLE = "tenants.login_throttle.lockout_response"
AXES_RESET_ON_SUCCESS = False  # our handler resets the (account, IP) count only
AXES_ENABLE_ADMIN = False  # counts live in Redis, not in axes' tables
AXES_VERBOSE = False
# Sign-ups per caller address (DRF rate: N/second|minute|hour|day); each pending sign-up waits
# for its email to be verified before any client schema exists.
SIGNUP_THROTTLE_RATE = env("SIGNUP_THROTTLE_RATE", "10/hour")
SIGNUP_VERIFY_HOURS = env_int("SIGNUP_VERIFY_HOURS", 48)
INVITATION_DAYS = env_int("INVITATION_DAYS", 7)
# Invitation emails per client (each invitation sends one).
INVITATION_THROTTLE_RATE = env("INVITATION_THROTTLE_RATE", "100/day")
# Where the links in account emails point: the app that posts the token to the API.
ACCOUNT_LINKS_BASE_URL = env("ACCOUNT_LINKS_BASE_URL", "http://localhost:8000")
if not DEBUG and not ACCOUNT_LINKS_BASE_URL.startswith("https://"):
    # The links carry one-time tokens that create accounts: never over plain HTTP.
    raise RuntimeError("ACCOUNT_LINKS_BASE_URL must be an https:// URL when DEBUG is off")
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Wafaa <no-reply@wafaa.local>")

# --- REST API --------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.JWTAuthentication",
        "tenants.authentication.APIKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # RecursionError, deep nesting and NUL characters are a 400 (wafaa/api/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["wafaa.api.parsers.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "wafaa.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "wafaa.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {"signup": SIGNUP_THROTTLE_RATE, "invite": INVITATION_THROTTLE_RATE},
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": True,
    # Each refresh answers a new refresh token and blacklists the one used: a stolen refresh
    # token works once, and logout (/auth/logout) ends it.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Wafaa API",
    "DESCRIPTION": "AI customer-service assistants on WhatsApp and Instagram, per client.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No validator badge: Swagger UI would send our schema's URL to validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "tenants.models.Membership.Role",
        "ClientStatusEnum": "tenants.models.Client.Status",
        "ChannelAccountStatusEnum": "channels_app.models.ChannelAccount.Status",
        "MessageStatusEnum": "conversations.models.Message.Status",
        "DocumentStatusEnum": "knowledge.models.Document.Status",
    },
}
API_KEY_PREFIX = "wfa"

# --- Celery ----------------------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# At-least-once: ack after the task ran, give the task back if its worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Keep database connections across tasks (Celery closes them after every task otherwise).
# Before each task the worker checks them as Django does per request (config.celery:
# close_if_unusable_or_obsolete, then CONN_HEALTH_CHECKS pings a reused connection), so one
# left dead by a PostgreSQL restart is replaced, and dropped after DB_CONN_MAX_AGE anyway.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
if DB_POOL_MAX_SIZE:
    # Pooled: Celery's close after every task gives the connection back to the pool (a
    # thread idle between tasks must not keep one).
    CELERY_DB_REUSE_MAX = 0
# tenant-schemas-celery looks the task's client up by schema; a few seconds of cache saves a
# query per task. A change to a client's bot settings reaches the workers within that time.
CELERY_TASK_TENANT_CACHE_SECONDS = env_int("CELERY_TASK_TENANT_CACHE_SECONDS", 10)
# Reply-path tasks are short; document ingestion sets its own, longer limits.
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 40)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 50)
# A task that kills its worker every time is parked as failed after this many deliveries.
CELERY_MAX_DELIVERIES = env_int("CELERY_MAX_DELIVERIES", 5)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the reply-path tasks' hard time limit, so a running task is not delivered
    # twice, and short, so a task whose whole worker died (SIGKILL, lost host) comes back
    # within about a minute. A worker that shuts down (SIGTERM/SIGQUIT) gives its unacked
    # messages back at once (kombu restores them when the channel closes).
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 60),
    "unacked_restore_limit": 100,
    # kombu 5.7 looks for such messages only every interval x throttle seconds (100 s by
    # default), which would add up to 100 s to the visibility timeout: look every 5 s.
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "polling_interval": 1,
    # Short: a web request publishing a task must not wait long on a broker that is down
    # (a local Redis connects in milliseconds; see also WafaaTask.apply_async).
    "socket_timeout": 5,
    "socket_connect_timeout": 1,
    "socket_keepalive": True,
    "health_check_interval": 25,
}
if env("CELERY_BROKER_KEYPREFIX"):
    # Separate broker namespaces on one Redis (each test session uses its own).
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env("CELERY_BROKER_KEYPREFIX")
# Retry countdowns stay under the visibility timeout: a message waiting longer would be handed
# out a second time while its first delivery still waits.
CELERY_MAX_COUNTDOWN = max(5, CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] * 3 // 4)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Our LOGGING (JSON lines with trace ids) applies in workers too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_HEARTBEAT_SECONDS = env_int("CELERY_WORKER_HEARTBEAT_SECONDS", 10)
CELERY_IMPORTS = ["wafaa.diagnostics"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "conversations.*": {"queue": "replies"},
    "channels_app.tasks.message_send_task": {"queue": "replies"},  # the name before the move
    # Read receipts and media downloads kept the default queue when sending moved here.
    "conversations.tasks.message_mark_read_task": {"queue": "default"},
    "conversations.tasks.media_fetch_task": {"queue": "default"},
    # The webhook inbox's drain is short database work: it must not queue behind LLM calls.
    "conversations.tasks.inbox_drain_task": {"queue": "default"},
    "conversations.tasks.inbox_sweep_task": {"queue": "default"},
    # An answer evaluation runs minutes of drafting: never ahead of customers' replies.
    "conversations.tasks.answer_evaluation_run_task": {"queue": "default"},
    "knowledge.*": {"queue": "ingest"},
}
# Beat writes a heartbeat on each tick (its container's health check reads it).
CELERY_BEAT_SCHEDULER = "wafaa.beat:HeartbeatScheduler"
CELERY_BEAT_SCHEDULE = {
    "inbound-sweep": {
        "task": "conversations.tasks.fan_out_to_clients_task",
        "schedule": env_int("SWEEP_EVERY_SECONDS", 10),
        "args": ["conversations.tasks.inbound_sweep_task"],
    },
    "handoff-expiry": {
        "task": "conversations.tasks.fan_out_to_clients_task",
        "schedule": 300,
        "args": ["conversations.tasks.handoffs_expire_task"],
    },
    "channel-silence": {
        "task": "channels_app.tasks.channel_accounts_check_silent_task",
        "schedule": 600,
    },
    "queue-depth": {"task": "wafaa.queue_depth_sample_task", "schedule": 15},
    "inbox-sweep": {"task": "conversations.tasks.inbox_sweep_task", "schedule": 15},
    "resources": {"task": "wafaa.resources_sample_task", "schedule": 30},
    "customer-waits": {"task": "conversations.tasks.customer_waits_sample_task", "schedule": 60},
    "accounts-purge": {"task": "tenants.tasks.accounts_purge_expired_task", "schedule": 3600},
    "ingest-sweep": {
        "task": "conversations.tasks.fan_out_to_clients_task",
        "schedule": 300,
        "args": ["knowledge.tasks.documents_ingest_sweep_task"],
    },
}
CELERY_WORKER_QUEUES = env_list("CELERY_WORKER_QUEUES", "replies,default,ingest")

# --- AI providers ----------------------------------------------------------------------------

OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL") or None
LLM_MODEL = env("LLM_MODEL", "gpt-4o-mini")
LLM_TIMEOUT = env_float("LLM_TIMEOUT", 20.0)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 3)
# Reply attempts per inbound message (counted in the database, redeliveries and sweeps
# included) before it is parked for a person: a message that fails every time is not looped.
REPLY_MAX_ATTEMPTS = env_int("REPLY_MAX_ATTEMPTS", 5)
# Voice notes are transcribed with this model (gpt-4o-mini-transcribe or whisper-1); pictures
# sent without a caption are looked at by this vision-capable model.
TRANSCRIPTION_MODEL = env("TRANSCRIPTION_MODEL", "gpt-4o-mini-transcribe")
VISION_MODEL = env("VISION_MODEL", "gpt-4o-mini")
# auto: openai when OPENAI_API_KEY is set, else the local multilingual model.
EMBEDDING_BACKEND = env("EMBEDDING_BACKEND", "auto")
EMBEDDING_MODEL = env("EMBEDDING_MODEL", "text-embedding-3-small")
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 512)
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 128)
EMBEDDING_TIMEOUT = env_float("EMBEDDING_TIMEOUT", 30.0)
# The reply path's question embedding: short, and no SDK retries (ai_config.get_query_embedder).
EMBEDDING_QUERY_TIMEOUT = env_float("EMBEDDING_QUERY_TIMEOUT", 5.0)

# --- channels --------------------------------------------------------------------------------

# Fernet key(s) for secrets at rest, comma separated (first encrypts, all decrypt).
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
if not DEBUG and not FIELD_ENCRYPTION_KEYS:
    raise RuntimeError("FIELD_ENCRYPTION_KEYS must be set when DEBUG is off (Fernet keys)")
# App-level webhook (/webhook/<channel>/) for one Meta app serving many clients.
META_APP_SECRET = env("META_APP_SECRET")
META_APP_VERIFY_TOKEN = env("META_APP_VERIFY_TOKEN")
GRAPH_API_BASE_URL = env("GRAPH_API_BASE_URL", "https://graph.facebook.com")
GRAPH_API_VERSION = env("GRAPH_API_VERSION", "v23.0")
GRAPH_API_CONNECT_TIMEOUT = env_float("GRAPH_API_CONNECT_TIMEOUT", 3.05)
GRAPH_API_READ_TIMEOUT = env_float("GRAPH_API_READ_TIMEOUT", 10.0)
# A send failing transiently (5xx, timeouts, throttling) is retried this long after the reply
# was stored, never past the customer's 24-hour window (conversations.outbound.send_deadline).
SEND_RETRY_WINDOW_SECONDS = env_int("SEND_RETRY_WINDOW_SECONDS", 3600)
WHATSAPP_MESSAGES_PER_SECOND = env_int("WHATSAPP_MESSAGES_PER_SECOND", 80)
SAME_CUSTOMER_SPACING_MS = env_int("SAME_CUSTOMER_SPACING_MS", 300)
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 4 * 1024 * 1024)
# The webhook routing table (slug/account id -> client, secret) is cached per process.
WEBHOOK_ROUTING_CACHE_SECONDS = env_float("WEBHOOK_ROUTING_CACHE_SECONDS", 10.0)
# The durable webhook inbox (channels_app.InboxEvent, drained by conversations.inbound).
INBOX_BATCH_SIZE = env_int("INBOX_BATCH_SIZE", 100)
INBOX_MAX_ATTEMPTS = env_int("INBOX_MAX_ATTEMPTS", 5)
INBOX_RETENTION_HOURS = env_int("INBOX_RETENTION_HOURS", 72)
INBOX_SWEEP_AFTER_SECONDS = env_int("INBOX_SWEEP_AFTER_SECONDS", 20)
INBOX_MAX_BATCHES_PER_DRAIN = 20  # then the drain task sends itself again (fairness)
# A drain is killed at CELERY_TASK_TIME_LIMIT: its lease outlasts that, and no more. A drain cut
# off mid-batch (PostgreSQL restarted, worker killed) gives its events back this soon.
INBOX_LEASE_SECONDS = CELERY_TASK_TIME_LIMIT + 10
INBOX_RETRY_SECONDS = 10  # the first pause after a failed attempt, doubling after
MEDIA_MAX_BYTES = env_int("MEDIA_MAX_BYTES", 16 * 1024 * 1024)
# Customers' media is fetched only from Meta's media hosts (a leading dot: any subdomain).
MEDIA_ALLOWED_HOSTS = env_list(
    "MEDIA_ALLOWED_HOSTS", ".fbsbx.com,.fbcdn.net,.cdninstagram.com,.whatsapp.net"
)
CHANNEL_SILENT_AFTER_MINUTES = env_int("CHANNEL_SILENT_AFTER_MINUTES", 24 * 60)

# --- knowledge -------------------------------------------------------------------------------

KNOWLEDGE_CHUNK_TOKENS = env_int("KNOWLEDGE_CHUNK_TOKENS", 400)
KNOWLEDGE_CHUNK_OVERLAP = env_int("KNOWLEDGE_CHUNK_OVERLAP", 50)
HNSW_EF_SEARCH = env_int("HNSW_EF_SEARCH", 80)
# Hard caps of one document's extraction (docs/knowledge.md, "Limits"); the plan adds chunks
# per document and per client (Client.max_chunks_per_document, Client.max_chunks).
KNOWLEDGE_MAX_UNCOMPRESSED_BYTES = env_int("KNOWLEDGE_MAX_UNCOMPRESSED_BYTES", 64 * 1024 * 1024)
KNOWLEDGE_MAX_ZIP_ENTRIES = env_int("KNOWLEDGE_MAX_ZIP_ENTRIES", 1000)
KNOWLEDGE_MAX_COMPRESSION_RATIO = env_int("KNOWLEDGE_MAX_COMPRESSION_RATIO", 100)
KNOWLEDGE_MAX_XML_ELEMENTS = env_int("KNOWLEDGE_MAX_XML_ELEMENTS", 2_000_000)
KNOWLEDGE_MAX_PDF_PAGES = env_int("KNOWLEDGE_MAX_PDF_PAGES", 2000)
KNOWLEDGE_MAX_CHARACTERS = env_int("KNOWLEDGE_MAX_CHARACTERS", 10_000_000)
# Extraction runs in a child process of the ingest worker with this address-space ceiling
# (RLIMIT_AS) and wall-clock limit (at most INGEST_LEASE_SECONDS - 30): a bomb fails its
# document, never the worker.
KNOWLEDGE_EXTRACT_MEMORY_MB = env_int("KNOWLEDGE_EXTRACT_MEMORY_MB", 512)
KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS = env_int("KNOWLEDGE_EXTRACT_TIMEOUT_SECONDS", 240)
# A prefork worker consuming the `ingest` queue replaces a pool process whose resident memory
# passed this after a task (Celery's worker_max_memory_per_child); 0: never. A command-line
# --max-memory-per-child wins.
INGEST_WORKER_MAX_MEMORY_PER_CHILD_MB = env_int("INGEST_WORKER_MAX_MEMORY_PER_CHILD_MB", 1024)

# --- conversations ---------------------------------------------------------------------------

REPLY_QUIET_PERIOD_SECONDS = env_float("REPLY_QUIET_PERIOD_SECONDS", 2.0)
CONTEXT_MESSAGES = env_int("CONTEXT_MESSAGES", 12)
CONTEXT_CACHE_SECONDS = env_int("CONTEXT_CACHE_SECONDS", 3600)
HANDOFF_WAITING_ALERT_MINUTES = env_int("HANDOFF_WAITING_ALERT_MINUTES", 30)
HANDOFF_IDLE_MINUTES = env_int("HANDOFF_IDLE_MINUTES", 240)
SWEEP_AFTER_SECONDS = env_int("SWEEP_AFTER_SECONDS", 30)
MAX_INBOUND_TEXT_CHARS = env_int("MAX_INBOUND_TEXT_CHARS", 4000)
# Outbound calls a client or a webhook can influence (callbacks, media): wafaa.netguard.
OUTBOUND_ALLOWED_PORTS = [int(port) for port in env_list("OUTBOUND_ALLOWED_PORTS", "443,8443")]
# CIDRs that pass although not public (a relay in your network); http and any port there too.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS")

# --- observability ---------------------------------------------------------------------------

LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json")  # json | console
SENTRY_DSN = env("SENTRY_DSN")
PROMETHEUS_PER_CLIENT_LABELS = env_bool("PROMETHEUS_PER_CLIENT_LABELS", False)
PROMETHEUS_EXPORT_MIGRATIONS = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "wafaa.logging.ContextFilter"}},
    "formatters": {
        "json": {"()": "wafaa.logging.JsonFormatter"},
        "console": {"()": "wafaa.logging.ConsoleFormatter"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT if LOG_FORMAT in {"json", "console"} else "json",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}

# --- error reporting (last: it reads the values above) -----------------------------------------

# Sentry events are tagged with the client schema a request or task last entered.
EXTRA_SET_TENANT_METHOD_PATH = "wafaa.sentry.set_tenant_tag"
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0)
WORKER_METRICS_PORT = env_int("WORKER_METRICS_PORT", 0)

from wafaa.sentry import init_sentry  # noqa: E402 - after every value it uses

init_sentry(
    dsn=SENTRY_DSN,
    environment=ENVIRONMENT,
    release=RELEASE,
    traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
)
