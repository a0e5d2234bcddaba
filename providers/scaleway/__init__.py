"""Scaleway GPU Instances through the official `scaleway` SDK.

Three things the SDK does not do for us, done here:
- deadlines: the SDK calls `requests` with no timeout, so every HTTP call goes through `client.py`;
- one error type: every SDK, HTTP and network error becomes a ProviderError that says whether a retry can
  help and, where it matters to the operator, which instance error code it maps to (`errors.py`);
- idempotency: every server carries `inventiv-instance=<id>` in its tags, and create_server returns the
  server already carrying that tag instead of creating a second one (`servers.py`).

One module per kind of resource: `servers.py`, `security_groups.py`, `volumes.py` (block volumes outlive
their server), `offers.py` (the catalog). `config.py` reads the credentials; `adapter.py` holds
ScalewayProvider, the class the registry loads, which hands each call to one of them.
"""

from providers.scaleway.adapter import ScalewayProvider

__all__ = ["ScalewayProvider"]
