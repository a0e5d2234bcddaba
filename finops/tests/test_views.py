"""The Dashboard home and the FinOps page, rendered on the server."""

from datetime import timedelta
from decimal import Decimal

import pytest

from finops.services import accrue_costs, refresh_budgets
from finops.tests.factories import START, api_key, billed_instance, budget, minutes, trace
from instances.status import Status
from monitoring.services import record_action

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, viewer_user):
    client.force_login(viewer_user)
    return client


@pytest.fixture
def busy(seed, clock):
    eight = START.replace(second=0) - timedelta(hours=2)
    billed_instance(since=eight, pool_id="p1")
    billed_instance(since=eight, status=Status.BOOTING)
    key = api_key("alice")
    for i in range(20):  # TTFT 10..200 ms over the last hour: p95 (nearest rank, 19th of 20) = 190 ms
        trace(key=key, at=START - minutes(50) + minutes(i), ttft_ms=10.0 * (i + 1), prompt=100, completion=50)
    for i in range(3):  # the last minute: 3 requests, 3 x 30 tokens
        trace(key=key, at=START - timedelta(seconds=10 * (i + 1)), prompt=20, completion=10)
    for i in range(12):
        record_action("HEALTH_CHECK", component="orchestrator", metadata={"n": i})
    budget(amount="0.50", pool_id="p1")
    accrue_costs()
    refresh_budgets()
    return key


def test_the_home_page_needs_a_signed_in_user(client, db):
    assert "/login/" in client.get("/")["Location"]


def test_the_home_page_shows_instances_money_traffic_actions_and_budget_alerts(signed_in, busy):
    page = signed_in.get("/")

    html = page.content.decode()
    assert page.context["instances"]["by_status"]["ready"] == 1
    assert page.context["costs"]["burn_rate_per_hour"] == Decimal("0.5")
    assert page.context["costs"]["today"] == Decimal("1")  # 2 h of 2 x 0.25 EUR/h
    assert page.context["traffic"] == {"requests_per_second": 0.05, "tokens_per_second": 1.5}
    assert page.context["ttft_p95"] == {"mock-echo": 190.0}
    assert len(page.context["actions"]) == 10
    assert [b.pool_id for b in page.context["budgets"]] == ["p1"]  # 0.50 spent of 0.50
    assert 'id="home-spend-chart"' in html and 'id="home-spend"' in html
    assert "€0.5000/h" in html and "190 ms" in html and "Budget alerts" in html and "BUDGET_THRESHOLD" in html


def test_the_finops_page_has_its_charts_data_and_the_cost_per_million_tokens(signed_in, busy):
    page = signed_in.get("/finops/", {"window": "6h"})

    html = page.content.decode()
    assert page.context["window"] == "6h"
    assert page.context["series"]["bucket"] == "minute"
    assert [row["key"] for row in page.context["breakdowns"]["pool"]] == ["(none)", "p1"]
    (echo,) = page.context["token_costs"]["models"]
    # 1 EUR of GPU time (2 machines x 2 h x 0.25) for 20 x 150 + 3 x 30 = 3,090 tokens.
    assert (echo["cost"], echo["tokens"], echo["cost_per_million"]) == ("1.000000", 3090, "323.624595")
    for chart in ("spend-chart", "by-provider-chart", "by-model-chart", "by-pool-chart"):
        assert f'id="{chart}"' in html
    assert 'href="/finops/"' in html  # the nav link


def test_an_unknown_window_falls_back_to_a_day(signed_in, db):
    page = signed_in.get("/finops/", {"window": "forever"})

    assert page.status_code == 200 and page.context["window"] == "24h"
    assert "No spend in this window." in page.content.decode()
