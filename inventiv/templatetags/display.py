"""Filters every page uses to show a value: short ids, heartbeat-style ages, fractions as percentages.

Selectors return data; these turn it into what a person reads (`{% load display %}`). App-specific
presentation lives in each app's own `templatetags` module; `django.contrib.humanize` covers the rest
(thousands separators, "4 minutes ago").
"""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()

# How many leading characters of a UUID the tables show (enough to tell a fleet's machines apart).
SHORT_ID_LENGTH = 8
# Ages below this many seconds read in seconds, below this many minutes in minutes, then in hours.
SECONDS_UP_TO = 90
MINUTES_UP_TO = 90
NO_VALUE = "—"


@register.filter
def short_id(value) -> str:
    """The first SHORT_ID_LENGTH characters of an id (a UUID or its text); "" for None."""
    return "" if value is None else str(value)[:SHORT_ID_LENGTH]


@register.filter
def ago(seconds: float | None) -> str:
    """A compact age for dense tables: "3 s ago", "4 min ago", "2 h ago"; "—" when there is none."""
    if not _is_number(seconds):
        return NO_VALUE
    seconds = max(float(seconds), 0.0)
    if seconds < SECONDS_UP_TO:
        return f"{seconds:.0f} s ago"
    if seconds < MINUTES_UP_TO * 60:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.0f} h ago"


@register.filter
def percent(fraction) -> float | None:
    """A fraction (0.41) as a percentage (41.0), for `floatformat`; None (or anything not a number) stays None."""
    if not _is_number(fraction):
        return None
    return fraction * 100


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
