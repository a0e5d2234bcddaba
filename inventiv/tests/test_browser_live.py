"""Acceptance (README, "Using it"): Dashboard, Instances and Monitoring left open in Chromium follow instances
created and terminated through the API (Mock cloud), without a reload, within LIVE_WAIT_MS."""

import pytest
from playwright.sync_api import expect

from rest_framework.test import APIClient

from conftest import api_token
from instances.models import Instance
from instances.status import Status
from instances.tests.factories import MOCK_REQUEST, mock_cloud  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# What the issue asks: the pages follow within 15 s (the default refresh is every 5 s).
LIVE_WAIT_MS = 15_000
# The hidden-tab and pause checks wait this many refresh periods for a request that must not come.
QUIET_PERIODS = 3


@pytest.fixture
def open_pages(browser, live_server, logged_in_page):
    """Dashboard, Instances and Monitoring, each in a window of its own (a tab in the background is hidden,
    and a hidden page does not refresh), signed in as the admin."""
    state = logged_in_page.context.storage_state()
    contexts, pages, errors = [], {}, []
    for name, url in (("dashboard", "/"), ("instances", "/instances/"), ("monitoring", "/monitoring/")):
        context = logged_in_page.context.browser.new_context(base_url=live_server.url, storage_state=state)
        context.set_default_timeout(LIVE_WAIT_MS)
        page = context.new_page()
        page.on("console", lambda message, name=name: errors.append((name, message.text))
                if message.type == "error" else None)
        page.on("pageerror", lambda error, name=name: errors.append((name, str(error))))
        page.goto(url)
        page.evaluate("window.sameDocument = true")
        contexts.append(context)
        pages[name] = page
    yield pages, errors
    for context in contexts:
        context.close()


def wait_until(page, condition, message: str, *, timeout_ms: int = LIVE_WAIT_MS) -> None:
    """Let the page run (its requests are recorded meanwhile) until `condition()` holds, at most timeout_ms."""
    waited = 0
    while not condition():
        assert waited < timeout_ms, message
        page.wait_for_timeout(100)
        waited += 100


def staff_api(admin_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(admin_user)}")
    return client


def test_open_pages_follow_instances_created_and_terminated_through_the_api(mock_cloud, admin_user, open_pages):
    pages, errors = open_pages
    api = staff_api(admin_user)
    dashboard, instances, monitoring = pages["dashboard"], pages["instances"], pages["monitoring"]
    expect(dashboard.locator("[data-stat=active] .value")).to_have_text("0")

    for _ in range(2):
        assert api.post("/api/instances/", MOCK_REQUEST, format="json").status_code == 202
    first, second = Instance.objects.order_by("created_at")
    assert {first.status, second.status} == {Status.READY}

    expect(dashboard.locator("[data-stat=active] .value")).to_have_text("2")
    expect(instances.locator("[data-count=active]")).to_have_text("2 active")
    for instance in (first, second):
        expect(instances.locator(f"#instance-{instance.pk}")).to_have_attribute("data-status", Status.READY)
        expect(monitoring.locator(f'#log a[href="/instances/{instance.pk}/"]').first).to_be_visible()

    assert api.post(f"/api/instances/{first.pk}/terminate/").status_code in (200, 202)
    assert Instance.objects.get(pk=first.pk).status == Status.TERMINATED

    expect(dashboard.locator("[data-stat=active] .value")).to_have_text("1")
    expect(instances.locator("[data-count=active]")).to_have_text("1 active")
    expect(instances.locator(f"#instance-{first.pk}")).to_have_attribute("data-status", Status.TERMINATED)
    expect(monitoring.locator(f'#log tr.log-row:has(a[href="/instances/{first.pk}/"]) [data-action="INSTANCE_TERMINATED"]')
           .first).to_be_visible()
    for name, page in pages.items():
        assert page.evaluate("window.sameDocument") is True, f"{name} reloaded"
        expect(page.locator("[data-live-age]")).to_contain_text("updated")
    assert errors == []


def test_a_paused_or_hidden_page_stops_refreshing_and_resumes(mock_cloud, logged_in_page, settings):
    settings.LIVE_REFRESH_S = 1
    page = logged_in_page
    refreshes = []
    page.on("request", lambda request: refreshes.append(request.url)
            if request.headers.get("hx-target") == "instances-live" else None)
    page.goto("/instances/")
    page.wait_for_function("window.inventivLive && window.inventivLive.running()")
    wait_until(page, lambda: refreshes, "a shown, unpaused page refreshes itself")

    page.click("[data-live-toggle]")
    expect(page.locator("[data-live-toggle]")).to_have_text("Resume")
    expect(page.locator("[data-live-age]")).to_contain_text("paused")
    page.wait_for_timeout(500)  # a refresh sent just before the click may still be answered
    before = len(refreshes)
    page.wait_for_timeout(QUIET_PERIODS * 1000)
    assert len(refreshes) == before, "a paused page must not refresh"

    # The tab is hidden: still no refresh after resuming, until it is shown again.
    page.evaluate("""() => { Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
                             document.dispatchEvent(new Event("visibilitychange")); }""")
    page.click("[data-live-toggle]")
    expect(page.locator("[data-live-toggle]")).to_have_text("Pause")
    page.wait_for_timeout(QUIET_PERIODS * 1000)
    assert len(refreshes) == before, "a hidden page must not refresh"

    page.evaluate("""() => { Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
                             document.dispatchEvent(new Event("visibilitychange")); }""")
    wait_until(page, lambda: len(refreshes) > before, "a page shown again refreshes")


def test_forms_that_add_rows_leave_no_console_error(mock_cloud, logged_in_page):
    """A create answers with out-of-band swaps (the new row, the emptied "none yet" line): each one's target
    is always on the page, so the second create, like the first, logs no htmx oobErrorNoTarget."""
    from catalog.models import InstanceType, LlmModel, Zone
    from instances.tests.test_browser_instances import choose

    page = logged_in_page
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto("/api-keys/")
    for name in ("first", "second"):
        page.fill("input[name=name]", name)
        page.click("#create-panel button[type=submit]")
        expect(page.locator("#api-key-rows tr", has_text=name)).to_have_count(1)

    page.goto("/instances/")
    for expected in (1, 2):
        choose(page, "select[name=zone]", Zone.objects.get(code="mock-eu-1").pk, swaps="type-field")
        choose(page, "select[name=instance_type]", InstanceType.objects.get(code="MOCK-GPU-S").pk,
               swaps="model-field")
        page.select_option("select[name=model]", str(LlmModel.objects.get(code="mock-echo").pk))
        page.click("#create-form button[type=submit]")
        expect(page.locator("#instance-rows tr")).to_have_count(expected)
    expect(page.locator("#no-instances")).to_be_hidden()
    assert errors == []
