"""Which adapter serves which provider. Adapters are imported lazily so a missing SDK or credentials
for one cloud never stops another from working."""

from importlib import import_module

from providers.base import CloudProvider, ProviderError

ADAPTERS = {
    "mock": "providers.mock.MockProvider",
    "scaleway": "providers.scaleway.ScalewayProvider",
    "static": "providers.static.StaticProvider",
}


def get_provider(adapter: str, **options) -> CloudProvider:
    """An adapter instance for `adapter` (Provider.adapter), configured with `options`."""
    try:
        module_name, class_name = ADAPTERS[adapter].rsplit(".", 1)
    except KeyError:
        raise ProviderError(f"no adapter named {adapter!r}", code="INVALID_PROVIDER") from None
    return getattr(import_module(module_name), class_name)(**options)
