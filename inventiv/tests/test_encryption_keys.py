"""Keys for secrets at rest: INVENTIV_ENCRYPTION_KEYS (newest first), the placeholder SECRET_KEY refused at start,
and `manage.py rotate_encryption_key`."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from instances.credentials import engine_api_key
from instances.tests.factories import fresh, make_instance, mock_cloud  # noqa: F401 (fixture)
from inventiv.crypto import decrypt_text, encrypt_text, is_encrypted_with_newest_key
from inventiv.key_rotation import ENCRYPTED_COLUMNS, ENCRYPTED_SUFFIX
from inventiv.keys import read_encryption_keys, read_secret_key
from providers.models import MockServer

OLD_KEY, NEW_KEY, OTHER_KEY = (Fernet.generate_key().decode() for _ in range(3))
ENGINE_KEY = "inv-engine-test-key"


@pytest.fixture(autouse=True)
def _no_keys_in_environment(monkeypatch):
    for name in ("INVENTIV_ENCRYPTION_KEYS", "INVENTIV_ENCRYPTION_KEY", "INVENTIV_ENCRYPTION_KEYS_FILE",
                 "INVENTIV_ENCRYPTION_KEY_FILE", "SECRET_KEY", "SECRET_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_a_secret_key_left_at_the_placeholder_of_env_example_is_refused(monkeypatch, tmp_path, settings):
    with open(settings.BASE_DIR / ".env.example") as example:
        placeholder = next(line for line in example if line.startswith("SECRET_KEY=")).split("=", 1)[1].strip()
    monkeypatch.setenv("SECRET_KEY", placeholder)

    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is still the placeholder from .env.example"):
        read_secret_key(var_dir=tmp_path)


def test_a_short_secret_key_is_refused_and_a_missing_one_is_generated_once(monkeypatch, tmp_path):
    generated = read_secret_key(var_dir=tmp_path)
    assert read_secret_key(var_dir=tmp_path) == generated and len(generated) >= 50

    monkeypatch.setenv("SECRET_KEY", "short")
    with pytest.raises(ImproperlyConfigured, match="at least 32 characters"):
        read_secret_key(var_dir=tmp_path)


def test_the_keys_are_read_newest_first_and_the_single_key_of_older_versions_as_a_list_of_one(monkeypatch):
    assert read_encryption_keys() == []
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEY", OLD_KEY)
    assert read_encryption_keys() == [OLD_KEY]
    monkeypatch.delenv("INVENTIV_ENCRYPTION_KEY")
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEYS", f" {NEW_KEY}, {OLD_KEY} ")
    assert read_encryption_keys() == [NEW_KEY, OLD_KEY]


def test_a_key_file_may_hold_one_key_per_line(monkeypatch, tmp_path):
    (tmp_path / "keys").write_text(f"{NEW_KEY}\n{OLD_KEY}\n")
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEYS_FILE", str(tmp_path / "keys"))
    assert read_encryption_keys() == [NEW_KEY, OLD_KEY]


def test_both_key_variables_at_once_are_refused(monkeypatch):
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEYS", NEW_KEY)
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEY", OLD_KEY)
    with pytest.raises(ImproperlyConfigured, match="keep only INVENTIV_ENCRYPTION_KEYS"):
        read_encryption_keys()


def test_a_bad_key_is_named_by_its_position_never_by_its_value(monkeypatch):
    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEYS", f"{NEW_KEY},not-a-fernet-key")
    with pytest.raises(ImproperlyConfigured, match="key 2 of 2 is not a Fernet key") as raised:
        read_encryption_keys()
    assert "not-a-fernet-key" not in str(raised.value)

    monkeypatch.setenv("INVENTIV_ENCRYPTION_KEYS", "change-me-to-a-fernet-key")
    with pytest.raises(ImproperlyConfigured, match="placeholder"):
        read_encryption_keys()


def test_a_new_key_in_front_encrypts_and_the_old_key_behind_it_still_decrypts(settings):
    settings.INVENTIV_ENCRYPTION_KEYS = [OLD_KEY]
    token = encrypt_text("secret")

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert decrypt_text(token) == "secret"
    assert not is_encrypted_with_newest_key(token)
    assert is_encrypted_with_newest_key(encrypt_text("secret"))

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY]
    with pytest.raises(ValueError, match="cannot decrypt"):
        decrypt_text(token)


def test_what_the_key_derived_from_secret_key_encrypted_stays_readable_once_keys_are_set(settings):
    settings.INVENTIV_ENCRYPTION_KEYS = []
    token = encrypt_text("secret")

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY]
    assert decrypt_text(token) == "secret"


def test_every_encrypted_column_is_rotated():
    encrypted = {f"{model._meta.label}.{field.name}" for model in apps.get_models()
                 for field in model._meta.concrete_fields if field.name.endswith(ENCRYPTED_SUFFIX)}
    assert encrypted == {str(column) for column in ENCRYPTED_COLUMNS}


def make_server(env: dict) -> MockServer:
    server = MockServer(zone="mock-eu-1", name="rotation", commercial_type="MOCK-GPU-S", created_at=timezone.now())
    server.runtime_env = env
    server.save()
    return server


def rotate() -> str:
    out = StringIO()
    call_command("rotate_encryption_key", stdout=out)
    return out.getvalue()


def test_rotation_reencrypts_every_stored_secret_with_the_newest_key_and_a_second_run_changes_nothing(
    settings, mock_cloud
):
    settings.INVENTIV_ENCRYPTION_KEYS = [OLD_KEY]
    instances = [make_instance(with_server=False, engine_api_key_encrypted=encrypt_text(ENGINE_KEY))
                 for _ in range(3)]
    without_key = make_instance(with_server=False, engine_api_key_encrypted="")
    server = make_server({"INVENTIV_ENGINE_API_KEY": ENGINE_KEY})

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    already_new = make_instance(with_server=False, engine_api_key_encrypted=encrypt_text(ENGINE_KEY))
    first = rotate()
    second = rotate()

    assert "instances.Instance.engine_api_key_encrypted: 3 re-encrypted, 1 already on the newest key" in first
    assert "providers.MockServer.runtime_env_encrypted: 1 re-encrypted, 0 already on the newest key" in first
    assert "instances.Instance.engine_api_key_encrypted: 0 re-encrypted, 4 already on the newest key" in second
    assert "providers.MockServer.runtime_env_encrypted: 0 re-encrypted, 1 already on the newest key" in second

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY]  # the old key is gone: everything still reads
    assert [engine_api_key(fresh(instance)) for instance in [*instances, already_new]] == [ENGINE_KEY] * 4
    assert MockServer.objects.get(pk=server.pk).runtime_env == {"INVENTIV_ENGINE_API_KEY": ENGINE_KEY}
    assert fresh(without_key).engine_api_key_encrypted == ""


def test_rotation_rotates_what_it_can_and_fails_naming_how_many_secrets_no_key_decrypts(settings, mock_cloud):
    settings.INVENTIV_ENCRYPTION_KEYS = [OTHER_KEY]
    lost = make_instance(with_server=False, engine_api_key_encrypted=encrypt_text(ENGINE_KEY))
    settings.INVENTIV_ENCRYPTION_KEYS = [OLD_KEY]
    readable = make_instance(with_server=False, engine_api_key_encrypted=encrypt_text(ENGINE_KEY))

    settings.INVENTIV_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    with pytest.raises(CommandError, match="1 stored secret"):
        rotate()

    assert is_encrypted_with_newest_key(fresh(readable).engine_api_key_encrypted)
    settings.INVENTIV_ENCRYPTION_KEYS = [OTHER_KEY]
    assert engine_api_key(fresh(lost)) == ENGINE_KEY  # left exactly as it was
