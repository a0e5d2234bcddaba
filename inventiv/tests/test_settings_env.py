import pytest
from django.core.exceptions import ImproperlyConfigured

from inventiv.env import env_bool, env_int, env_list, env_redis_url


def test_it_reads_booleans_in_the_usual_spellings(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG") is True
    monkeypatch.setenv("FLAG", "0")
    assert env_bool("FLAG", True) is False


def test_it_fails_loudly_on_a_boolean_it_does_not_understand(monkeypatch):
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG='maybe' is not a boolean"):
        env_bool("FLAG")


def test_it_fails_loudly_on_a_bad_integer(monkeypatch):
    monkeypatch.setenv("COUNT", "ten")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("COUNT", 1)


def test_it_fails_loudly_on_a_redis_url_without_a_scheme(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "127.0.0.1:6379")
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL='127.0.0.1:6379' is not a Redis URL"):
        env_redis_url("REDIS_URL")
    monkeypatch.setenv("REDIS_URL", " redis://127.0.0.1:6379/0 ")
    assert env_redis_url("REDIS_URL") == "redis://127.0.0.1:6379/0"


def test_it_splits_lists_on_commas(monkeypatch):
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_list("HOSTS") == ["a.example", "b.example"]


def test_the_version_endpoint_answers_without_login(client, settings):
    response = client.get("/api/version/")
    assert response.status_code == 200
    assert response.json() == {"version": settings.VERSION}


@pytest.mark.django_db
def test_every_page_warns_while_engines_are_open_to_the_internet(client, admin_user, settings):
    client.force_login(admin_user)
    assert "INVENTIV_ALLOW_PUBLIC_ENGINES is on" not in client.get("/").content.decode()

    settings.ALLOW_PUBLIC_ENGINES = True

    assert "INVENTIV_ALLOW_PUBLIC_ENGINES is on" in client.get("/").content.decode()
