"""Contract: every launch plan of the seeded Scaleway catalog is a create request the (strict) fake Scaleway API
accepts, and the request the seed made before plans existed (a local root volume on an H100) is refused."""

import pytest

from catalog.models import InstanceType, LlmModel
from catalog.services import launch_plan
from providers.base import INVENTIV_TAG, ProviderError, ServerSpec, instance_tag, server_name
from providers.testing.fake_scaleway import fake_scaleway  # noqa: F401 - a fixture


def spec_for(instance_type: InstanceType, *, instance_id: str, volume: tuple[str, int]) -> ServerSpec:
    return ServerSpec(
        instance_id=instance_id, zone=instance_type.zones.order_by("code").first().code,
        commercial_type=instance_type.code, name=server_name(instance_id),
        tags=[INVENTIV_TAG, instance_tag(instance_id)], allocation_params=dict(instance_type.allocation_params),
        root_volume_type=volume[0], root_volume_gb=volume[1],
    )


def test_scaleway_accepts_every_seeded_plan(seed, fake_scaleway):
    provider = fake_scaleway.provider()
    created = 0
    for instance_type in InstanceType.objects.select_related("provider").filter(provider__code="scaleway"):
        for model in LlmModel.objects.all():
            plan = launch_plan(model, instance_type)
            if not plan.fits:
                continue
            volume = (plan.root_volume.type, plan.root_volume.size_gb)
            spec = spec_for(instance_type, instance_id=f"{instance_type.code}-{model.pk}", volume=volume)
            provider.create_server(spec)
            created += 1

    assert created == len(fake_scaleway.servers) > 100
    sizes = {volume["size"] for volume in fake_scaleway.block_volumes.values()}
    assert min(sizes) >= 5 * 10**9 and max(sizes) <= 10_000 * 10**9


def test_the_local_root_volume_the_seed_asked_for_on_an_h100_is_refused(seed, fake_scaleway):
    h100 = InstanceType.objects.get(code="H100-1-80G")

    with pytest.raises(ProviderError) as refused:
        fake_scaleway.provider().create_server(spec_for(h100, instance_id="old-seed", volume=("l_ssd", 125)))

    assert refused.value.permanent and "local volume of H100-1-80G" in refused.value.message
    assert fake_scaleway.servers == {}
