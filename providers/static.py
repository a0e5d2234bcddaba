"""The static provider: GPU machines the operator already runs, attached to Inventiv by hand.

Nothing is rented. Registering a host (README, "A GPU machine you run yourself") records the machine here
(`create_server` with the spec's `address`); it is running from then on, as far as Inventiv knows: the
operator powers it, installs vLLM and starts the worker agent. `terminate_server` detaches it: Inventiv
stops routing to it and forgets it, and the machine itself keeps running (nothing is destroyed). Sweeps
see an attached machine no live instance owns as an orphan, and detach it the same way.
"""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo, ServerSpec, ServerState, TypeOffer
from providers.models import StaticMachine


class StaticProvider(CloudProvider):
    code = "static"

    def create_server(self, spec: ServerSpec) -> ServerInfo:
        """Attach the machine at `spec.address` (once per instance: a retry finds the one attached)."""
        if not spec.address:
            raise ProviderError("a host you run yourself needs its address", details={"address": "missing"})
        attached = self._attached(instance_id=spec.instance_id).first()
        if attached is None:
            try:
                with transaction.atomic():
                    attached = StaticMachine.objects.create(
                        zone=spec.zone, name=spec.name, commercial_type=spec.commercial_type, address=spec.address,
                        tags=list(spec.tags), instance_id=spec.instance_id,
                    )
            except IntegrityError:  # another run attached it meanwhile
                attached = self._attached(instance_id=spec.instance_id).get()
        return self._info(attached)

    def start_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        """The operator powers the machine; Inventiv only reads where it is."""
        return self.get_server(server_id, zone=zone)

    def get_server(self, server_id: str, *, zone: str) -> ServerInfo | None:
        machine = self._attached(server_id=server_id, zone=zone).first()
        return None if machine is None else self._info(machine)

    def list_servers(self, *, zone: str, tag: str = INVENTIV_TAG) -> list[ServerInfo]:
        return [self._info(machine) for machine in self._attached(zone=zone) if tag in machine.tags]

    def terminate_server(self, server_id: str, *, zone: str) -> None:
        """Detach: Inventiv lets go of the machine, which keeps running. Detaching twice is harmless."""
        machine_id = _uuid_or_none(server_id)
        if machine_id is not None:
            StaticMachine.objects.filter(pk=machine_id, released_at__isnull=True).update(released_at=timezone.now())

    def delete_volumes(self, server_id: str, *, zone: str) -> None:
        """The disks are the operator's: nothing to delete."""

    def fetch_catalog(self, *, zones: list[str]) -> list[TypeOffer]:
        """Nothing is for sale: the types of hosts come from their registration."""
        return []

    def _attached(self, *, server_id: str | None = None, zone: str | None = None, instance_id: str | None = None):
        machines = StaticMachine.objects.filter(released_at__isnull=True)
        if server_id is not None:
            machine_id = _uuid_or_none(server_id)
            if machine_id is None:
                return machines.none()
            machines = machines.filter(pk=machine_id)
        if zone is not None:
            machines = machines.filter(zone=zone)
        if instance_id is not None:
            machines = machines.filter(instance_id=instance_id)
        return machines

    @staticmethod
    def _info(machine: StaticMachine) -> ServerInfo:
        return ServerInfo(server_id=str(machine.pk), zone=machine.zone, state=ServerState.RUNNING, name=machine.name,
                          tags=list(machine.tags), public_ip=machine.address, created_at=machine.created_at,
                          commercial_type=machine.commercial_type, metadata={"runtime": "static"})


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
