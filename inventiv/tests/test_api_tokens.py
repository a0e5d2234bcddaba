"""REST API tokens are stored as hashes only: `create_api_token` shows one once, and tokens DRF kept in clear
before are hashed by a migration and keep working."""

import importlib
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

hash_migration = importlib.import_module("inventiv.migrations.0001_hash_api_tokens")


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def stored_token_columns() -> str:
    return str(list(AuthToken.objects.values()))


def test_create_api_token_prints_a_token_that_works_and_is_stored_only_as_a_hash(admin_user):
    out = StringIO()

    call_command("create_api_token", "admin", stdout=out, stderr=StringIO())

    token = out.getvalue().strip()
    assert len(token) >= 64
    assert client_with(token).get("/api/instances/").status_code == 200
    assert token not in stored_token_columns()
    refused = client_with(token[:-1] + ("0" if token[-1] != "0" else "1")).get("/api/instances/")
    assert refused.status_code in (401, 403)


def test_a_token_may_expire_and_an_unknown_user_gets_none(admin_user):
    call_command("create_api_token", "admin", "--expires-days", "7", stdout=StringIO(), stderr=StringIO())

    assert AuthToken.objects.get().expiry is not None
    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())


def test_tokens_drf_kept_in_clear_are_hashed_by_the_migration_and_keep_working(admin_user):
    clear = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # DRF's format: 40 hex characters
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer NOT NULL, "
                       "created timestamp with time zone NOT NULL)" if connection.vendor == "postgresql" else
                       "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, user_id integer NOT NULL, "
                       "created datetime NOT NULL)")
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, %s, CURRENT_TIMESTAMP)", [clear, admin_user.pk])

    # What the migration uses of its schema editor (SQLite opens none inside the test's transaction).
    hash_migration.hash_clear_tokens(apps, SimpleNamespace(connection=connection))

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    assert clear not in stored_token_columns()
    assert client_with(clear).get("/api/instances/").status_code == 200


def test_an_expired_token_is_refused_and_deleted_and_a_live_one_costs_no_sweep(admin_user):
    expired, expired_token = AuthToken.objects.create(admin_user, expiry=None)
    _, live_token = AuthToken.objects.create(admin_user, expiry=None)
    AuthToken.objects.filter(pk=expired.pk).update(expiry=timezone.now() - timedelta(seconds=1))

    assert client_with(expired_token).get("/api/instances/").status_code == 403  # refused
    assert not AuthToken.objects.filter(pk=expired.pk).exists()
    with CaptureQueriesContext(connection) as queries:
        assert client_with(live_token).get("/api/instances/").status_code == 200
    assert len([query for query in queries if "knox_authtoken" in query["sql"]]) == 1
