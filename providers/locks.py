"""One worker at a time at a provider: a row lock in a table of ours (PostgreSQL `SELECT ... FOR UPDATE`; SQLite
takes its write lock when the transaction starts, see inventiv/settings.py), held while the work runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction

from providers.models import ProviderLock


@contextmanager
def provider_lock(key: str) -> Iterator[ProviderLock]:
    """Hold the lock named `key` for the block; the row's `value` (saved at the end) is the holder's note."""
    ProviderLock.objects.get_or_create(key=key)  # a racing insert resolves on the unique key
    with transaction.atomic():
        row = ProviderLock.objects.select_for_update().get(key=key)
        yield row
        row.save(update_fields=["value", "updated_at"])
