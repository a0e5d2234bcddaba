"""How the Pools pages show a pool: whether it is still settling, and its size-and-load chart.

`{% load pool_display %}`. Reads the rows `autoscaling.selectors.pool_rows` annotates.
"""

from __future__ import annotations

from django import template

from autoscaling.models import Pool, PoolSample

register = template.Library()


@register.filter
def converging(pool: Pool) -> bool:
    """Members still arriving or leaving, or an enabled pool short of (or above) its desired size: its row and
    live panel keep refreshing themselves until it settles."""
    short = pool.enabled and pool.size != pool.desired_size
    return bool(pool.starting_count or pool.draining_count or short)


@register.filter
def pool_chart(samples: list[PoolSample]) -> dict:
    """The Pools chart's series (static/js/charts.js `pool` chart): size (ready + starting), desired, draining,
    and load (in flight + waiting + held) at each sample."""
    return {
        "times": [sample.at.isoformat() for sample in samples],
        "size": [sample.size for sample in samples],
        "desired": [sample.desired for sample in samples],
        "draining": [sample.draining for sample in samples],
        "load": [sample.in_flight + sample.waiting + sample.held for sample in samples],
    }
