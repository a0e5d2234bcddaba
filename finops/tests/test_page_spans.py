"""The FinOps page's spans: minute bars for 6 h, hourly for 24 h, dated daily bars for 7 and 30 days; pools
by name; the bars, the breakdowns and the window's total agree."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from autoscaling.models import Pool
from catalog.models import LlmModel
from finops import selectors
from finops.services import accrue_costs
from finops.tests.factories import START, billed_instance

pytestmark = pytest.mark.django_db
BACKFILL_RUNS = 10


@pytest.mark.parametrize(("window", "bucket", "bars"), [
    (timedelta(hours=6), "minute", 360), (timedelta(hours=24), "hour", 24),
    (timedelta(days=7), "day", 7), (timedelta(days=30), "day", 30),
])
def test_each_window_has_its_bar_and_whole_bars(window, bucket, bars):
    assert selectors.page_bucket(window) == bucket
    start = selectors.page_start(window, now=START)
    series = selectors.spend_series(start=start, end=START, bucket=bucket, group_by=None)
    assert len(series["buckets"]) == bars and series["buckets"][0] == start
    if bucket == "day":
        assert all(at.hour == at.minute == 0 and at.tzinfo == UTC for at in series["buckets"])
        assert series["buckets"][-1] == datetime(2026, 5, 14, tzinfo=UTC)


@pytest.fixture
def spend(seed, clock):
    pool = Pool.objects.create(name="echo-pool", model=LlmModel.objects.get(code="mock-echo"), min_size=0, max_size=2)
    billed_instance(since=START - timedelta(days=3, hours=5), pool_id=pool.pk)
    billed_instance(since=START - timedelta(hours=30), until=START - timedelta(hours=2))
    for _ in range(BACKFILL_RUNS):  # each run back-fills at most a day or so (finops.services)
        if accrue_costs().end >= START.replace(second=0):
            break
    return pool


def test_a_daily_series_adds_up_to_the_spend_of_its_window(spend):
    start = selectors.page_start(timedelta(days=7), now=START)
    series = selectors.spend_series(start=start, end=START, bucket="day", group_by="model")
    bars = sum(Decimal(amount) for line in series["series"] for amount in line["amounts"])
    assert bars == selectors.spend(start=start, end=START) > 0
    daily = [sum(Decimal(line["amounts"][i]) for line in series["series"]) for i in range(len(series["buckets"]))]
    assert daily[:3] == [0, 0, 0] and all(amount > 0 for amount in daily[3:])


@pytest.mark.parametrize("window", ["24h", "7d", "30d"])
def test_the_page_names_pools_and_its_numbers_agree(client, viewer_user, spend, window):
    client.force_login(viewer_user)
    page = client.get("/finops/", {"window": window})

    context = page.context
    total = context["total"]
    bars = sum(Decimal(a) for line in context["series"]["series"] for a in line["amounts"])
    assert bars == total > 0
    for group, rows in context["breakdowns"].items():
        assert sum(Decimal(row["amount"]) for row in rows) == total, group
    assert {row["key"] for row in context["breakdowns"]["pool"]} == {"echo-pool", "(none)"}
    assert context["series"]["bucket"] == ("hour" if window == "24h" else "day")
    assert f"€{total:.4f}" in page.content.decode()
