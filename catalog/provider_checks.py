"""Whether a provider can be used now: its adapter's own check (credentials, configuration), read by the
Settings page (which marks an unconfigured provider) and the instance create form (which refuses it before
anything is requested; README, "Providers")."""

from __future__ import annotations

from catalog.models import Provider
from providers.base import ProviderError
from providers.registry import get_provider


def configuration_problem(provider: Provider) -> str:
    """Why `provider`'s adapter cannot be used now ("" when it can): the adapter's `check_available`."""
    try:
        get_provider(provider.adapter).check_available()
    except ProviderError as exc:
        return exc.message
    except ImportError as exc:
        return f"the {provider.adapter} adapter cannot be loaded: {exc}"
    return ""


def unconfigured_providers(providers) -> dict[int, str]:
    """{provider id: problem} for those of `providers` that cannot be used now (each adapter checked once)."""
    by_adapter: dict[str, str] = {}
    problems = {}
    for provider in providers:
        if provider.adapter not in by_adapter:
            by_adapter[provider.adapter] = configuration_problem(provider)
        if by_adapter[provider.adapter]:
            problems[provider.pk] = by_adapter[provider.adapter]
    return problems
