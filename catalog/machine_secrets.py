"""Secrets for GPU machines: which exist, where each comes from, and their values for a launch plan.

A secret set in the dashboard (stored encrypted) wins over the environment (`HF_TOKEN` or `HF_TOKEN_FILE`), so
an operator can change it without a deploy. Values leave this module only for the machine that needs them
(its launch plan's `secret_env`): never for a log line, an action log row or an API answer.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from catalog.models import MachineSecret
from inventiv.crypto import decrypt_text, encrypt_text
from monitoring.audit import Masked, Verb, action_type, record_change

# The secrets Inventiv knows how to deliver, with what they are for.
KNOWN_SECRETS = {"HF_TOKEN": "Hugging Face access token: downloads the weights of gated models"}
MAX_SECRET_LENGTH = 4096
AUDIT_AREA = "MACHINE_SECRET"


class MissingMachineSecret(Exception):
    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(
            f"{', '.join(names)} not set: set it in Settings → Runtime settings → Machine secrets, or in the "
            "control plane's environment (README, Configuration)"
        )


def _from_environment(name: str) -> str:
    return settings.MACHINE_SECRETS_FROM_ENV.get(name, "")


def secret_sources() -> list[tuple[str, str, str]]:
    """(name, what it is for, "dashboard" | "environment" | "") for every known secret."""
    stored = set(MachineSecret.objects.values_list("name", flat=True))
    return [
        (name, purpose, "dashboard" if name in stored else "environment" if _from_environment(name) else "")
        for name, purpose in KNOWN_SECRETS.items()
    ]


def set_machine_secret(name: str, *, value: str, actor=None, source: str | None = None) -> None:
    """Store `value` encrypted under `name`; an empty value removes the dashboard's copy. An operator's change
    (`source`: where they made it) is audited, the value masked (MACHINE_SECRET_CREATE / _UPDATE / _DELETE)."""
    if name not in KNOWN_SECRETS:
        raise ValueError(f"unknown machine secret {name!r}")
    if value and (len(value) > MAX_SECRET_LENGTH or "\x00" in value):
        raise ValueError(f"{name} must be at most {MAX_SECRET_LENGTH} characters, without NUL")
    with transaction.atomic():
        stored = MachineSecret.objects.select_for_update().filter(name=name).first()
        if not value:
            MachineSecret.objects.filter(name=name).delete()
        else:
            MachineSecret.objects.update_or_create(name=name, defaults={"encrypted_value": encrypt_text(value)})
        if source is None or (stored is None and not value):
            return
        verb = Verb.DELETE if not value else Verb.UPDATE if stored is not None else Verb.CREATE
        before = None if stored is None else {"value": Masked(decrypt_text(stored.encrypted_value))}
        after = {"value": Masked(value)} if value else None
        record_change(action_type(AUDIT_AREA, verb), target=f"machine secret {name}", user=actor, source=source,
                      before=before, after=after)


def machine_secret_values(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The value of each secret in `names`; MissingMachineSecret names those set nowhere."""
    if not names:
        return {}  # most plans need none: no query
    stored = {row.name: row.encrypted_value for row in MachineSecret.objects.filter(name__in=names)}
    values, missing = {}, []
    for name in names:
        value = decrypt_text(stored[name]) if name in stored else _from_environment(name)
        if value:
            values[name] = value
        else:
            missing.append(name)
    if missing:
        raise MissingMachineSecret(missing)
    return values
