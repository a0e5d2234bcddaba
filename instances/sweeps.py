"""Beat sweeps: the safety net that finishes whatever a crash, a lost task or the provider left behind.

Each sweep claims its rows in batches (`select_for_update(skip_locked=True)` in a short transaction that
sets `claimed_until`), works on them with no lock held, and releases them. Several workers may run the
same sweep side by side: they never get the same instance. Provider calls never run inside a
transaction; a sweep lists each (provider, zone) once instead of asking about every server.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from catalog.models import Provider, Zone
from catalog.runtime_settings import get_setting
from instances import services
from instances.health import Verdict, serving_verdict
from instances.models import Instance, OrphanServer
from instances.status import ENDED, SERVING, STARTUP, ErrorCode, Status
from monitoring.services import Component, action_step, record_action
from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo

log = logging.getLogger(__name__)

# Small enough that workers running the same sweep share the work, large enough to keep claims cheap.
SWEEP_BATCH = 100
# Longer than a batch takes to work through; a sweep killed mid-batch frees its rows after this.
SWEEP_LEASE_S = 120
# A sweep claims no new batch after this long, so it ends before the next tick (every 10 s) is due.
SWEEP_BUDGET_S = 8
# A terminate task gets this long to run before the terminator steps in.
TERMINATOR_GRACE_S = 30
# An orphan whose terminate did not take is asked again after this long.
ORPHAN_RETRY_S = 300


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
            self._adapters[provider.pk] = services.adapter_for(provider)
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


def claimed_batches(queryset: QuerySet[Instance], *, batch: int = SWEEP_BATCH,
                    lease_s: float = SWEEP_LEASE_S) -> Iterator[list[Instance]]:
    """Claim the rows of `queryset` a batch at a time, yield each batch, and release it afterwards."""
    started = time.monotonic()
    cursor = None
    while time.monotonic() - started < SWEEP_BUDGET_S:
        now = timezone.now()
        until = now + timedelta(seconds=lease_s)
        with transaction.atomic():
            rows = queryset.filter(services.unclaimed(now)).order_by("pk")
            if cursor is not None:
                rows = rows.filter(pk__gt=cursor)
            ids = list(rows.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch])
            if not ids:
                return
            Instance.objects.filter(pk__in=ids).update(claimed_until=until)
        cursor = ids[-1]
        try:
            yield list(Instance.objects.select_related("provider", "zone", "instance_type", "model")
                       .filter(pk__in=ids).order_by("pk"))
        finally:
            services.release_claims(ids, until=until)


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
        lambda instance: services.apply_startup_verdict(
            instance, directory.server(instance), adapter=directory.adapter(instance.provider)
        ),
    )


def sweep_watchdog() -> int:
    """Ready/draining machines whose server the provider no longer knows are terminated (PROVIDER_DELETED)."""
    directory = ServerDirectory()

    def watch(instance: Instance) -> None:
        if serving_verdict(directory.server(instance)) is Verdict.GONE:
            services.handle_provider_deleted(instance, adapter=directory.adapter(instance.provider),
                                             allowed_from=SERVING)

    return _sweep(Instance.objects.filter(status__in=SERVING).exclude(provider_server_id=""),
                  "watchdog", watch)


def sweep_terminating() -> int:
    """Finish terminations: confirm deleted servers, ask again where the terminate did not take."""
    directory = ServerDirectory()
    cutoff = timezone.now() - timedelta(seconds=TERMINATOR_GRACE_S)
    return _sweep(
        Instance.objects.filter(status=Status.TERMINATING, status_changed_at__lte=cutoff), "terminator",
        lambda instance: services.retry_termination(
            instance, server=directory.server(instance), adapter=directory.adapter(instance.provider)
        ),
    )


def sweep_lost_provisions() -> int:
    """Re-queue provisions with no progress for provision_requeue_after_s; fail them past the cap."""
    cutoff = timezone.now() - timedelta(seconds=get_setting("provision_requeue_after_s"))
    max_requeues = get_setting("provision_max_requeues")
    stale = Instance.objects.filter(status=Status.PROVISIONING).filter(
        Q(progress_at__lte=cutoff) | Q(progress_at__isnull=True, created_at__lte=cutoff)
    )
    return _sweep(stale, "requeue", lambda instance: services.requeue_provision(instance, max_requeues=max_requeues))


# --- Orphans --------------------------------------------------------------------------------


def sweep_orphans() -> int:
    """Find tagged servers no live instance owns; terminate them once seen for orphan_grace_s.

    Returns how many orphans were asked to terminate.
    """
    zones = (Zone.objects.select_related("region__provider")
             .filter(active=True, region__provider__active=True, pk__in=Instance.objects.values("zone_id")))
    directory = ServerDirectory()
    grace = timedelta(seconds=get_setting("orphan_grace_s"))
    terminated = 0
    for zone in zones:
        provider = zone.region.provider
        try:
            adapter = directory.adapter(provider)
            adapter.check_available()
            servers = adapter.list_servers(zone=zone.code, tag=INVENTIV_TAG)
        except ProviderError as exc:
            # A cloud without credentials has no servers of ours to find: not worth a warning every tick.
            level = logging.DEBUG if exc.code == ErrorCode.MISSING_PROVIDER_CREDENTIALS else logging.WARNING
            log.log(level, "orphan sweep: cannot list %s %s: %s", provider.code, zone.code, exc)
            continue
        _record_orphans(provider, zone.code, servers, adapter)
        terminated += _terminate_due_orphans(provider, zone.code, adapter, grace=grace)
    return terminated


def _record_orphans(provider: Provider, zone: str, servers: list[ServerInfo], adapter: CloudProvider) -> None:
    tagged = {server.server_id: server for server in servers}
    instance_ids = {server.instance_id for server in servers if _is_uuid(server.instance_id)}
    owners = dict(
        Instance.objects.filter(pk__in=instance_ids).exclude(status__in=ENDED)
        .values_list("pk", "provider_server_id")
    )
    orphans = {
        server_id: server for server_id, server in tagged.items()
        if not _owned(server, owners)
    }
    # Rows for servers that left the listing, or that an instance owns after all, are done with; a server
    # Inventiv terminated may leave volumes behind.
    done = OrphanServer.objects.filter(provider=provider, zone=zone).exclude(server_id__in=list(orphans))
    for orphan in done.filter(terminate_requested_at__isnull=False).exclude(server_id__in=list(tagged)):
        try:
            adapter.delete_volumes(orphan.server_id, zone=zone)
        except ProviderError as exc:
            log.warning("volumes of orphan %s in %s not deleted: %s", orphan.server_id, zone, exc)
    done.delete()
    known = set(OrphanServer.objects.filter(provider=provider, zone=zone).values_list("server_id", flat=True))
    now = timezone.now()
    for server_id, server in orphans.items():
        if server_id in known:
            continue
        try:
            with transaction.atomic():
                OrphanServer.objects.create(provider=provider, zone=zone, server_id=server_id, server_name=server.name,
                                            instance_id=server.instance_id or "", first_seen_at=now)
                record_action("ORPHAN_DETECTED", component=Component.ORCHESTRATOR,
                              instance_id=server.instance_id if _is_uuid(server.instance_id) else None,
                              metadata={"provider": provider.code, "zone": zone, "server_id": server_id,
                                        "server_name": server.name, "state": server.state.value})
        except IntegrityError:
            pass  # another worker saw it first and logged it


def _owned(server: ServerInfo, owners: dict) -> bool:
    if not _is_uuid(server.instance_id):
        return False
    owner_server = owners.get(uuid.UUID(server.instance_id), None)
    # A live instance owns its own server, or one it is still creating (no id stored yet).
    return owner_server is not None and owner_server in ("", server.server_id)


def _terminate_due_orphans(provider: Provider, zone: str, adapter: CloudProvider, *, grace: timedelta) -> int:
    now = timezone.now()
    due = OrphanServer.objects.filter(provider=provider, zone=zone, first_seen_at__lte=now - grace).filter(
        Q(terminate_requested_at__isnull=True) | Q(terminate_requested_at__lte=now - timedelta(seconds=ORPHAN_RETRY_S))
    ).filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
    with transaction.atomic():
        orphans = list(due.select_for_update(skip_locked=True)[:SWEEP_BATCH])
        OrphanServer.objects.filter(pk__in=[orphan.pk for orphan in orphans]).update(
            claimed_until=now + timedelta(seconds=SWEEP_LEASE_S)
        )
    done = 0
    for orphan in orphans:
        try:
            with action_step("ORPHAN_TERMINATED", component=Component.ORCHESTRATOR,
                             instance_id=orphan.instance_id if _is_uuid(orphan.instance_id) else None,
                             metadata={"provider": provider.code, "zone": zone, "server_id": orphan.server_id,
                                       "first_seen_at": orphan.first_seen_at.isoformat()}):
                adapter.terminate_server(orphan.server_id, zone=zone)
        except ProviderError as exc:
            log.warning("orphan %s in %s not terminated: %s", orphan.server_id, zone, exc)
        else:
            orphan.terminate_requested_at = timezone.now()
            done += 1
        orphan.claimed_until = None
        orphan.save(update_fields=["terminate_requested_at", "claimed_until"])
    return done


def _is_uuid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
