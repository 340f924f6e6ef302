"""Settings, all from the environment (see deploy/README.md for the full list).

Production is the default: debug off, HTTPS enforced, a secret key required.
Local runs (`make run`, `make test`) get their values from deploy/devservices.py.
"""

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.retry import Retry

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ImproperlyConfigured(
            f"{name} is not set. Set it in the environment (local runs: use `make run` / `make test`, "
            "which start the embedded services and set it for you)."
        )
    return value


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_required("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "axes",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_celery_beat",
    "simple_history",
    "aggregator",
    "enrollment",
    "dispatch",
    "dispatch.openadr",
    "dispatch.ocpp",
    "settlement",
    "aggregator.market",
    "aggregator.web",
    "aggregator.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",  # a change's history row names the logged-in user
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a locked-out login into the lock-out page
]

ROOT_URLCONF = "aggregator.urls"
# The console's fleet map: a base layer's tile URL ({z}/{x}/{y}) and its attribution. Empty by default: the map
# then has no base layer, works offline and asks no third party for tiles.
CONSOLE_MAP_TILE_URL = os.environ.get("CONSOLE_MAP_TILE_URL", "")
CONSOLE_MAP_ATTRIBUTION = os.environ.get("CONSOLE_MAP_ATTRIBUTION", "")
# The device API's credentials (aggregator.core.access.devices looks them up, as Django does AUTH_USER_MODEL).
DEVICE_CREDENTIAL_MODEL = "enrollment.DeviceCredential"
WSGI_APPLICATION = "aggregator.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# PostgreSQL is the only database.
DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Django's ORM binds parameters on the client and never prepares; the few hot statements
# that run through psycopg's own server-side-binding cursor (the command poll) are
# prepared once per connection. Set "off" behind a pooler that cannot keep prepared
# statements (PgBouncer before 1.21, or without max_prepared_statements).
_prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "2")
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if _prepare == "off" else int(_prepare)
if os.environ.get("DJANGO_TEST_DATABASE_NAME"):
    # Lets two test runs share one server (each gets its own test database).
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DJANGO_TEST_DATABASE_NAME"]}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres:// or postgresql://).")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_required("REDIS_URL")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "vpp",
        # Redis only makes the device API faster: a Redis that stops answering must cost a call about a second,
        # not redis-py's default of seconds per attempt with retries, before the call carries on without it.
        "OPTIONS": {
            "socket_connect_timeout": float(os.environ.get("REDIS_CONNECT_TIMEOUT_SECONDS", "0.5")),
            "socket_timeout": float(os.environ.get("REDIS_TIMEOUT_SECONDS", "0.5")),
            "retry": Retry(NoBackoff(), 0),
        },
    }
}

