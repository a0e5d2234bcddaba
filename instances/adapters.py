"""What instances hand the cloud adapters: the adapter of a provider, and the spec of a machine to create.

Adapters take plain data (providers/base.py); this is where an Instance becomes that data: the server's
name and tags (so a retry or a sweep finds it again), its type and zone, and what the machine needs at
start (its credentials and model, as cloud-init user data or the Mock runtime's environment), all as the
instance's launch plan says.
"""

from __future__ import annotations

import shlex

from django.conf import settings

from catalog.launch_plan import LaunchPlan
from catalog.machine_secrets import MissingMachineSecret, machine_secret_values
from catalog.models import Provider
from catalog.runtime_settings import get_setting
from catalog.services import launch_plan
from instances.credentials import ENV_ENGINE_API_KEY, ENV_WORKER_TOKEN, MintedCredentials
from instances.models import Instance
from instances.status import ErrorCode
from providers.base import INVENTIV_TAG, CloudProvider, ProviderError, ServerInfo, ServerSpec, instance_tag, server_name
from providers.cloudinit import render_user_data
from providers.registry import get_provider

# Where vLLM and the worker agent listen on a cloud machine (the adapters open these ports).
ENGINE_PORT = 8000
AGENT_PORT = 8081


def adapter_for(provider: Provider) -> CloudProvider:
    """The provider's adapter, configured from runtime settings (Mock delays) and the environment."""
    options = {}
    if provider.is_mock:
        options = {"boot_delay_s": get_setting("mock_boot_delay_s"),
                   "deletion_delay_s": get_setting("mock_deletion_delay_s"),
                   "runtime": settings.INVENTIV_MOCK_RUNTIME}
    try:
        return get_provider(provider.adapter, **options)
    except ImportError as exc:
        raise ProviderError(f"the {provider.adapter} adapter cannot be loaded: {exc}") from None


def server_spec(instance: Instance, credentials: MintedCredentials, *, may_exist: bool = True) -> ServerSpec:
    """The server to create for `instance`, carrying `credentials` to the machine, as its launch plan says.

    The plan (catalog/launch_plan.py) decides the root volume, the engine image and arguments, and the
    secrets the machine gets; nothing else does. Raises ProviderError (INCOMPATIBLE_MODEL_INSTANCE,
    MISSING_MACHINE_SECRET) when the machine cannot be planned or a secret it needs is set nowhere.
    """
    if instance.provider.is_static:
        return _static_spec(instance)
    plan = launch_plan(instance.model, instance.instance_type, provider=instance.provider)
    if not plan.fits:
        raise ProviderError(f"no launch plan for {instance.model.code} on {instance.instance_type.code}: "
                            f"{plan.reason}", code=ErrorCode.INCOMPATIBLE_MODEL_INSTANCE)
    try:
        secrets = machine_secret_values(plan.secret_env)
    except MissingMachineSecret as exc:
        raise ProviderError(f"{instance.model.code} is gated: {exc}", code=ErrorCode.MISSING_MACHINE_SECRET) from None
    instance_id = str(instance.pk)
    env = {
        "INVENTIV_INSTANCE_ID": instance_id,
        "INVENTIV_CONTROL_PLANE_URL": settings.PUBLIC_URL,
        "INVENTIV_MODEL": instance.model.code,
        "INVENTIV_HEARTBEAT_INTERVAL_S": str(get_setting("heartbeat_interval_s")),
        # The Mock runtime's agent hands these to the simulator (a cloud machine's come in its user data).
        "INVENTIV_ENGINE_ARGS": shlex.join(plan.engine_flags),
        ENV_WORKER_TOKEN: credentials.worker_token,
        ENV_ENGINE_API_KEY: credentials.engine_api_key,
    }
    return ServerSpec(
        instance_id=instance_id, zone=instance.zone.code, commercial_type=instance.instance_type.code,
        name=server_name(instance_id), tags=[INVENTIV_TAG, instance_tag(instance_id)],
        user_data=_user_data(instance, env, plan, secrets),
        allocation_params=dict(instance.instance_type.allocation_params),
        root_volume_type=plan.root_volume.type, root_volume_gb=plan.root_volume.size_gb,
        runtime_env=env, may_exist=may_exist,
    )


def _static_spec(instance: Instance) -> ServerSpec:
    """A host the operator runs: attached at the address it was registered with. It gets nothing at start
    (the operator starts vLLM and the agent, which joins with its join token: instances/joining.py)."""
    instance_id = str(instance.pk)
    return ServerSpec(
        instance_id=instance_id, zone=instance.zone.code, commercial_type=instance.instance_type.code,
        name=server_name(instance_id), tags=[INVENTIV_TAG, instance_tag(instance_id)],
        address=instance.public_ip or "",
    )


def _user_data(instance: Instance, env: dict, plan: LaunchPlan, secrets: dict[str, str]) -> str:
    """Cloud-init that installs vLLM and the worker agent. The Mock hands `runtime_env` to its runtime instead."""
    if instance.provider.is_mock:
        return ""
    try:
        return render_user_data(
            instance_id=env["INVENTIV_INSTANCE_ID"], control_plane_url=env["INVENTIV_CONTROL_PLANE_URL"],
            worker_token=env[ENV_WORKER_TOKEN], engine_api_key=env[ENV_ENGINE_API_KEY], model=instance.model.code,
            served_model_name=instance.model.code, vllm_image=plan.image, agent_port=AGENT_PORT,
            engine_port=ENGINE_PORT, engine_args=plan.engine_flags, extra_env=secrets,
            ssh_public_key=settings.SSH_PUBLIC_KEY,
        )
    except ValueError as exc:
        raise ProviderError(f"the machine's cloud-init cannot be written: {exc}") from None


def address_fields(server: ServerInfo) -> dict:
    """Where the router reaches the machine, as the provider reports it: the instance fields to store."""
    fields = {"public_ip": server.public_ip}
    for port in ("agent_port", "engine_port"):
        if server.metadata.get(port):
            fields[port] = int(server.metadata[port])
    return fields
