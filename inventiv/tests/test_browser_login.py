import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_sends_anonymous_visitors_to_the_login_page(page):
    page.goto("/")
    assert "/login/" in page.url


def test_it_logs_in_and_shows_the_dashboard_with_the_version(logged_in_page, settings):
    assert logged_in_page.locator("h1").inner_text() == "Dashboard"
    assert f"Inventiv {settings.VERSION}" in logged_in_page.locator("footer").inner_text()


def test_it_refuses_a_wrong_password(page, admin_user):
    page.goto("/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.locator(".error").inner_text()
