"""API keys: their format and hash, and the in-memory index the request path authenticates against.

Keys carry 256 random bits, so an unsalted SHA-256 is enough to store them: no dictionary or brute-force
attack applies, and a plain hash is what a lookup by hash needs.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

from router.models import ApiKey

KEY_PREFIX = "sk-inv-"
KEY_RANDOM_BYTES = 32
# What the dashboard shows of a key: `sk-inv-` and five random characters.
DISPLAY_PREFIX_LENGTH = 12
# How a client sends its key: `Authorization: Bearer <key>` (the scheme's case does not matter).
BEARER = b"bearer "
KEY_HASH_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """What the request path needs to know about an active key."""

    id: int
    name: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    # None: every model.
    allowed_models: frozenset[str] | None
    # Spent its monthly budget (see ROUTER_KEY_BUDGET_CHECK): answered 429 until an operator raises it.
    over_budget: bool = False

    @property
    def is_limited(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None

    def may_use(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyHashes:
    """`Authorization` header value (`Bearer <key>`) -> the key's hash, remembered: a client sends the same
    header with every request, and hashing is a tenth of the router's own work on a small answer. Bounded:
    past `size` different headers (random keys sent on purpose) it starts again."""

    def __init__(self, size: int = KEY_HASH_CACHE_SIZE) -> None:
        self.size = size
        self._hashes: dict[bytes, str] = {}

    def of(self, authorization: bytes) -> str:
        found = self._hashes.get(authorization)
        if found is None:
            if len(self._hashes) >= self.size:
                self._hashes.clear()
            found = self._hashes[authorization] = hash_key(authorization[len(BEARER):].strip().decode("latin-1"))
        return found


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def keys_over_budget() -> set[int]:
    """Ids of keys over their budget, from the callable named by settings.ROUTER_KEY_BUDGET_CHECK.

    A dotted path, not an import: budgets live in finops, which sits above the router (README, Architecture).
    """
    path = getattr(settings, "ROUTER_KEY_BUDGET_CHECK", "")
    return set(import_string(path)()) if path else set()


def load_key_index() -> dict[str, KeyEntry]:
    """Every active key by hash (a database read: run it off the event loop)."""
    rows = ApiKey.objects.filter(revoked_at__isnull=True).values_list(
        "id", "name", "key_hash", "requests_per_minute", "tokens_per_minute", "allowed_models"
    )
    over_budget = keys_over_budget()
    return {
        key_hash: KeyEntry(
            id=key_id, name=name, requests_per_minute=rpm, tokens_per_minute=tpm,
            allowed_models=frozenset(allowed) if allowed else None, over_budget=key_id in over_budget,
        )
        for key_id, name, key_hash, rpm, tpm, allowed in rows
    }
