"""Burn rate, its forecasts, and actual spend over windows, today and this month."""

from datetime import timedelta
from decimal import Decimal

import pytest

from finops import selectors
from finops.services import accrue_costs
from finops.tests.factories import LARGE, START, billed_instance, minutes
from instances.models import Instance

pytestmark = pytest.mark.django_db


def test_the_burn_rate_sums_the_hourly_price_of_billable_instances_only(seed, clock):
    billed_instance(since=START)  # 0.25
    billed_instance(since=START, type_code=LARGE)  # 0.75
    billed_instance(since=START - minutes(90), until=START - minutes(30))  # gone: no longer paid for
    not_created = billed_instance(since=START)
    Instance.objects.filter(pk=not_created.pk).update(provider_created_at=None)

    assert selectors.burn_rate() == Decimal("1.0000")


def test_forecasts_multiply_the_burn_rate_by_each_horizon(seed, clock):
    billed_instance(since=START)
    billed_instance(since=START, type_code=LARGE)
    billed_instance(since=START, type_code=LARGE)

    summary = selectors.spend_summary()

    # 0.25 + 0.75 + 0.75 = 1.75 EUR/h; 24 h = 42; 720 h = 1,260; 8,760 h = 15,330.
    assert summary["burn_rate_per_hour"] == Decimal("1.75")
    assert summary["forecasts"] == {
        "next_hour": Decimal("1.75"), "next_day": Decimal("42"), "next_30_days": Decimal("1260"),
        "next_365_days": Decimal("15330"),
    }


def test_spend_windows_today_and_this_month_count_only_their_minutes(seed, clock):
    # Now is 2026-05-14 10:00:17, so minutes up to 10:00 are finished. A small machine (0.25 EUR/h) ran from
    # 2026-05-12 10:00 to 2026-05-14 09:00 (47 h); a large one (0.75 EUR/h) runs since 08:00 today (2 h).
    ten = START.replace(second=0)
    billed_instance(since=ten - timedelta(days=2), until=ten - minutes(60))
    billed_instance(since=ten - minutes(120), type_code=LARGE)

    while accrue_costs().end < ten:  # two days of back-fill: a day per run
        pass
    summary = selectors.spend_summary()

    assert summary["spend"] == {
        "last_hour": Decimal("0.75"),  # 09:00-10:00: the large one only
        "last_day": Decimal("7.25"),  # small 23 h (5.75) + large 2 h (1.50)
        "last_7_days": Decimal("13.25"),  # small 47 h (11.75) + large 2 h
        "last_30_days": Decimal("13.25"),
    }
    assert summary["today"] == Decimal("3.75")  # small 00:00-09:00 (2.25) + large 2 h
    assert summary["this_month"] == Decimal("13.25")


def test_spend_between_two_moments_sums_the_minutes_that_start_between_them(seed, clock):
    eleven = START.replace(second=0) + minutes(60)
    billed_instance(since=START, until=START + timedelta(hours=3))
    clock.advance(4 * 3600)
    accrue_costs()

    assert selectors.spend(start=eleven, end=eleven + minutes(60)) == Decimal("0.25")
    assert selectors.spend(start=eleven + minutes(0.5), end=eleven + minutes(30)) == Decimal("0.125")
