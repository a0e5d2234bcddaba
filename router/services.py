"""API keys: creating one (its clear value is returned once and never stored) and revoking it.

A revoked key stops working at once: the change is pushed to every router runtime (router/changes.py),
and `revoke_api_key` returns once they applied it; a router that missed the push finds it at its next
reload.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from catalog.models import LlmModel
from monitoring.audit import Verb, action_type, record_change, snapshot
from router import changes
from router.keys import display_prefix, generate_key, hash_key
from router.models import ApiKey

# The audit rows of keys: API_KEY_CREATE, API_KEY_REVOKE (monitoring/audit.py; edits in the admin: API_KEY_UPDATE).
AUDIT_AREA = "API_KEY"


def create_api_key(*, name: str, created_by=None, requests_per_minute: int | None = None,
                   tokens_per_minute: int | None = None, allowed_models: Iterable[str] = (),
                   source: str | None = None) -> tuple[ApiKey, str]:
    """A new key and its clear value, which the caller shows once. Raises ValidationError for an
    allowed model that the catalog does not know. An operator's key (`source`: where they asked) is audited
    (API_KEY_CREATE); its hash is masked there."""
    allowed = sorted(set(allowed_models))
    unknown = sorted(set(allowed) - set(LlmModel.objects.filter(code__in=allowed).values_list("code", flat=True)))
    if unknown:
        raise ValidationError({"allowed_models": f"Unknown model code(s): {', '.join(unknown)}"})
    clear = generate_key()
    with transaction.atomic():
        api_key = ApiKey.objects.create(
            name=name,
            prefix=display_prefix(clear),
            key_hash=hash_key(clear),
            created_by=created_by if created_by is not None and created_by.is_authenticated else None,
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            allowed_models=allowed,
        )
        if source is not None:
            record_change(action_type(AUDIT_AREA, Verb.CREATE), target=api_key, user=created_by, source=source,
                          after=snapshot(api_key))
    return api_key, clear


def revoke_api_key(api_key: ApiKey, *, actor=None, source: str | None = None) -> ApiKey:
    """Revoke the key (once: revoking again keeps the first time, and writes no second audit row). Returns
    once the routers refuse it."""
    with transaction.atomic():
        revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        before = snapshot(api_key)
        api_key.refresh_from_db(fields=["revoked_at", "key_hash"])
        changes.announce_on_commit(changes.KEY_REVOKED, key_hash=api_key.key_hash)
        if revoked and source is not None:
            record_change(action_type(AUDIT_AREA, "REVOKE"), target=api_key, user=actor, source=source,
                          before={**before, "revoked_at": None}, after=snapshot(api_key))
    return api_key
