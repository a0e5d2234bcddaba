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

        page.fill("#pg-max-tokens", str(MAX_TOKENS))
        page.fill("#pg-message", "hello world")
        # A key's problems are explained before anything is sent; an unknown one by what the router said.
        page.fill("#pg-key", "   ")
        page.click("#pg-send")
        assert "Paste an API key" in page.text_content("#pg-status")
        page.fill("#pg-key", "sk-inv-not-a-key")
        page.click("#pg-send")
        page.wait_for_function("() => document.getElementById('pg-status').textContent.includes('does not know')")

        page.fill("#pg-key", f"  {key}\n")  # pasted with the blanks around it: trimmed
        page.click("#pg-send")

        page.wait_for_function(
            "expected => document.getElementById('pg-output').textContent === expected", arg=EXPECTED_ANSWER
        )
        page.wait_for_function("() => document.getElementById('pg-status').textContent.startsWith('Done')")
        assert page.input_value("#pg-key") == key
        assert "completion tokens" in page.text_content("#pg-tokens")
        box = page.evaluate("() => { const s = getComputedStyle(document.getElementById('pg-output'));"
                            " return [s.overflowY, s.maxHeight]; }")
        assert box[0] == "auto" and box[1].endswith("px")
    finally:
        context.close()


@pytest.mark.parametrize(("raw", "problem"), [
    ("", "Paste an API key"),
    ("   ", "Paste an API key"),
    ("sk-inv-abc def", "spaces or line breaks"),
    ("sk-inv-abc\ndef", "spaces or line breaks"),
    ("Bearer sk-inv-abc", "spaces or line breaks"),
    ("abc123", "not an Inventiv API key"),
    ("  sk-inv-abc123  ", ""),
])
def test_the_playground_explains_what_is_wrong_with_a_key(logged_in_page, raw, problem):
    page = logged_in_page
    page.goto("/playground/")
    found = page.evaluate("raw => window.inventivPlayground.keyProblem(raw)", raw)
    assert (problem in found) if problem else found == ""
