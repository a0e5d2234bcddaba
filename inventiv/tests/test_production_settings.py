"""Production settings as a process starts with them: HTTPS behind a proxy with one variable, HSTS opt-in, a
copy of .env.example left unedited refused, and `check --deploy` clean once everything is set (README,
"Production"). Each case starts Python afresh: settings are read once, at start."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

SHOWN = ("SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_SSL_REDIRECT",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD")
SHOW_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings; "
    f"print(json.dumps({{name: getattr(settings, name, None) for name in {SHOWN!r}}}))"
)


def env_example() -> dict[str, str]:
    lines = (settings.BASE_DIR / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line[:1].isupper() and "=" in line)


def start(argv: list[str], tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("INVENTIV_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "inventiv.settings", "INVENTIV_VAR_DIR": str(tmp_path / "var"),
                "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", **variables})
    return subprocess.run([sys.executable, *argv], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=60)


def settings_with(tmp_path, **variables: str) -> dict:
    started = start(["-c", SHOW_SETTINGS], tmp_path, **variables)
    assert started.returncode == 0, started.stderr
    return json.loads(started.stdout)


def production(**overrides: str) -> dict[str, str]:
    """.env.example filled in as the README says."""
    return {**env_example(), "SECRET_KEY": secrets.token_urlsafe(50),
            "INVENTIV_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "POSTGRES_PASSWORD": "not-used-by-django",
            **overrides}


def test_without_https_cookies_may_travel_over_plain_http(tmp_path):
    shown = settings_with(tmp_path)
    assert shown["SECURE_PROXY_SSL_HEADER"] is None
    assert not shown["SESSION_COOKIE_SECURE"] and not shown["CSRF_COOKIE_SECURE"] and not shown["SECURE_SSL_REDIRECT"]


def test_one_variable_turns_on_https_behind_a_proxy_with_secure_cookies_and_the_redirect(tmp_path):
    shown = settings_with(tmp_path, INVENTIV_HTTPS="1")
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"] and shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] == 0  # opt-in, on its own variable


def test_the_redirect_can_be_left_to_the_proxy_and_hsts_is_opted_in_on_its_own(tmp_path):
    shown = settings_with(tmp_path, INVENTIV_HTTPS="1", INVENTIV_HTTPS_REDIRECT="0", INVENTIV_HSTS_SECONDS="31536000",
                          INVENTIV_HSTS_INCLUDE_SUBDOMAINS="1")
    assert not shown["SECURE_SSL_REDIRECT"] and shown["SESSION_COOKIE_SECURE"]
    assert shown["SECURE_HSTS_SECONDS"] == 31536000 and shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert not shown["SECURE_HSTS_PRELOAD"]


def test_hsts_without_https_is_refused_at_start(tmp_path):
    started = start(["-c", SHOW_SETTINGS], tmp_path, INVENTIV_HSTS_SECONDS="3600")
    assert started.returncode != 0
    assert "INVENTIV_HSTS_SECONDS needs INVENTIV_HTTPS=1" in started.stderr


@pytest.mark.parametrize("left_as_is", ["SECRET_KEY", "INVENTIV_ENCRYPTION_KEYS"])
def test_a_copy_of_env_example_with_a_placeholder_left_does_not_start(tmp_path, left_as_is):
    variables = production(**{left_as_is: env_example()[left_as_is]})
    started = start(["manage.py", "check"], tmp_path, **variables)
    assert started.returncode != 0
    assert f"{left_as_is} is still the placeholder from .env.example" in started.stderr


def test_a_placeholder_database_password_does_not_start(tmp_path):
    started = start(["manage.py", "check"], tmp_path,
                    **production(DATABASE_URL="postgres://inventiv:change-me-to-a-database-password@db/inventiv"))
    assert started.returncode != 0
    assert "database password is still the placeholder" in started.stderr


def test_check_deploy_reports_nothing_once_env_example_is_filled_in_and_hsts_is_on(tmp_path):
    variables = production(INVENTIV_HSTS_SECONDS="31536000", INVENTIV_HSTS_INCLUDE_SUBDOMAINS="1",
                           INVENTIV_HSTS_PRELOAD="1")
    started = start(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, **variables)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "no issues" in started.stdout
