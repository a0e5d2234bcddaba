"""Orphan servers: servers carrying Inventiv's tag that no live instance owns.

A sweep lists each (provider, zone) where instances ever ran, records the orphans it finds (ORPHAN_DETECTED)
and terminates those seen for orphan_grace_s (ORPHAN_TERMINATED): a create that is still being recorded
gets that long to claim its server. A record goes when the provider no longer lists its server.

A provider that throttles (an answer with Retry-After) is left alone until that time has passed: the sweep
skips its zones instead of adding to the load it complains about.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from catalog.models import Provider, Zone
from catalog.runtime_settings import get_setting
from instances.claims import SWEEP_BATCH, SWEEP_LEASE_S
from instances.models import Instance, OrphanServer
from instances.status import ENDED, ErrorCode
from instances.sweeps import ServerDirectory
from monitoring.services import Component, action_step, record_action
from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo, TransientProviderError

log = logging.getLogger(__name__)

# An orphan whose terminate did not take is asked again after this long.
ORPHAN_RETRY_S = 300
# Provider code -> until when the sweep leaves it alone (it asked to wait). Per process: each worker
# process learns it from the provider's first answer.
_throttled_until: dict[str, datetime] = {}


def _throttled(provider: Provider, now: datetime) -> bool:
    return _throttled_until.get(provider.code, now) > now


def _note_throttling(provider: Provider, exc: ProviderError, now: datetime) -> bool:
    """Remember how long `provider` asked to wait, when it did; True then."""
    retry_after = getattr(exc, "retry_after", None) if isinstance(exc, TransientProviderError) else None
    if retry_after is None:
        return False
    _throttled_until[provider.code] = now + timedelta(seconds=retry_after)
    log.warning("orphan sweep: %s throttles; leaving it alone for %ss", provider.code, retry_after)
    return True


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
        if _throttled(provider, timezone.now()):
            continue
        try:
            adapter = directory.adapter(provider)
            adapter.check_available()
            servers = adapter.list_servers(zone=zone.code, tag=INVENTIV_TAG)
        except ProviderError as exc:
            if _note_throttling(provider, exc, timezone.now()):
                continue
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
            if _note_throttling(provider, exc, timezone.now()):
                orphan.claimed_until = None
                orphan.save(update_fields=["claimed_until"])
                OrphanServer.objects.filter(pk__in=[o.pk for o in orphans], claimed_until__isnull=False).update(
                    claimed_until=None)
                break
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
