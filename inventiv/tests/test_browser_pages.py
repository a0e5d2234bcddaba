"""Acceptance: every page an operator reaches from the navigation, plus an instance, a pool and the API docs,
works offline and fits the screen (README, "Pages").

With every request that would leave the host aborted, at 1400 and 1000 px wide: no console error, no failed
request, no horizontal scroll of the page, "Log out" on screen, Swagger UI drawn with its operations, and
axe-core (vendored, inventiv/tests/vendor/) finds no serious or critical accessibility violation. The same holds
at 760 px, where the nav is folded behind its menu button.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from autoscaling.tests.factories import make_pool
from instances.models import Instance
from instances.tests.factories import mock_cloud, request_mock  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
WIDTHS = (1400, 1000)
NARROW = 760
HEIGHT = 900
BLOCKING = ("serious", "critical")
# Swagger UI is a third-party widget drawn inside the page: axe checks the site's frame around it, not the
# widget's own markup, which Inventiv does not write.
AXE_EXCLUDE = {"/api/docs/": ["#swagger-ui"]}
AXE_RUN = """async (exclude) => {
  const result = await axe.run({exclude: exclude.map((s) => [s])}, {resultTypes: ["violations"]});
  return result.violations.filter((v) => %s.includes(v.impact)).map((v) => (
    {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" "))}));
}""" % list(BLOCKING)


class Watch:
    """Everything a page did that an offline operator would notice: console errors, uncaught exceptions,
    failed or refused requests, and any request that tried to leave the host."""

    def __init__(self, page):
        self.problems: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"exception: {e}"))
        page.on("requestfailed", self._failed)
        page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        page.route("**/*", self._route)

    def _failed(self, request):
        # A request the browser cancelled because the test moved on to the next page (the favicon, say) is
        # no failure of the page's: it never reports one (it is "net::ERR_ABORTED", and only that).
        if request.failure == "net::ERR_ABORTED" and urlsplit(request.url).hostname in LOOPBACK:
            return
        self.problems.append(f"failed: {request.url} {request.failure}")

    def _route(self, route):
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort("internetdisconnected")

    def take(self) -> list[str]:
        found, self.problems = self.problems + [f"left the host: {u}" for u in self.outside], []
        self.outside = []
        return found


@pytest.fixture
def fleet(mock_cloud):
    """A little state so that every page has rows: a pool with a Mock instance, provisioned as the API would."""
    pool = make_pool(name="echo", min_size=1)
    instance = request_mock()
    Instance.objects.filter(pk=instance.pk).update(pool=pool)
    return {"instance": instance, "pool": pool}


HREFS = "links => links.map(a => a.getAttribute('href'))"
# Django's admin, linked from the top bar, is Django's own markup: checked for errors, requests and width only.
OWN_FRAME_EXEMPT = ("/admin/",)


def crawl_list(page, fleet) -> list[str]:
    """The top bar's links, the Settings tabs, an instance, a pool, the archived list and the API docs."""
    page.goto("/")
    top_bar = page.eval_on_selector_all("#site-nav a, .user a", HREFS)
    page.goto("/settings/")
    tabs = page.eval_on_selector_all(".tabs a", HREFS)
    extra = [f"/instances/{fleet['instance'].pk}/", f"/pools/{fleet['pool'].name}/", "/instances/archived/",
             "/api/docs/"]
    return list(dict.fromkeys(top_bar + tabs + extra))


# Loaded, and no htmx request in flight (the panels a page loads after itself included). Not "networkidle":
# pages that poll, or hold a stream open, are never idle for long.
SETTLED = "() => document.readyState === 'complete' && window.htmx && !document.querySelector('.htmx-request')"


def visit(page, path: str) -> None:
    page.goto(path, wait_until="load")
    if path == "/api/docs/":
        page.wait_for_selector("#swagger-ui .opblock", timeout=15_000)
        assert page.locator("#swagger-ui .opblock").count() > 10
    if not path.startswith(OWN_FRAME_EXEMPT):
        page.wait_for_function(SETTLED)


