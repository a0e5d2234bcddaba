"""Read queries over the catalog used by pages and APIs."""

from catalog.models import InstanceType, LlmModel, Provider, Region, Zone


def catalog_summary() -> dict[str, int]:
    return {
        "providers": Provider.objects.filter(active=True).count(),
        "regions": Region.objects.filter(active=True).count(),
        "zones": Zone.objects.filter(active=True).count(),
        "instance_types": InstanceType.objects.filter(active=True).count(),
        "models": LlmModel.objects.filter(active=True).count(),
    }
