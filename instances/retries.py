"""How a Celery task that calls a cloud provider retries: through Celery, on transient provider errors only.

`TransientProviderError` (a timeout, a 5xx, throttling) is retried with exponential backoff and full
jitter, a few times; a permanent `ProviderError` is the service's to handle, and when the retries run out
the beat sweeps finish the job. A provider that says how long to wait (`Retry-After`, carried as
`TransientProviderError.retry_after`) is waited for at least that long.
"""

from __future__ import annotations

from celery.contrib.django.task import DjangoTask

from providers.base import TransientProviderError

MAX_RETRIES = 5
# Celery's backoff: about 2, 4, 8 ... s (full jitter draws each in [0, that]), at most 60 s.
BACKOFF_BASE_S = 2
BACKOFF_MAX_S = 60


class ProviderTask(DjangoTask):
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