def layout_problems(page, path: str, width: int) -> list[str]:
    found = []
    sizes = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if sizes[0] > sizes[1]:
        wide = page.evaluate("""(limit) => [...document.querySelectorAll('body *')]
            .filter((e) => e.getBoundingClientRect().right > limit + 1 && !e.closest('.table-wrap'))
            .slice(0, 5).map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className)""", sizes[1])
        found.append(f"{path} at {width} px scrolls sideways ({sizes[0]} > {sizes[1]}): {wide}")
    if path.startswith(OWN_FRAME_EXEMPT):
        return found
    logout = page.get_by_role("button", name="Log out")
    box = logout.bounding_box()
    if not logout.is_visible() or box is None or box["x"] + box["width"] > width or box["y"] > 80:
        found.append(f"{path} at {width} px: 'Log out' is not on the bar ({box})")
    return found


def test_every_page_works_offline_fits_the_screen_and_passes_axe(fleet, logged_in_page):
    page = logged_in_page
    watch = Watch(page)
    paths = crawl_list(page, fleet)
    assert len(paths) >= 19, paths
    problems: list[str] = []
    for width in WIDTHS + (NARROW,):
        page.set_viewport_size({"width": width, "height": HEIGHT})
        for path in paths:
            visit(page, path)
            problems += [f"{path} at {width} px: {p}" for p in watch.take()]
            problems += layout_problems(page, path, width)
            if path.startswith(OWN_FRAME_EXEMPT):
                continue
            page.add_script_tag(path=str(AXE))
            for v in page.evaluate(AXE_RUN, AXE_EXCLUDE.get(path, [])):
                problems.append(f"{path} at {width} px: axe {v['impact']} {v['id']} ({v['help']}): {v['nodes']}")
    problems += [f"after the crawl: {p}" for p in watch.take()]
    assert not problems, "\n".join(problems)


def test_the_nav_folds_behind_a_menu_button_under_its_breakpoint(fleet, logged_in_page):
    page = logged_in_page
    page.set_viewport_size({"width": 1000, "height": HEIGHT})
    page.goto("/")
    nav, menu = page.locator("#site-nav"), page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav.get_by_role("link", name="Pools").click()
    page.wait_for_url("**/pools/")
    page.get_by_role("button", name="Menu").click()
    expect(page.locator("#site-nav")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#site-nav")).to_be_hidden()

    page.set_viewport_size({"width": 1400, "height": HEIGHT})
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    expect(page.locator("#site-nav")).to_be_visible()


def test_a_wide_table_scrolls_inside_its_own_box(fleet, logged_in_page):
    page = logged_in_page
    page.set_viewport_size({"width": NARROW, "height": HEIGHT})
    page.goto("/instances/")
    wrap = page.locator(".table-wrap:has(table.instances-table)")
    expect(wrap).to_be_visible()
    assert wrap.evaluate("(w) => w.scrollWidth > w.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_the_login_page_and_redoc_work_offline(seed, page):
    watch = Watch(page)
    page.set_viewport_size({"width": 1000, "height": HEIGHT})
    visit(page, "/login/")
    page.add_script_tag(path=str(AXE))
    problems = [f"/login/: axe {v['id']}: {v['nodes']}" for v in page.evaluate(AXE_RUN, [])]
    page.goto("/api/redoc/")
    # ReDoc drew the operations from the schema, with its own script from the project's static files.
    page.wait_for_selector(".api-content [data-section-id^='operation/']", timeout=15_000)
    # ReDoc's logo, whose address is on its CDN, is drawn (blank) instead of fetched.
    logo = page.wait_for_selector("img[alt='redocly logo']", state="attached")
    assert logo.get_attribute("src").startswith("data:")
    assert not problems + watch.take()
