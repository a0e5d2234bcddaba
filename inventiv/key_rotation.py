"""Re-encrypting every secret stored at rest with the newest encryption key (`manage.py rotate_encryption_key`).

The steps around it are in the README, "Rotating the encryption key": put the new key first in
INVENTIV_ENCRYPTION_KEYS, restart, rotate, and only then remove the old key.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps

from inventiv.crypto import is_encrypted_with_newest_key, reencrypt_text

# Rows read per query while rotating.
ROTATION_BATCH = 500
# Columns holding inventiv.crypto ciphertext are named like this (a test checks every one is listed below).
ENCRYPTED_SUFFIX = "_encrypted"


@dataclass(frozen=True)
class EncryptedColumn:
    model: str  # "app_label.ModelName": read through the app registry, so this module imports no app
    field: str

    def __str__(self) -> str:
        return f"{self.model}.{self.field}"


ENCRYPTED_COLUMNS = (
    EncryptedColumn("instances.Instance", "engine_api_key_encrypted"),
    EncryptedColumn("providers.MockServer", "runtime_env_encrypted"),
)


@dataclass
class ColumnRotation:
    column: EncryptedColumn
    reencrypted: int = 0
    already_current: int = 0
    # Changed by someone else between our read and our write: written since with the newest key.
    changed_meanwhile: int = 0
    # No key of INVENTIV_ENCRYPTION_KEYS (nor the one derived from SECRET_KEY) decrypts these; left as they are.
    unreadable: int = 0


def rotate_encrypted_columns(*, batch: int = ROTATION_BATCH) -> list[ColumnRotation]:
    """Re-encrypt, with the newest key, each stored secret that another key encrypted. Safe to run again (what
    is already on the newest key is counted, not rewritten) and beside a running control plane: each row is
    written only if it still holds the value that was read."""
    return [_rotate_column(column, batch=batch) for column in ENCRYPTED_COLUMNS]


def _rotate_column(column: EncryptedColumn, *, batch: int) -> ColumnRotation:
    model = apps.get_model(column.model)
    report = ColumnRotation(column)
    rows = model.objects.exclude(**{column.field: ""}).order_by("pk").values_list("pk", column.field)
    for pk, token in rows.iterator(chunk_size=batch):
        if is_encrypted_with_newest_key(token):
            report.already_current += 1
            continue
        try:
            fresh = reencrypt_text(token)
        except ValueError:
            report.unreadable += 1
            continue
        if model.objects.filter(pk=pk, **{column.field: token}).update(**{column.field: fresh}):
            report.reencrypted += 1
        else:
            report.changed_meanwhile += 1
    return report
