"""How the Settings pages show a catalog row beyond its fields: `{% load catalog_display %}`."""

from __future__ import annotations

from django import template

from catalog.models import Provider
from catalog.provider_checks import configuration_problem

register = template.Library()


@register.filter
def provider_problem(provider: Provider) -> str:
    """Why the provider cannot be used now (missing credentials...), or "" when it can."""
    return configuration_problem(provider)
