"""How a Celery task that calls a cloud provider retries: through Celery, on transient provider errors only.

`TransientProviderError` (a timeout, a 5xx, throttling) is retried with exponential backoff and full
jitter, a few times; a permanent `ProviderError` is the service's to handle, and when the retries run out
the beat sweeps finish the job. A provider that says how long to wait (`Retry-After`, carried as
`TransientProviderError.retry_after`) is waited for at least that long.

While a step is retried (or re-queued), the last error the provider answered stays on the instance
(`last_provider_error`: code, message, the provider's details, when), so an operator sees why it waits.
"""

from __future__ import annotations

import json

from django.utils import timezone

from instances.models import Instance
from inventiv.enqueue import OnCommitTask
from providers.base import ProviderError, TransientProviderError

MAX_RETRIES = 5
# Celery's backoff: about 2, 4, 8 ... s (full jitter draws each in [0, that]), at most 60 s.
BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 60
MAX_ERROR_MESSAGE = 1000
MAX_DETAILS_TEXT = 2000


class ProviderTask(OnCommitTask):
    """The base of every task that calls a provider (`@shared_task(base=ProviderTask)`)."""

    autoretry_for = (TransientProviderError,)
    max_retries = MAX_RETRIES
    retry_backoff = BACKOFF_BASE_S
    retry_backoff_max = BACKOFF_MAX_S
    retry_jitter = True

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None,
              **options):
        """Celery's retry, waiting the larger of the backoff and what the provider asked for."""
        asked = getattr(exc, "retry_after", None)
        if asked is not None and eta is None and (countdown is None or asked > countdown):
            countdown = asked
        return super().retry(args=args, kwargs=kwargs, exc=exc, throw=throw, eta=eta, countdown=countdown,
                             max_retries=max_retries, **options)


def provider_error_record(exc: ProviderError, *, during: str) -> dict:
    """`exc` as the instance keeps it: JSON-safe, bounded."""
    details = exc.details
    if details is not None and len(json.dumps(details, default=str)) > MAX_DETAILS_TEXT:
        details = json.dumps(details, default=str)[:MAX_DETAILS_TEXT]
    return {
        "during": during, "code": exc.code or "", "message": exc.message[:MAX_ERROR_MESSAGE],
        "details": details, "retry_after": getattr(exc, "retry_after", None), "permanent": exc.permanent,
        "at": timezone.now().isoformat(),
    }


def remember_provider_error(instance_id, exc: ProviderError, *, during: str) -> None:
    """Keep what the provider answered (while `during`, e.g. "create") on the instance for the operator."""
    Instance.objects.filter(pk=instance_id).update(last_provider_error=provider_error_record(exc, during=during))


def describe_details(details) -> str:
    """The provider's details in one line: "volumes.0.size: constraint (size must be ...)"."""
    if isinstance(details, list):
        parts = []
        for item in details:
            if isinstance(item, dict):
                name = item.get("argument_name") or item.get("resource") or ""
                why = item.get("reason") or ""
                hint = item.get("help_message") or ""
                parts.append(f"{name}: {why}" + (f" ({hint})" if hint else ""))
        return "; ".join(part for part in parts if part.strip(": "))
    if isinstance(details, dict):
        return "; ".join(f"{name}: {', '.join(map(str, problems)) if isinstance(problems, list) else problems}"
                         for name, problems in details.items())
    return ""
