"""Inventiv settings: one module, driven by environment variables (see README, "Configuration").

Embedded defaults need no server: a SQLite file and Celery's filesystem transport under ./var.
Production sets DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import ipaddress
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from inventiv.env import env_bool, env_int, env_list, env_redis_url, env_secret, env_str
from inventiv.keys import PLACEHOLDER_PREFIX, read_encryption_keys, read_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("INVENTIV_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
VERSION = (BASE_DIR / "VERSION").read_text().strip()

DEBUG = env_bool("DEBUG", False)


SECRET_KEY = read_secret_key(var_dir=VAR_DIR)
# Fernet keys that encrypt secrets at rest (engine API keys...), newest first; [] derives one from SECRET_KEY.
# A key may leave this list only after `manage.py rotate_encryption_key` (README, "Rotating the encryption key").
INVENTIV_ENCRYPTION_KEYS = read_encryption_keys()

# Secrets GPU machines may need, from the environment; one set in the dashboard wins (catalog/machine_secrets.py).
MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": env_secret("HF_TOKEN")}

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
# How GPU machines reach the control plane (worker registration and heartbeats).
PUBLIC_URL = env_str("INVENTIV_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")

# --- HTTPS behind a reverse proxy (README, "HTTPS") -------------------------------------------
# One switch: the proxy terminates TLS and says so in X-Forwarded-Proto, cookies travel over HTTPS only, and
# plain-HTTP requests that reach Django are redirected (INVENTIV_HTTPS_REDIRECT=0 leaves that to the proxy).
INVENTIV_HTTPS = env_bool("INVENTIV_HTTPS", False)
if INVENTIV_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("INVENTIV_HTTPS_REDIRECT", True)
# HSTS is opt-in on its own: browsers remember it for this many seconds, so turn it on once HTTPS works.
SECURE_HSTS_SECONDS = env_int("INVENTIV_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("INVENTIV_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("INVENTIV_HSTS_PRELOAD", False)
if SECURE_HSTS_SECONDS and not INVENTIV_HTTPS:
    raise ImproperlyConfigured("INVENTIV_HSTS_SECONDS needs INVENTIV_HTTPS=1 (HSTS is only sent over HTTPS)")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    # Swagger UI and ReDoc served from the project's static files, so /api/docs/ works offline (README).
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "inventiv",
    "catalog",
    "monitoring",
    "providers",
    "instances",
    "router",
    "finops",
    "autoscaling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A database that cannot be reached is a 503 with Retry-After, not a 500 (inventiv/unavailable.py).
    "inventiv.unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "inventiv.urls"
WSGI_APPLICATION = "inventiv.wsgi.application"
ASGI_APPLICATION = "inventiv.asgi.application"

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
                "inventiv.context_processors.inventiv",
            ],
        },
    },
]


# Runs of one statement on one connection after which PostgreSQL keeps it prepared.
PREPARE_THRESHOLD = 2


def _database() -> dict:
    url = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'inventiv.sqlite3'}")
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
    except Exception as exc:  # dj_database_url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Inventiv understands: {exc}") from None
    if str(config.get("PASSWORD") or "").startswith(PLACEHOLDER_PREFIX):
        raise ImproperlyConfigured(
            "the database password is still the placeholder from .env.example (POSTGRES_PASSWORD)"
        )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web, worker threads and beat share the file: wait for locks instead of failing at once, and let
        # readers go on while one of them writes (write-ahead log).
        config["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE",
                             "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"}
        config["CONN_MAX_AGE"] = 0
    elif config["ENGINE"] not in ("django.db.backends.postgresql",):
        raise ImproperlyConfigured(f"DATABASE_URL engine {config['ENGINE']} is not supported (PostgreSQL or SQLite)")
    elif env_bool("DB_PREPARED_STATEMENTS", True):
        # Server-side binding lets PostgreSQL keep the plan of a statement a connection runs again (from its
        # second run): the same few statements run for every heartbeat, task and request, and parsing and
        # planning them was half of PostgreSQL's CPU in bench/provision.py. Turn it off behind a pooler in
        # transaction mode (PgBouncer < 1.21), which cannot keep prepared statements.
        config["OPTIONS"] = {**config.get("OPTIONS", {}), "server_side_binding": True,
                             "prepare_threshold": PREPARE_THRESHOLD}
    # SQLite tests get a file too, not SQLite's shared in-memory database: there a thread that meets another
    # one's lock fails at once instead of waiting (the end-to-end tests run servers on threads).
    sqlite_test_file = str(VAR_DIR / "test-inventiv.sqlite3") if config["ENGINE"].endswith("sqlite3") else None
    config["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or sqlite_test_file}
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Covering indexes (INCLUDE columns) speed up PostgreSQL; SQLite builds the same indexes without them.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
FIXTURE_DIRS = [BASE_DIR / "fixtures"]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time outside the var volume (INVENTIV_STATIC_ROOT=/app/staticfiles).
STATIC_ROOT = Path(env_str("INVENTIV_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# The project serves its own static files (no CDN, no separate web server needed).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# Files a browser asks for at the site's root (/favicon.ico) without reading any page.
WHITENOISE_ROOT = BASE_DIR / "static" / "root"

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # `Authorization: Token <token>`; only the token's hash is stored (django-rest-knox).
        "inventiv.api_tokens.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["inventiv.permissions.IsStaffOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "inventiv.pagination.LimitOffsetPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "inventiv.api_errors.exception_handler",
}
REST_KNOX = {
    # Tokens for scripts: no expiry unless `manage.py create_api_token --expires-days N` sets one.
    "TOKEN_TTL": None,
    "AUTH_HEADER_PREFIX": "Token",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inventiv API",
    "DESCRIPTION": "Control plane for serving LLMs on rented GPUs.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `status` field with its own choices: name each enum instead of a hash suffix.
    "ENUM_NAME_OVERRIDES": {
        "InstanceStatusEnum": "instances.models.Status",
        "ActionLogStatusEnum": "monitoring.models.ActionLog.Status",
    },
    # No request leaves the host: the documentation pages load their scripts from the project (the sidecar),
    # and Swagger UI asks no online validator.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Every operation documents its error answers in the one error shape (README, "API conventions").
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "inventiv.api_schema.add_error_responses"],
}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env_redis_url("REDIS_URL")
BROKER_CONNECT_TIMEOUT_S = 5
# "localhost" only keeps kombu from warning "No hostname was supplied" each time it copies the connection.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost//"
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only once it finished: a worker killed mid-task leaves it on the queue.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Broker outages (README, "Broker outages"): the worker and beat wait for the broker at start and after a
# loss for as long as it takes, retrying every 2, 4, 6 ... up to 30 s; no number of retries makes them quit.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks running when the connection drops finish; their messages stay unacknowledged and Redis hands them out
# again (tasks are safe to run twice). Cancelling them instead is not possible on the threads pool.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A Redis host that drops packets instead of refusing them: a publish (inside a web request) gives up
        # connecting after this long instead of the kernel's two minutes.
        "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
        "socket_keepalive": True,
    }
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery's Django fixup closes the database connection before and after every task unless told to reuse
# it: a new PostgreSQL session per task cost more CPU than the provision task itself (bench/provision.py).
# Connections are kept for this many tasks; inventiv/celery.py still drops a broken or expired one
# (CONN_MAX_AGE, health checks) before each task, as Django does before each request.
CELERY_DB_REUSE_MAX = 1000
# One readable schedule for every sweep; each entry expires before its next run.
SWEEP_PERIOD_S = 10
# A sweep still queued when the next one is due is dropped: the next one does the same work.
SWEEP_EXPIRES_S = 9
_SWEEP = {"schedule": SWEEP_PERIOD_S, "options": {"expires": SWEEP_EXPIRES_S}}
# Raw heartbeat samples are folded into one-minute averages this often.
HEARTBEAT_RETENTION_PERIOD_S = 300
# The cost series has one row per instance and minute.
COST_PERIOD_S = 60
CELERY_BEAT_SCHEDULE: dict = {
    "instances-startup-health": {"task": "instances.tasks.sweep_startup_health_task", **_SWEEP},
    "instances-watchdog": {"task": "instances.tasks.sweep_watchdog_task", **_SWEEP},
    "instances-terminator": {"task": "instances.tasks.sweep_terminating_task", **_SWEEP},
    "instances-requeue-lost-provisions": {"task": "instances.tasks.sweep_lost_provisions_task", **_SWEEP},
    "instances-orphans": {"task": "instances.tasks.sweep_orphans_task", **_SWEEP},
    "instances-lost-heartbeats": {"task": "instances.tasks.sweep_lost_heartbeats_task", **_SWEEP},
    "instances-drains": {"task": "instances.tasks.sweep_drains_task", **_SWEEP},
    "autoscaling-pools": {"task": "autoscaling.tasks.autoscale_pools_task", **_SWEEP},
    "monitoring-heartbeat-retention": {
        "task": "monitoring.tasks.downsample_heartbeats_task",
        "schedule": HEARTBEAT_RETENTION_PERIOD_S,
        "options": {"expires": HEARTBEAT_RETENTION_PERIOD_S - SWEEP_PERIOD_S},
    },
    # Every finished minute's cost (back-filling any missed); expires before the next minute's run.
    "finops-accrue-costs": {
        "task": "finops.tasks.accrue_costs_task",
        "schedule": COST_PERIOD_S,
        "options": {"expires": COST_PERIOD_S - SWEEP_PERIOD_S},
    },
}

# The router refuses (429) keys over their monthly budget; finops answers which ones. A dotted path keeps
# the router from importing finops (DESIGN section 9).
ROUTER_KEY_BUDGET_CHECK = "finops.selectors.keys_over_budget"
# Scale from zero: the router holds requests for a model whose pool may grow (autoscaling answers which,
# with each refresh of the routing table) and reports how many it holds, which wakes the autoscaler.
# Dotted paths again, for the same reason; empty: no request is held.
ROUTER_POOL_DIRECTORY = "autoscaling.selectors.pools_for_routing"
ROUTER_POOL_WAKE = "autoscaling.holds.report_held_requests"
# Scale-out: with a Redis, every router process shares per-key limits and held-request counts and hears
# of changes (keys, ready instances, pools) at once; its keys live under ROUTER_REDIS_PREFIX, since the same
# Redis is usually the Celery broker. Empty: each process counts alone and polls (README, The data plane).
ROUTER_REDIS_URL = env_redis_url("ROUTER_REDIS_URL") or REDIS_URL
ROUTER_REDIS_PREFIX = env_str("ROUTER_REDIS_PREFIX", "inventiv:router:")
# Models whose saves and deletes change the router's pool directory (settings.ROUTER_POOL_DIRECTORY): a
# change to one is pushed to every router at once. Labels, not imports: autoscaling sits above the router.
ROUTER_DIRECTORY_MODELS = ("autoscaling.Pool", "autoscaling.PoolChoice")
# How the router picks among a model's ready instances: "cache-aware" (the instance most likely to hold
# the prompt's prefix in its KV cache, within a load bound), "least-loaded" or "round-robin".
ROUTER_ROUTINGS = ("cache-aware", "least-loaded", "round-robin")
ROUTER_ROUTING = env_str("ROUTER_ROUTING", "cache-aware")
if ROUTER_ROUTING not in ROUTER_ROUTINGS:
    raise ImproperlyConfigured(f"ROUTER_ROUTING={ROUTER_ROUTING!r} is not one of {', '.join(ROUTER_ROUTINGS)}")

# --- Mock cloud -----------------------------------------------------------------------------
# "none": servers are simulated only (readiness = the server runs), for scale tests with thousands of
# instances. "process": each Mock server is a real worker agent + vLLM simulator on loopback ports, ready
# by heartbeat (`make run` uses it).
MOCK_RUNTIMES = ("none", "process")
INVENTIV_MOCK_RUNTIME = env_str("INVENTIV_MOCK_RUNTIME", "none")
if INVENTIV_MOCK_RUNTIME not in MOCK_RUNTIMES:
    raise ImproperlyConfigured(
        f"INVENTIV_MOCK_RUNTIME={INVENTIV_MOCK_RUNTIME!r} is not one of {', '.join(MOCK_RUNTIMES)}"
    )

# How long the join token of a host the operator registers stays valid (README, "A GPU machine you run
# yourself"); a host whose agent has not joined by then (plus the install startup timeout) fails.
JOIN_TOKEN_TTL_S = env_int("INVENTIV_JOIN_TOKEN_TTL_S", 24 * 3600, minimum=60)

# --- Prometheus (/metrics) -------------------------------------------------------------------
def _networks(name: str, default: str) -> list:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name, default)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (use IP addresses or networks, comma-separated)") from None


# A scraper sends this as `Authorization: Bearer ...`, or scrapes from one of the allowed addresses.
INVENTIV_METRICS_TOKEN = env_secret("INVENTIV_METRICS_TOKEN")
INVENTIV_METRICS_ALLOWED_IPS = _networks("INVENTIV_METRICS_ALLOWED_IPS", "127.0.0.1")

# Who may reach a GPU machine (README, "Providers"): vLLM's key guards only its /v1 paths, so the engine and
# agent ports admit the control plane's addresses only. Without them a cloud create is refused, unless the
# operator opens the machines to the internet on purpose (the dashboard then says so).
CONTROL_PLANE_CIDRS = [str(net) for net in _networks("INVENTIV_CONTROL_PLANE_CIDRS", "")]
ALLOW_PUBLIC_ENGINES = env_bool("INVENTIV_ALLOW_PUBLIC_ENGINES", False)
# How often a dashboard page that shows changing state refreshes its live part (README, "Using it").
LIVE_REFRESH_S = env_int("INVENTIV_LIVE_REFRESH_S", 5, minimum=1)
# Optional SSH to the machines, from these networks, with this public key (an `ssh-ed25519 AAAA...` line).
SSH_CIDRS = [str(net) for net in _networks("INVENTIV_SSH_CIDRS", "")]
SSH_PUBLIC_KEY = env_str("INVENTIV_SSH_PUBLIC_KEY").strip()
if SSH_PUBLIC_KEY and ("\n" in SSH_PUBLIC_KEY or not SSH_PUBLIC_KEY.startswith(("ssh-", "ecdsa-", "sk-"))):
    raise ImproperlyConfigured("INVENTIV_SSH_PUBLIC_KEY must be one OpenSSH public key line (ssh-ed25519 AAAA...)")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
