"""The site's frame works offline and fails politely: the API docs, the favicon and the error pages are served
by the project, and no template loads anything from outside the host (README, "Pages")."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import RequestFactory

from inventiv import urls
from inventiv.unavailable import server_error

EXTERNAL_ASSET = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)
PAGE_TEMPLATES = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))
STATIC_TEXT = [p for p in Path(settings.BASE_DIR, "static").rglob("*") if p.suffix in {".css", ".js", ".svg"}
               and "vendor" not in p.parts]


@pytest.mark.parametrize("path", PAGE_TEMPLATES + STATIC_TEXT, ids=lambda p: str(p.relative_to(settings.BASE_DIR)))
def test_no_template_or_stylesheet_loads_anything_from_outside_the_host(path):
    text = path.read_text()
    assert not EXTERNAL_ASSET.search(text)
    assert "@import" not in text and "url(http" not in text.replace(" ", "")


def test_the_swagger_ui_is_served_by_the_project_inside_the_site_frame(client, admin_user):
    client.force_login(admin_user)
    html = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "Log out" in html and 'id="site-nav"' in html
    assert not re.search(r"""(?:src|href)=["']https?://""", html)


def test_redoc_is_served_by_the_project_without_web_fonts(client):
    html = client.get("/api/redoc/").content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in html
    assert "fonts.googleapis" not in html and not re.search(r"""(?:src|href)=["']https?://""", html)


def test_the_favicon_answers_at_the_root_and_is_linked_from_every_page(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"
    assert '<link rel="icon" href="/static/favicon.svg"' in client.get("/login/").content.decode()


def test_an_unknown_page_is_a_branded_404_with_the_navigation(client, admin_user):
    client.force_login(admin_user)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Page not found" in html and "/no/such/page/" in html
    assert 'id="site-nav"' in html and "Log out" in html


def test_the_500_page_has_the_navigation_and_reads_no_database():
    # No database fixture: pytest-django makes any query raise here.
    assert urls.handler500 == "inventiv.unavailable.server_error"
    response = server_error(RequestFactory().get("/instances/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html and 'id="site-nav"' in html
    assert f"Inventiv {settings.VERSION}" in html
    assert "Log out" not in html  # the user lives in the database


def test_a_viewer_refused_an_operator_page_gets_the_branded_403(client, viewer_user, seed):
    from catalog.models import Provider

    client.force_login(viewer_user)
    response = client.get(f"/settings/providers/{Provider.objects.get(code='mock').pk}/edit/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Not allowed" in html and "This needs a staff account." in html and 'id="site-nav"' in html
