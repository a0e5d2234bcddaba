"""The Pools page in a real browser: an operator creates a pool (an HTMX swap), sees a refusal next to its
field, and opens the new pool's page with its chart."""

import pytest
from playwright.sync_api import expect

from autoscaling.models import Pool, PoolSample
from catalog.models import InstanceType, Zone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_operator_creates_a_pool_from_the_pools_page(seed, logged_in_page):
    page = logged_in_page
    page.locator("nav.nav").get_by_role("link", name="Pools").click()
    page.wait_for_url("**/pools/")
    # A marker on window survives HTMX swaps but not a page load: creating must be a swap.
    page.evaluate("window.sameDocument = true")

    mock_s = f"{InstanceType.objects.get(code='MOCK-GPU-S').pk}:{Zone.objects.get(code='mock-eu-1').pk}"
    form = page.locator("#pool-create-form")
    form.locator("#id_name").fill("echo")
    form.locator("#id_model").select_option("mock-echo")
    form.locator("#id_choices_0").select_option(mock_s)
    form.locator("#id_min_size").fill("3")
    form.locator("#id_max_size").fill("2")
    form.get_by_role("button", name="Create pool").click()

    expect(page.locator('[data-error-for="min_size"]')).to_contain_text("min_size 3 is above max_size 2")
    assert not Pool.objects.exists()

    page.locator("#pool-create-form #id_min_size").fill("1")
    page.locator("#pool-create-form").get_by_role("button", name="Create pool").click()

    expect(page.locator("#create-panel [role=status]")).to_contain_text("Pool echo created")
    row = page.locator("#pool-echo")
    expect(row).to_contain_text("mock-echo")
    expect(row).to_contain_text("MOCK-GPU-S · mock-eu-1")
    assert page.evaluate("window.sameDocument === true")
    pool = Pool.objects.get(name="echo")
    assert (pool.min_size, pool.max_size) == (1, 2)

    PoolSample.objects.create(pool=pool, at=pool.created_at, desired=1, in_flight=3, reason="scale up: load 3")
    row.get_by_role("link", name="echo").click()
    page.wait_for_url("**/pools/echo/")
    expect(page.locator("#pool-header h1")).to_have_text("Pool echo")
    # Chart.js drew the chart from the page's own script (no CDN): the canvas holds a chart.
    page.wait_for_function("() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=pool]'))")
