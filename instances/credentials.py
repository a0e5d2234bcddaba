"""Per-instance secrets: the worker token (stored as a hash) and the engine API key (encrypted at rest).

Clear values exist only in memory while provisioning hands them to the machine (user data or the Mock
runtime's environment). Nothing here logs them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from instances.models import Instance
from inventiv.crypto import decrypt_text, encrypt_text

TOKEN_BYTES = 32
ENGINE_KEY_PREFIX = "inv-engine-"

# Names under which the machine receives its values (user data for clouds, environment for the Mock).
ENV_WORKER_TOKEN = "INVENTIV_WORKER_TOKEN"
ENV_ENGINE_API_KEY = "INVENTIV_ENGINE_API_KEY"


@dataclass(frozen=True, repr=False)
class MintedCredentials:
    worker_token: str
    engine_api_key: str

    @property
    def worker_token_hash(self) -> str:
        return hash_token(self.worker_token)

    def encrypted_engine_api_key(self) -> str:
        return encrypt_text(self.engine_api_key)

    def stored_fields(self) -> dict:
        """What the instance row keeps: the token's hash and the encrypted key, never a clear value."""
        return {
            "worker_token_hash": self.worker_token_hash,
            "engine_api_key_encrypted": self.encrypted_engine_api_key(),
        }

    def __repr__(self) -> str:
        return "MintedCredentials(<hidden>)"


def mint_credentials() -> MintedCredentials:
    return MintedCredentials(
        worker_token=secrets.token_urlsafe(TOKEN_BYTES),
        engine_api_key=ENGINE_KEY_PREFIX + secrets.token_urlsafe(TOKEN_BYTES),
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def verify_worker_token(instance: Instance, token: str | None) -> bool:
    """Whether `token` is this instance's worker token (constant-time; False when none was minted)."""
    if not token or not instance.worker_token_hash:
        return False
    return hmac.compare_digest(hash_token(token), instance.worker_token_hash)


def engine_api_key(instance: Instance) -> str:
    """The instance's engine (vLLM) API key in clear, for the router. Raises ValueError if unreadable."""
    if not instance.engine_api_key_encrypted:
        raise ValueError(f"instance {instance.pk} has no engine API key yet")
    try:
        return decrypt_text(instance.engine_api_key_encrypted)
    except ValueError:
        raise ValueError(
            f"the engine API key of instance {instance.pk} cannot be decrypted: was the key that encrypted it "
            "removed from INVENTIV_ENCRYPTION_KEYS (or SECRET_KEY changed)?"
        ) from None
