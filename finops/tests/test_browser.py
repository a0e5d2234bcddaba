"""The Dashboard home and the FinOps page in Chromium: the charts exist and Chart.js drew them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from finops.services import accrue_costs
from finops.tests.factories import LARGE, billed_instance

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Chart.js keeps a registry of the charts it drew; one with datasets was drawn from the page's data.
DRAWN = """id => {
  const chart = Chart.getChart(document.getElementById(id));
  return chart !== undefined && chart.data.datasets.length > 0;
}"""


@pytest.fixture
def spending(seed):
    two_hours_ago = timezone.now() - timedelta(hours=2)
    billed_instance(since=two_hours_ago, pool_id="p1")
    billed_instance(since=two_hours_ago, type_code=LARGE)
    accrue_costs()


def test_the_dashboard_draws_the_spend_chart(logged_in_page, spending):
    page = logged_in_page
    page.goto("/")  # again: the login landed here before the spending existed
    page.wait_for_function("() => window.Chart !== undefined && Chart.getChart('home-spend-chart') !== undefined")

    assert page.locator("h1").inner_text() == "Dashboard"
    assert page.evaluate(DRAWN, "home-spend-chart")
    assert page.locator("[data-stat=burn-rate] .value").inner_text() == "€1.0000/h"


def test_the_finops_page_draws_spend_over_time_and_by_provider_model_and_pool(logged_in_page, spending):
    page = logged_in_page
    page.click("nav a:text('FinOps')")
    page.wait_for_url("**/finops/")
    page.wait_for_function("() => window.Chart !== undefined && Chart.getChart('spend-chart') !== undefined")

    for chart in ("spend-chart", "by-provider-chart", "by-model-chart", "by-pool-chart"):
        assert page.evaluate(DRAWN, chart), chart
    assert page.evaluate("Chart.getChart('by-pool-chart').data.labels") == ["(none)", "p1"]
    assert page.locator("#token-costs tbody tr").count() == 1
