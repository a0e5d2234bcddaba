"""The Playground in Chromium against the whole ASGI app (Django pages and the /v1 router on one origin),
streaming from an in-process simulator registered as a ready instance."""

import pytest

from conftest import ADMIN_PASSWORD
from router.tests.factories import client_key
from router.tests.servers import UvicornThread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The simulator answers with the prompt's words repeated, up to max_tokens: deterministic text to look for.
EXPECTED_ANSWER = "hello world hello world hello world"
MAX_TOKENS = 6


@pytest.fixture
def site():
    """inventiv.asgi:application under uvicorn: live_server would serve Django's WSGI app, without /v1."""
    from inventiv.asgi import HttpProtocol, application, close_database_connections

    server = UvicornThread(application, http=HttpProtocol).start()
    yield server
    server.stop()
    close_database_connections()


def test_the_playground_streams_an_answer_with_a_pasted_key(engines, admin_user, site, browser):
    engines()
    key = client_key()
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        page.goto("/login/")
        page.fill("input[name=username]", admin_user.username)
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site.url}/")

        page.click("nav >> text=Playground")
        page.wait_for_url("**/playground/")
        assert page.input_value("#pg-model") == "mock-echo"
        assert f'base_url="{site.url}/v1"' in page.text_content("#snippet-python")
        assert '"model": "mock-echo"' in page.text_content("#snippet-curl")

        page.fill("#pg-key", key)
        page.fill("#pg-max-tokens", str(MAX_TOKENS))
        page.fill("#pg-message", "hello world")
        page.click("#pg-send")

        page.wait_for_function(
            "expected => document.getElementById('pg-output').textContent === expected", arg=EXPECTED_ANSWER
        )
        page.wait_for_function("() => document.getElementById('pg-status').textContent.startsWith('Done')")
    finally:
        context.close()
