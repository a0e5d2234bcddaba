"""Tiny typed readers for environment variables.

Each helper fails loudly (ImproperlyConfigured) on a value it does not understand, so a typo in a
deployment stops the process at start instead of running with a silent default.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum {minimum}")
    return value


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def env_redis_url(name: str) -> str:
    """A Redis URL, or "" when unset. Checked here: redis-py would refuse a bad one only when first used,
    on every request of the router and every task the broker carries."""
    raw = os.environ.get(name, "").strip()
    if raw and not raw.startswith(REDIS_SCHEMES):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a Redis URL (redis://host:port/db, rediss://... or unix://...)")
    return raw


def env_list(name: str, default: str = "") -> list[str]:
    raw = os.environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str) -> str:
    """Read a secret from NAME or from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from None
    return os.environ.get(name, "")
