"""The keys Inventiv's settings read at start: Django's SECRET_KEY and the encryption keys for secrets at rest.

Both fail loudly (ImproperlyConfigured) on a value that would run insecurely: a SECRET_KEY left at the
placeholder `.env.example` ships, or an encryption key that is not a Fernet key. See README, "Configuration".
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from inventiv.env import env_secret

# `.env.example` ships its secrets as values starting with this: a copy that was never edited is refused.
PLACEHOLDER_PREFIX = "change-me"
SECRET_KEY_MIN_LENGTH = 32
FERNET_KEY_BYTES = 32
GENERATE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
GENERATE_FERNET_KEY = "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"


def read_secret_key(*, var_dir: Path) -> str:
    """SECRET_KEY (or SECRET_KEY_FILE); without either, a random key kept in `var_dir` (embedded mode)."""
    key = env_secret("SECRET_KEY")
    if not key:
        path = var_dir / "secret_key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(50))
            path.chmod(0o600)
        key = path.read_text().strip()
    if key.startswith(PLACEHOLDER_PREFIX):
        raise ImproperlyConfigured(
            f"SECRET_KEY is still the placeholder from .env.example: set a random one ({GENERATE_SECRET_KEY})"
        )
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ImproperlyConfigured(f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters long")
    return key


def read_encryption_keys() -> list[str]:
    """The Fernet keys for secrets at rest, newest first: INVENTIV_ENCRYPTION_KEYS (separated by commas, or by
    lines in a file), or the older single INVENTIV_ENCRYPTION_KEY as a list of one; [] when neither is set (a
    key derived from SECRET_KEY is used then, see inventiv/crypto.py). Either may be read from a file
    (`..._FILE`, as Docker and Kubernetes secrets are)."""
    listed, single = env_secret("INVENTIV_ENCRYPTION_KEYS"), env_secret("INVENTIV_ENCRYPTION_KEY")
    if listed and single:
        raise ImproperlyConfigured(
            "INVENTIV_ENCRYPTION_KEYS and INVENTIV_ENCRYPTION_KEY are both set: keep only "
            "INVENTIV_ENCRYPTION_KEYS, with the older key in it after the new one"
        )
    name = "INVENTIV_ENCRYPTION_KEYS" if listed else "INVENTIV_ENCRYPTION_KEY"
    keys = [key for key in re.split(r"[,\s]+", listed or single) if key]
    for position, key in enumerate(keys, start=1):
        if key.startswith(PLACEHOLDER_PREFIX):
            raise ImproperlyConfigured(
                f"{name} is still the placeholder from .env.example: generate a key ({GENERATE_FERNET_KEY})"
            )
        if not _is_fernet_key(key):
            # The position, never the value: a key must not end up in a log.
            raise ImproperlyConfigured(
                f"{name}: key {position} of {len(keys)} is not a Fernet key (32 bytes, url-safe base64; "
                f"generate one with {GENERATE_FERNET_KEY})"
            )
    if len(set(keys)) != len(keys):
        raise ImproperlyConfigured(f"{name} names the same key twice")
    return keys


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == FERNET_KEY_BYTES
    except (ValueError, binascii.Error):
        return False
