"""Shared test fixtures: the catalog seed, users and API clients, and a Playwright-driven Chromium."""

import os
import uuid

import pytest
from django.core.management import call_command
from knox.models import AuthToken
from rest_framework.test import APIClient

# Playwright's sync API runs an event loop in the test thread; Django's ORM refuses to run beside one
# unless told that this is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _celery_eager(settings):
    """Tasks run in-process unless a test starts real workers (those tests override this)."""
    from inventiv.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _router_redis_prefix(settings):
    """With REDIS_URL set, each test's shared router state (limits, held counts, changes) lives under its
    own prefix, so that nothing a test leaves in Redis reaches the next."""
    settings.ROUTER_REDIS_PREFIX = f"inventiv-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # The default PBKDF2 costs ~0.3 s per user created; tests need no brute-force resistance.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def seed(db):
    """The catalog seed (providers, zones, GPU types, models, runtime settings, action types)."""
    call_command("loaddata", "catalog", verbosity=0)


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", ADMIN_PASSWORD)


@pytest.fixture
def viewer_user(db, django_user_model):
    return django_user_model.objects.create_user("viewer", "viewer@example.com", ADMIN_PASSWORD)


def api_token(user) -> str:
    """A REST API token of `user`, in clear (the database keeps only its hash)."""
    return AuthToken.objects.create(user, expiry=None)[1]


@pytest.fixture
def api(admin_user):
    """An API client authenticated with a staff user's token, as a script would be."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(admin_user)}")
    return client


@pytest.fixture
def viewer_api(viewer_user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(viewer_user)}")
    return client


@pytest.fixture(scope="module")
def browser():
    # Module scope, not session: Playwright's sync API keeps an event loop running in this thread while
    # it is open, which would break later tests that call asyncio.run() (the worker agent's).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    # A ceiling, not a speed check: a busy 2-core machine can take seconds to serve a page.
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def logged_in_page(page, admin_user):
    """A browser page signed in as the admin through the real login form."""
    page.goto("/login/")
    page.fill("input[name=username]", admin_user.username)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    return page
