"""Encryption of secrets kept at rest (engine API keys, the Mock cloud's machine environment).

One Fernet key: INVENTIV_ENCRYPTION_KEY, or one derived from SECRET_KEY with HKDF. Changing either makes
what was stored unreadable, which `decrypt_text` reports as a ValueError naming the cause.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Domain separation: the key derived from SECRET_KEY serves this purpose only.
HKDF_INFO = b"inventiv:instance-secrets:v1"


@lru_cache(maxsize=4)
def _fernet(encryption_key: str, secret_key: str) -> Fernet:
    if encryption_key:
        return Fernet(encryption_key.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _current() -> Fernet:
    return _fernet(settings.INVENTIV_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt_text(text: str) -> str:
    return _current().encrypt(text.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt: was INVENTIV_ENCRYPTION_KEY (or SECRET_KEY) changed?") from None
