"""API keys: creating one (its clear value is returned once and never stored) and revoking it.

A revoked key stops working at once: the change is pushed to every router runtime (router/changes.py),
and `revoke_api_key` returns once they applied it; a router that missed the push finds it at its next
reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.utils import timezone

from catalog.models import LlmModel
from router import changes
from router.keys import display_prefix, generate_key, hash_key
from router.models import ApiKey


def create_api_key(*, name: str, created_by=None, requests_per_minute: int | None = None,
                   tokens_per_minute: int | None = None, allowed_models: Iterable[str] = ()) -> tuple[ApiKey, str]:
    """A new key and its clear value, which the caller shows once. Raises ValidationError for an
    allowed model that the catalog does not know."""
    allowed = sorted(set(allowed_models))
    unknown = sorted(set(allowed) - set(LlmModel.objects.filter(code__in=allowed).values_list("code", flat=True)))
    if unknown:
        raise ValidationError({"allowed_models": f"Unknown model code(s): {', '.join(unknown)}"})
    clear = generate_key()
    api_key = ApiKey.objects.create(
        name=name,
        prefix=display_prefix(clear),
        key_hash=hash_key(clear),
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        allowed_models=allowed,
    )
    return api_key, clear


def revoke_api_key(api_key: ApiKey) -> ApiKey:
    """Revoke the key (once: revoking again keeps the first time). Returns once the routers refuse it."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at", "key_hash"])
    changes.announce_on_commit(changes.KEY_REVOKED, key_hash=api_key.key_hash)
    return api_key
