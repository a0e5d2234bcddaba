"""Beat sweeps: the safety net that finishes whatever a crash, a lost task or the provider left behind.

Startup health and timeouts, the watchdog of serving machines, terminator retries and lost provisions.
Each sweep claims its rows in batches (claims.py) and works on them with no lock held: several workers may
run the same sweep side by side and never get the same instance. Provider calls never run inside a
transaction; a sweep lists each (provider, zone) once instead of asking about every server. Orphan
servers, drains and lost heartbeats have sweeps of their own (orphans.py, draining.py, lost_workers.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import Provider
from catalog.runtime_settings import get_setting
from instances.adapters import adapter_for
from instances.claims import claimed_batches
from instances.health import Verdict, serving_verdict
from instances.models import Instance
from instances.provisioning import requeue_provision
from instances.readiness import apply_startup_verdict
from instances.status import BEING_TERMINATED, PROVISIONABLE, SERVING, STARTUP
from instances.termination import handle_provider_deleted, retry_termination
from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo

log = logging.getLogger(__name__)

# A terminate task gets this long to run before the terminator steps in.
TERMINATOR_GRACE_S = 30


class ServerDirectory:
    """The servers of each (provider, zone), listed once per sweep run.

    A server absent from a listing taken earlier in the run is asked about on its own before anything is
    concluded: it may have been created after the listing.
    """

    def __init__(self):
        self._adapters: dict[int, CloudProvider] = {}
        self._listings: dict[tuple[int, str], dict[str, ServerInfo] | ProviderError] = {}

    def adapter(self, provider: Provider) -> CloudProvider:
        if provider.pk not in self._adapters:
            self._adapters[provider.pk] = adapter_for(provider)
        return self._adapters[provider.pk]

    def server(self, instance: Instance) -> ServerInfo | None:
        key = (instance.provider_id, instance.zone.code)
        if key not in self._listings:
            try:
                servers = self.adapter(instance.provider).list_servers(zone=instance.zone.code, tag=INVENTIV_TAG)
                self._listings[key] = {server.server_id: server for server in servers}
            except ProviderError as exc:
                self._listings[key] = exc  # one failed listing per run, not one per instance
        listing = self._listings[key]
        if isinstance(listing, ProviderError):
            raise listing
        found = listing.get(instance.provider_server_id)
        if found is not None:
            return found
        return self.adapter(instance.provider).get_server(instance.provider_server_id, zone=instance.zone.code)


def _sweep(queryset: QuerySet[Instance], what: str, step: Callable[[Instance], object]) -> int:
    """Run `step` on every claimed instance of `queryset`; return how many were worked on.

    An error on one instance is logged and does not stop the others.
    """
    count = 0
    for batch in claimed_batches(queryset):
        for instance in batch:
            try:
                step(instance)
            except ProviderError as exc:
                log.warning("%s of %s: provider error: %s", what, instance.pk, exc)
            except Exception:  # one broken row must not starve every other instance of its sweep
                log.exception("%s of %s failed", what, instance.pk)
            count += 1
    return count


def sweep_startup_health() -> int:
    """Poll booting/installing/starting machines: ready, still waiting, timed out, or gone."""
    directory = ServerDirectory()
    return _sweep(
        Instance.objects.filter(status__in=STARTUP).exclude(provider_server_id=""), "health",
        lambda instance: apply_startup_verdict(
            instance, directory.server(instance), adapter=directory.adapter(instance.provider)
        ),
    )


def sweep_watchdog() -> int:
    """Ready/draining machines whose server the provider no longer knows are terminated (PROVIDER_DELETED)."""
    directory = ServerDirectory()

    def watch(instance: Instance) -> None:
        if serving_verdict(directory.server(instance)) is Verdict.GONE:
            handle_provider_deleted(instance, adapter=directory.adapter(instance.provider), allowed_from=SERVING)

    return _sweep(Instance.objects.filter(status__in=SERVING).exclude(provider_server_id=""),
                  "watchdog", watch)


def sweep_terminating() -> int:
    """Finish terminations: confirm deleted servers, ask again where the terminate did not take."""
    directory = ServerDirectory()
    cutoff = timezone.now() - timedelta(seconds=TERMINATOR_GRACE_S)
    return _sweep(
        Instance.objects.filter(status__in=BEING_TERMINATED, status_changed_at__lte=cutoff), "terminator",
        lambda instance: retry_termination(
            instance, server=directory.server(instance), adapter=directory.adapter(instance.provider)
        ),
    )


def sweep_lost_provisions() -> int:
    """Re-queue provisions with no progress for provision_requeue_after_s; fail them past the cap."""
    cutoff = timezone.now() - timedelta(seconds=get_setting("provision_requeue_after_s"))
    max_requeues = get_setting("provision_max_requeues")
    stale = Instance.objects.filter(status__in=PROVISIONABLE).filter(
        Q(progress_at__lte=cutoff) | Q(progress_at__isnull=True, created_at__lte=cutoff)
    )
    return _sweep(stale, "requeue", lambda instance: requeue_provision(instance, max_requeues=max_requeues))
