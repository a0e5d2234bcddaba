"""API keys: shown once, stored hashed, revocable, through the service and the REST API."""

import pytest
from django.core.exceptions import ValidationError

from router.keys import hash_key, load_key_index
from router.models import ApiKey
from router.services import create_api_key, revoke_api_key

pytestmark = pytest.mark.django_db


def test_a_new_key_is_returned_once_and_only_its_hash_is_stored(seed, admin_user):
    api_key, clear = create_api_key(name="ci", created_by=admin_user, requests_per_minute=10)
    assert clear.startswith("sk-inv-") and len(clear) > 40
    stored = ApiKey.objects.get()
    assert stored.key_hash == hash_key(clear) and stored.prefix == clear[:12]
    assert clear not in {str(value) for value in ApiKey.objects.values().get().values()}
    assert load_key_index()[hash_key(clear)].requests_per_minute == 10


def test_a_revoked_key_leaves_the_index_and_keeps_its_first_revocation_time(seed):
    api_key, clear = create_api_key(name="ci")
    first = revoke_api_key(api_key).revoked_at
    assert revoke_api_key(api_key).revoked_at == first
    assert hash_key(clear) not in load_key_index()


def test_a_key_cannot_allow_an_unknown_model(seed):
    with pytest.raises(ValidationError):
        create_api_key(name="ci", allowed_models=["mock-echo", "no-such-model"])


def test_the_api_creates_a_key_and_shows_it_once(seed, api):
    created = api.post("/api/api-keys/", {"name": "batch jobs", "tokens_per_minute": 5000,
                                          "allowed_models": ["mock-echo"]}, format="json")
    assert created.status_code == 201
    clear = created.json()["key"]
    assert clear.startswith(created.json()["prefix"])
    listed = api.get("/api/api-keys/").json()["results"]
    assert [row["name"] for row in listed] == ["batch jobs"]
    assert "key" not in listed[0] and "key_hash" not in listed[0]
    assert listed[0]["created_by"] == "admin" and listed[0]["allowed_models"] == ["mock-echo"]


def test_the_api_revokes_a_key(seed, api):
    api_key, _ = create_api_key(name="ci")
    answer = api.post(f"/api/api-keys/{api_key.pk}/revoke/")
    assert answer.status_code == 200 and answer.json()["active"] is False


def test_the_api_refuses_bad_limits_and_unknown_models(seed, api):
    assert api.post("/api/api-keys/", {"name": "x", "requests_per_minute": 0}, format="json").status_code == 400
    answer = api.post("/api/api-keys/", {"name": "x", "allowed_models": ["nope"]}, format="json")
    assert answer.status_code == 400 and "allowed_models" in answer.json()["error"]["fields"]


def test_only_staff_see_or_make_keys(seed, viewer_api):
    assert viewer_api.get("/api/api-keys/").status_code == 403
    assert viewer_api.post("/api/api-keys/", {"name": "x"}, format="json").status_code == 403
