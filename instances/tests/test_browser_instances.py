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
# A row polls every 2 s: room for a few polls.
POLL_PERIOD_MS = 2_000
POLL_WAIT_MS = 4 * POLL_PERIOD_MS
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


def test_an_operator_creates_watches_and_terminates_an_instance(mock_cloud, logged_in_page):
    set_setting("mock_boot_delay_s", BOOT_DELAY_S)
    page = logged_in_page
    polls = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/row/") else None)
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
    expect(row).to_have_attribute("hx-trigger", "every 2s")

    run_health_sweep_until_ready(instance, page)
    # No reload: the row's own polling brings the news.
    expect(row).to_have_attribute("data-status", Status.READY, timeout=POLL_WAIT_MS)
    expect(row.locator(".badge")).to_have_text("Ready")
    assert page.evaluate("window.sameDocument") is True
    assert polls and all(f"/instances/{instance.pk}/row/" in url for url in polls)
    assert "hx-trigger" not in row.evaluate("element => element.outerHTML")
    polled = len(polls)
    page.wait_for_timeout(POLL_PERIOD_MS + 500)
    assert len(polls) == polled, "a stable row must stop polling"

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
