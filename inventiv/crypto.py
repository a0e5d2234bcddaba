"""Encryption of secrets kept at rest (engine API keys, the Mock cloud's machine environment).

The keys are INVENTIV_ENCRYPTION_KEYS, newest first (README, "Rotating the encryption key"): new values are
encrypted with the first, and a value encrypted with any key of the list, or with the key derived from
SECRET_KEY (HKDF) that Inventiv uses when no key is configured, still decrypts. So a new key is added in
front, `manage.py rotate_encryption_key` re-encrypts what is stored, and only then is the old key removed.
A value no key decrypts raises ValueError naming the cause.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

# Domain separation: the key derived from SECRET_KEY serves this purpose only.
HKDF_INFO = b"inventiv:instance-secrets:v1"
UNREADABLE = (
    "cannot decrypt: was the key it was encrypted with removed from INVENTIV_ENCRYPTION_KEYS (or SECRET_KEY changed)?"
)


@lru_cache(maxsize=4)
def _keyring(encryption_keys: tuple[str, ...], secret_key: str) -> tuple[Fernet, MultiFernet]:
    """(the key that encrypts, every key that may decrypt)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key.encode())
    fernets = [Fernet(key.encode()) for key in encryption_keys] + [Fernet(base64.urlsafe_b64encode(derived))]
    return fernets[0], MultiFernet(fernets)


def _current() -> tuple[Fernet, MultiFernet]:
    return _keyring(tuple(settings.INVENTIV_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt_text(text: str) -> str:
    return _current()[1].encrypt(text.encode()).decode()


def decrypt_text(token: str) -> str:
    try:
        return _current()[1].decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError(UNREADABLE) from None


def is_encrypted_with_newest_key(token: str) -> bool:
    try:
        _current()[0].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def reencrypt_text(token: str) -> str:
    """The same secret encrypted with the newest key. Raises ValueError if no key decrypts it."""
    try:
        return _current()[1].rotate(token.encode()).decode()
    except InvalidToken:
        raise ValueError(UNREADABLE) from None