# Logins (console, portal, admin): django-axes counts failures per account and per address,
# in PostgreSQL; at the limit both are locked for the cool-off, even with the right password.
# Operator and device tokens do not log in and are not counted.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "aggregator.web.lockout.locked_out"
AXES_CLIENT_IP_CALLABLE = "aggregator.web.lockout.client_address"
# Behind N reverse proxies that each append to X-Forwarded-For, the client is the Nth address
# from the right; 0 (direct) reads the connection's address.
LOGIN_PROXY_HOPS = int(os.environ.get("LOGIN_PROXY_HOPS", "0"))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Stored in UTC; every market and site carries its own local time zone.
LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Uploaded files (meter-data imports): a folder every web and worker host shares, or set
# STORAGES["default"] to object storage in production.
MEDIA_ROOT = Path(
    os.environ.get("DJANGO_MEDIA_ROOT", Path(os.environ.get("VPP_DATA_DIR", BASE_DIR / ".data")) / "media")
)
MEDIA_URL = "media/"
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DJANGO_MAX_REQUEST_BYTES", str(50 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- HTTPS and cookies: on unless DJANGO_HTTPS=false (local runs on plain HTTP) ----
HTTPS = env_bool("DJANGO_HTTPS", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000")) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:fleet"
LOGOUT_REDIRECT_URL = "console:login"

# --- REST API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "aggregator.core.access.authentication.OperatorTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["aggregator.core.access.permissions.OperatorRolePermission"],
    "DEFAULT_FILTER_BACKENDS": [
        "aggregator.core.api.filters.FilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "aggregator.core.api.pagination.StandardPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "aggregator.core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "VPP aggregator API",
    "DESCRIPTION": (
        "Operator API (`/api/v1/`, session or operator token, roles admin / operator / analyst) "
        "and device API (`/api/device/v1/`, device or gateway token)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "aggregator.core.api.schema.document_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "EnrollmentStateEnum": "enrollment.lifecycle.State",
        "ServiceEnum": "aggregator.reference.models.Program.Service",
        "ScopeKindEnum": "aggregator.aggregation.models.ScopeKind",
        "EventStateEnum": "dispatch.models.EventState",
        "SettlementRunKindEnum": "settlement.models.SettlementRun.Kind",
        "EventSourceEnum": "dispatch.models.DispatchEvent.Source",
        "AwardSourceEnum": "aggregator.market.models.Award.Source",
        "OfferStateEnum": "aggregator.market.models.OfferState",
        "MarketKindEnum": "aggregator.reference.models.OfferDeadline.MarketKind",
        "ForecastKindEnum": "aggregator.market.models.Forecast.Kind",
        "ForecastModelEnum": "aggregator.market.models.Forecast.Model",
    },
}

# Device API: requests per token and the largest request body (a 10,000-reading batch is ~1.2 MB).
DEVICE_API_RATES = {
    "device": os.environ.get("DEVICE_API_RATE_DEVICE", "120/min"),
    "gateway": os.environ.get("DEVICE_API_RATE_GATEWAY", "6000/min"),
}
DEVICE_API_MAX_BODY_BYTES = int(os.environ.get("DEVICE_API_MAX_BODY_BYTES", str(4 * 1024 * 1024)))
# How far back a device may send readings (each month is a partition; operator imports are not bounded).
DEVICE_READINGS_LOOK_BACK_DAYS = int(os.environ.get("DEVICE_READINGS_LOOK_BACK_DAYS", "400"))

# --- Celery -----------------------------------------------------------------------
# The broker: Redis (REDIS_URL) unless CELERY_BROKER_URL names another; RabbitMQ (amqp://) is the production
# choice for several hosts (deploy/README.md). Results stay in Redis either way.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
BROKER_IS_RABBITMQ = CELERY_BROKER_URL.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")
if BROKER_IS_RABBITMQ:
    # Quorum queues (replicated, and the broker puts back what a lost connection held: no visibility timeout) on
    # topic exchanges, so that a task with an ETA waits in RabbitMQ's delay queues (Celery's native delayed
    # delivery) rather than unacknowledged in a worker, where RabbitMQ's consumer timeout would cut it off.
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    # Publisher confirms: a send returns once RabbitMQ has the message, so a job queued after commit is not lost
    # in a socket buffer; a send the broker refuses raises like one it never got.
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"confirm_publish": True}
else:
    # kombu's Redis transport with a channel that survives a Redis restart (see aggregator.core.broker).
    CELERY_BROKER_TRANSPORT = "aggregator.core.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# The console's fleet page shows the fleet as beat last counted it (every FLEET_COUNT_SECONDS); a page that finds
# no count younger than FLEET_COUNT_MAX_AGE_SECONDS (beat stopped) counts it itself.
FLEET_COUNT_SECONDS = int(os.environ.get("FLEET_COUNT_SECONDS", "60"))
FLEET_COUNT_MAX_AGE_SECONDS = int(os.environ.get("FLEET_COUNT_MAX_AGE_SECONDS", "300"))
# Beat's own schedule; django-celery-beat copies it into the database on start, where
# operators can see and pause entries in the admin.
CELERY_BEAT_SCHEDULE = {
    "lapse-overdue-utility-reviews": {"task": "enrollment.tasks.lapse_overdue_utility_reviews", "schedule": 15 * 60},
    "mark-silent-devices-offline": {"task": "enrollment.tasks.mark_silent_devices_offline", "schedule": 60},
    "count-fleet": {"task": "enrollment.tasks.count_fleet", "schedule": FLEET_COUNT_SECONDS},
    "create-reading-partitions-ahead": {
        "task": "settlement.tasks.create_reading_partitions_ahead",
        "schedule": 6 * 3600,
    },
    "dispatch-sweep": {"task": "dispatch.tasks.sweep", "schedule": 15},
    "dispatch-closed-loop": {"task": "dispatch.tasks.closed_loop", "schedule": 30},
    "settlement-runs-due": {"task": "settlement.tasks.settle_due", "schedule": 3600},
    "battery-schedules-due": {"task": "dispatch.tasks.plan_due_schedules", "schedule": 15 * 60},
    "market-telemetry-prune": {"task": "aggregator.market.tasks.prune_telemetry", "schedule": 3600},
    "market-awards-poll": {"task": "aggregator.market.tasks.poll_awards", "schedule": 30},
    "market-offer-cycle": {"task": "aggregator.market.tasks.offer_cycle", "schedule": 60},
    "market-forecast-rollup": {"task": "aggregator.market.tasks.roll_up_forecast_history", "schedule": 10 * 60},
    "market-forecast-hourly": {"task": "aggregator.market.tasks.forecast_hourly", "schedule": 3600},
    "market-forecast-real-time": {"task": "aggregator.market.tasks.forecast_real_time", "schedule": 5 * 60},
}
# Settlement: the initial run waits this long after an event for the meter data to arrive;
# events this recent are re-checked for late or corrected data, and resettled when it changed.
SETTLEMENT_METER_DATA_DAYS = int(os.environ.get("SETTLEMENT_METER_DATA_DAYS", "2"))
SETTLEMENT_RESETTLE_DAYS = int(os.environ.get("SETTLEMENT_RESETTLE_DAYS", "60"))
# Energy offers (aggregator.market.offers): beat builds day-ahead offers this many hours before the market's
# deadline (real-time: minutes before) and submits approved ones (and auto-submit programs') within the last
# minutes; a forecast older than its kind's age is not offered from; an offer's ramp takes the full output over
# MARKET_OFFER_RAMP_MINUTES; opt-out rates look back this many days.
MARKET_OFFER_BUILD_HOURS_BEFORE = int(os.environ.get("MARKET_OFFER_BUILD_HOURS_BEFORE", "6"))
MARKET_OFFER_SUBMIT_MINUTES_BEFORE = int(os.environ.get("MARKET_OFFER_SUBMIT_MINUTES_BEFORE", "30"))
MARKET_OFFER_RT_BUILD_MINUTES_BEFORE = int(os.environ.get("MARKET_OFFER_RT_BUILD_MINUTES_BEFORE", "30"))
MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE = int(os.environ.get("MARKET_OFFER_RT_SUBMIT_MINUTES_BEFORE", "5"))
MARKET_OFFER_FORECAST_MAX_AGE_MINUTES = {
    "hourly": int(os.environ.get("MARKET_OFFER_HOURLY_FORECAST_MAX_AGE_MINUTES", "720")),
    "real_time": int(os.environ.get("MARKET_OFFER_RT_FORECAST_MAX_AGE_MINUTES", "30")),
}
MARKET_OFFER_RAMP_MINUTES = int(os.environ.get("MARKET_OFFER_RAMP_MINUTES", "5"))
MARKET_OFFER_OPT_OUT_LOOKBACK_DAYS = int(os.environ.get("MARKET_OFFER_OPT_OUT_LOOKBACK_DAYS", "90"))

