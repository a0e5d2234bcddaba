"""What the router knows of autoscaling pools, through two hooks named in settings (dotted paths, so the
router never imports autoscaling, which sits above it: README, Architecture).

- ROUTER_POOL_DIRECTORY: `() -> {model_code: {"pool", "pool_id", "can_grow", "hold_timeout_s", "queue_size"}}`,
  read with every routing table refresh, on the router's database thread.
- ROUTER_POOL_WAKE: `(pool_id, held) -> None`: how many requests this router holds for the pool now (it
  records the count and wakes the autoscaler). Called on the router's hook thread, never on the event loop.

A hook that cannot be imported is logged once and means "no pools" (no request is held) or "nobody to
tell". A directory that raises keeps the last good one, so a passing database error releases no request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

DIRECTORY_SETTING = "ROUTER_POOL_DIRECTORY"
WAKE_SETTING = "ROUTER_POOL_WAKE"

# Dotted path -> the callable, or None when it could not be imported (said once, not twice a second).
_resolved: dict[str, Callable | None] = {}
_warned: set = set()
_directory_failures = 0


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """The pool that serves a model, as the router needs it to hold a request."""

    pool: str
    pool_id: int
    can_grow: bool
    hold_timeout_s: float
    queue_size: int

    @property
    def holds(self) -> bool:
        """Whether a request for the model may wait here rather than get a 503 at once."""
        return self.can_grow and self.hold_timeout_s > 0 and self.queue_size > 0


def _hook(setting: str) -> Callable | None:
    path = getattr(settings, setting, None)
    if not path:
        return None
    if path not in _resolved:
        try:
            _resolved[path] = import_string(path)
        except ImportError as exc:
            log.warning("settings.%s = %r cannot be imported (%s): the router goes on without it",
                        setting, path, exc)
            _resolved[path] = None
    return _resolved[path]


def load_pool_directory() -> dict[str, PoolEntry] | None:
    """Model code -> its pool; {} without a directory; None when the directory failed (keep the last one).
    Synchronous (the directory reads the database): run it off the event loop."""
    global _directory_failures
    directory = _hook(DIRECTORY_SETTING)
    if directory is None:
        return {}
    try:
        raw = directory()
    except Exception:
        if _directory_failures == 0:
            log.exception("the pool directory failed; the router keeps the last one")
        _directory_failures += 1
        return None
    if _directory_failures:
        log.info("the pool directory answered again after %d failures", _directory_failures)
        _directory_failures = 0
    if not isinstance(raw, dict):
        _warn_once(("directory",), "the pool directory returned %s, not a dict: no pools", type(raw).__name__)
        return {}
    pools = {}
    for model, fields in raw.items():
        entry = _entry(model, fields)
        if entry is not None:
            pools[model] = entry
    return pools


def _entry(model, fields) -> PoolEntry | None:
    try:
        entry = PoolEntry(
            pool=str(fields["pool"]), pool_id=int(fields["pool_id"]), can_grow=bool(fields["can_grow"]),
            hold_timeout_s=float(fields["hold_timeout_s"]), queue_size=int(fields["queue_size"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        _warn_once(("entry", model), "the pool directory's entry for %r is unusable (%r): not held", model, exc)
        return None
    if not math.isfinite(entry.hold_timeout_s):
        _warn_once(("entry", model), "the pool directory's hold timeout for %r is not finite: not held", model)
        return None
    return entry


def report_held(pool_id: int, held: int) -> None:
    """Tell the pool's owner how many requests this router holds for it (synchronous, on the hook thread).
    Its failures are logged by the caller; a missing hook is silence."""
    wake = _hook(WAKE_SETTING)
    if wake is not None:
        wake(pool_id, held)


def _warn_once(key: tuple, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)
