"""The Instances page in Chromium: create a Mock instance, watch it become ready, read its timeline, terminate it."""

import time

import pytest
from playwright.sync_api import expect

from catalog.models import InstanceType, LlmModel, Zone
from instances.models import Instance
from instances.status import Status
from instances.sweeps import sweep_startup_health
from instances.tests.factories import mock_cloud, set_setting  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# The page refreshes its live part every second here (INVENTIV_LIVE_REFRESH_S): room for a few refreshes.
LIVE_REFRESH_S = 1
POLL_WAIT_MS = 8_000
# The Mock server takes this long to boot, so the new row is seen transitional first.
BOOT_DELAY_S = 1
BOOT_WAIT_S = 10
# Resolves once htmx has settled a swap of the element with this id: until then the new element's own
# hx-get is not wired up, and a robot (unlike a person) would change it within those milliseconds.
AWAIT_SETTLE = """id => { window.settled = new Promise(resolve => document.body.addEventListener(
    "htmx:afterSettle", function listener(event) {
        if (event.target.id === id) { document.body.removeEventListener("htmx:afterSettle", listener); resolve(); }
    })); }"""


def choose(page, select: str, value, *, swaps: str) -> None:
    """Pick `value` in `select` and wait until the fragment it loads (the element with id `swaps`) is live."""
    page.evaluate(AWAIT_SETTLE, swaps)
    page.select_option(select, str(value))
    page.evaluate("window.settled")


def run_health_sweep_until_ready(instance: Instance, page) -> None:
    """Beat does not run in tests: sweep from here (as beat would) until the booted machine is ready."""
    deadline = time.monotonic() + BOOT_WAIT_S
    while Instance.objects.get(pk=instance.pk).status != Status.READY:
        assert time.monotonic() < deadline, "the Mock machine never became ready"
        page.wait_for_timeout(200)
        sweep_startup_health()


def test_an_operator_creates_watches_and_terminates_an_instance(mock_cloud, logged_in_page, settings):
    set_setting("mock_boot_delay_s", BOOT_DELAY_S)
    settings.LIVE_REFRESH_S = LIVE_REFRESH_S
    page = logged_in_page
    polls = []
    page.on("request", lambda request: polls.append(request) if request.headers.get("hx-request") else None)
    page.goto("/instances/")
    # Set on the page's window: still there at the end only if the page never reloaded.
    page.evaluate("window.sameDocument = true")

    choose(page, "select[name=zone]", Zone.objects.get(code="mock-eu-1").pk, swaps="type-field")
    choose(page, "select[name=instance_type]", InstanceType.objects.get(code="MOCK-GPU-S").pk, swaps="model-field")
    page.select_option("select[name=model]", str(LlmModel.objects.get(code="mock-echo").pk))
    page.click("#create-form button[type=submit]")

    expect(page.locator("#create-result")).to_contain_text("requested")
    instance = Instance.objects.get()
    row = page.locator(f"#instance-{instance.pk}")
    expect(row).to_have_attribute("data-status", Status.BOOTING)

    run_health_sweep_until_ready(instance, page)
    # No reload: the page's live part brings the news.
    expect(row).to_have_attribute("data-status", Status.READY, timeout=POLL_WAIT_MS)
    expect(row.locator(".badge")).to_have_text("Ready")
    expect(page.locator("[data-count=active]")).to_have_text("1 active")
    assert page.evaluate("window.sameDocument") is True
    refreshes = [request for request in polls if request.headers.get("hx-target") == "instances-live"]
    assert refreshes and all(request.url.endswith("/instances/") for request in refreshes)

    row.locator("a").first.click()
    page.wait_for_url(f"**/instances/{instance.pk}/")
    timeline = page.locator("table.timeline")
    expect(timeline.locator('tr[data-action="REQUEST_CREATE"]')).to_have_count(1)
    expect(timeline.locator('tr[data-action="INSTANCE_READY"]')).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#instance-detail button:has-text('Terminate')")
    expect(page.locator("#instance-detail")).to_have_attribute("data-status", Status.TERMINATED, timeout=POLL_WAIT_MS)
    expect(page.locator("#instance-detail h1 .badge")).to_have_text("Terminated")
    assert Instance.objects.get(pk=instance.pk).status == Status.TERMINATED
