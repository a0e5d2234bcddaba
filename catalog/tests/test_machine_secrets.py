"""Machine secrets: the Hugging Face token, from the dashboard (encrypted) or the environment."""

import pytest

from catalog.machine_secrets import MissingMachineSecret, machine_secret_values, secret_sources, set_machine_secret
from catalog.models import MachineSecret

pytestmark = pytest.mark.django_db
TOKEN = "hf_" + "x" * 34
HTMX = {"HTTP_HX_REQUEST": "true"}


def source_of(name: str) -> str:
    return {secret: source for secret, _, source in secret_sources()}[name]


def test_a_secret_set_in_the_dashboard_is_stored_encrypted_and_read_back(settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}

    set_machine_secret("HF_TOKEN", value=TOKEN)

    assert TOKEN not in MachineSecret.objects.get(name="HF_TOKEN").encrypted_value
    assert machine_secret_values(["HF_TOKEN"]) == {"HF_TOKEN": TOKEN}
    assert source_of("HF_TOKEN") == "dashboard"


def test_the_environment_serves_when_the_dashboard_has_none_and_the_dashboard_wins_otherwise(settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": "hf_from_env"}
    assert machine_secret_values(["HF_TOKEN"]) == {"HF_TOKEN": "hf_from_env"}
    assert source_of("HF_TOKEN") == "environment"

    set_machine_secret("HF_TOKEN", value=TOKEN)
    assert machine_secret_values(["HF_TOKEN"]) == {"HF_TOKEN": TOKEN}

    set_machine_secret("HF_TOKEN", value="")
    assert machine_secret_values(["HF_TOKEN"]) == {"HF_TOKEN": "hf_from_env"}


def test_a_secret_set_nowhere_is_named_in_the_error(settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}

    with pytest.raises(MissingMachineSecret) as missing:
        machine_secret_values(["HF_TOKEN"])

    assert missing.value.names == ["HF_TOKEN"] and "HF_TOKEN not set" in str(missing.value)
    assert machine_secret_values([]) == {}


def test_only_known_secrets_can_be_set():
    with pytest.raises(ValueError, match="unknown machine secret"):
        set_machine_secret("AWS_SECRET", value="x")


def test_staff_set_the_token_in_the_dashboard_which_never_shows_it(client, admin_user, settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}
    client.force_login(admin_user)

    html = client.post("/settings/machine-secrets/", {"name": "HF_TOKEN", "value": TOKEN}, **HTMX).content.decode()

    assert "set here" in html and TOKEN not in html
    assert TOKEN not in client.get("/settings/machine-secrets/").content.decode()
    assert machine_secret_values(["HF_TOKEN"]) == {"HF_TOKEN": TOKEN}


def test_read_only_users_see_the_status_but_cannot_set_it(client, viewer_user, settings):
    settings.MACHINE_SECRETS_FROM_ENV = {"HF_TOKEN": ""}
    client.force_login(viewer_user)

    html = client.get("/settings/machine-secrets/").content.decode()
    assert "not set" in html and 'type="password"' not in html
    assert client.post("/settings/machine-secrets/", {"name": "HF_TOKEN", "value": TOKEN}).status_code == 403
    assert not MachineSecret.objects.exists()