# Telemetry to the market (aggregator.market.telemetry): how long samples are kept, and a push's timeout and
# how long a failed push's samples are sent again with later ones.
MARKET_TELEMETRY_KEEP_DAYS = int(os.environ.get("MARKET_TELEMETRY_KEEP_DAYS", "35"))
MARKET_TELEMETRY_PUSH_TIMEOUT_SECONDS = float(os.environ.get("MARKET_TELEMETRY_PUSH_TIMEOUT_SECONDS", "3"))
MARKET_TELEMETRY_PUSH_WINDOW_SECONDS = int(os.environ.get("MARKET_TELEMETRY_PUSH_WINDOW_SECONDS", "60"))

# Customer notification channels (dispatch.notifications); in-app is always recorded. The
# email channel sends through Django's mailer (EMAIL_* below, per deployment).
DISPATCH_NOTIFIERS = ["dispatch.notifications.InAppNotifier"] + [
    path.strip() for path in os.environ.get("DISPATCH_NOTIFIERS", "").split(",") if path.strip()
]
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "vpp@localhost")
# Django's mailer, set per deployment (events' e-mails to customers go through it when DISPATCH_NOTIFIERS names
# dispatch.notifications.EmailNotifier). Unset, Django's defaults apply (SMTP on localhost:25).
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "").lower() in ("1", "true", "yes")
# How often a device should poll for commands: while it has a live command, and otherwise.
DISPATCH_POLL_SECONDS = {
    "live": int(os.environ.get("DISPATCH_POLL_LIVE_SECONDS", "10")),
    "idle": int(os.environ.get("DISPATCH_POLL_IDLE_SECONDS", "30")),
}
# Devices per fan-out chunk (one task, one set-based statement each); smaller chunks spread a fan-out over more
# worker processes, larger ones cost fewer tasks.
DISPATCH_FAN_OUT_CHUNK = max(1, int(os.environ.get("DISPATCH_FAN_OUT_CHUNK", "5000")))
# How long a device token's poll answer may be served from Redis at most (0: never);
# see dispatch.poll_cache for why a change is never hidden by it.
DISPATCH_POLL_CACHE_SECONDS = int(os.environ.get("DISPATCH_POLL_CACHE_SECONDS", "60"))
# Push endpoints' signing keys derive from this (dispatch.push); changing it changes every key.
DISPATCH_PUSH_SECRET = (
    os.environ.get("DISPATCH_PUSH_SECRET") or hashlib.sha256(f"push:{SECRET_KEY}".encode()).hexdigest()
)
DISPATCH_PUSH_ALLOW_HTTP = env_bool("DISPATCH_PUSH_ALLOW_HTTP", not HTTPS)
DISPATCH_PUSH_ALLOW_PRIVATE = env_bool("DISPATCH_PUSH_ALLOW_PRIVATE", False)
# OpenADR 3 VTN: lifetime of the access tokens /openadr3/3.0.1/auth/token issues.
OPENADR_TOKEN_SECONDS = int(os.environ.get("OPENADR_TOKEN_SECONDS", "3600"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Where local runs keep their data (embedded servers, demo credentials).
VPP_DATA_DIR = Path(os.environ.get("VPP_DATA_DIR", BASE_DIR / ".data"))
