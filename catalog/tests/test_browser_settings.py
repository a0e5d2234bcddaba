"""The Settings page in a real browser: HTMX swaps, in-place edits and what the database keeps."""

import pytest
from playwright.sync_api import expect

from catalog.models import InstanceType, RuntimeSetting, Zone

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_tab(page, label: str, path: str):
    page.locator("nav.tabs").get_by_role("link", name=label, exact=True).click()
    page.wait_for_url(f"**{path}")
    expect(page.locator("nav.tabs a.active")).to_have_text(label)


def test_it_deactivates_a_zone_from_the_zones_tab_and_keeps_it_after_a_reload(seed, logged_in_page):
    page = logged_in_page
    page.locator("nav.nav").get_by_role("link", name="Settings").click()
    page.wait_for_url("**/settings/")
    # A marker on window survives HTMX swaps but not a page load: the tab switch must be a swap.
    page.evaluate("window.sameDocument = true")
    open_tab(page, "Zones", "/settings/zones/")
    assert page.evaluate("window.sameDocument === true")

    row = page.locator('tr[data-code="fr-par-1"]')
    expect(row.locator(".badge")).to_have_text("active")
    row.get_by_role("button", name="Deactivate").click()
    expect(row.locator(".badge")).to_have_text("inactive")
    expect(row.get_by_role("button", name="Activate")).to_be_visible()

    page.reload()
    expect(page.locator('tr[data-code="fr-par-1"] .badge')).to_have_text("inactive")
    expect(page.locator('tr[data-code="fr-par-2"] .badge')).to_have_text("active")
    assert Zone.objects.get(code="fr-par-1").active is False


def test_it_edits_the_zones_an_instance_type_is_offered_in_with_checkboxes(seed, logged_in_page):
    page = logged_in_page
    page.goto("/settings/instance-types/")
    row = page.locator('tr[data-code="L4-1-24G"]')
    row.get_by_role("link", name="Zones").click()

    # Only the provider's own zones are offered.
    expect(row.get_by_role("checkbox")).to_have_count(Zone.objects.filter(region__provider__code="scaleway").count())
    expect(row.get_by_label("pl-waw-2")).to_be_checked()
    row.get_by_label("fr-par-1").check()
    row.get_by_label("pl-waw-2").uncheck()
    row.get_by_role("button", name="Save zones").click()

    expect(row.locator("td.zones")).to_have_text("fr-par-1fr-par-2")
    codes = InstanceType.objects.get(code="L4-1-24G").zones.values_list("code", flat=True)
    assert sorted(codes) == ["fr-par-1", "fr-par-2"]


def test_it_shows_why_a_runtime_setting_value_is_refused_and_saves_a_good_one(seed, logged_in_page):
    page = logged_in_page
    page.goto("/settings/runtime/")
    page.get_by_role("searchbox").fill("heartbeat_int")
    expect(page.locator("#rows tr")).to_have_count(1)
    assert "q=heartbeat_int" in page.url

    row = page.locator('tr[data-code="heartbeat_interval_s"]')
    row.get_by_role("link", name="Edit").click()
    row.get_by_label("Value").fill("abc")
    row.get_by_role("button", name="Save").click()
    expect(row.locator(".error")).to_have_text("Value: 'abc' is not a valid int")
    assert RuntimeSetting.objects.get(key="heartbeat_interval_s").value == "5"

    row.get_by_label("Value").fill("1000")
    row.get_by_label("Value").press("Enter")
    expect(row.locator(".error")).to_have_text("Value: 1000 is above the maximum 300")

    row.get_by_label("Value").fill("7")
    row.get_by_role("button", name="Save").click()
    expect(row.locator("strong")).to_have_text("7")
    expect(row.get_by_role("link", name="Edit")).to_be_visible()
    assert RuntimeSetting.objects.get(key="heartbeat_interval_s").value == "7"
