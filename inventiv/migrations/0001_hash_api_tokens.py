"""REST API tokens hashed at rest: tokens DRF stored in clear (rest_framework.authtoken) become knox tokens
that keep working (knox keeps the SHA-512 of the token and its first characters to find it), and the clear
rows are deleted. A fresh database has no such table and nothing to do."""

import hashlib

from django.db import migrations

OLD_TABLE = "authtoken_token"
# knox.settings.CONSTANTS.TOKEN_KEY_LENGTH: the characters knox keeps in clear to find a token's row.
TOKEN_KEY_LENGTH = 15


def hash_clear_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if OLD_TABLE not in connection.introspection.table_names():
        return
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {OLD_TABLE}")
        rows = cursor.fetchall()
        AuthToken.objects.bulk_create([
            AuthToken(digest=hashlib.sha512(key.encode()).hexdigest(), token_key=key[:TOKEN_KEY_LENGTH],
                      user_id=user_id, created=created, expiry=None)
            for key, user_id, created in rows
        ], ignore_conflicts=True)
        cursor.execute(f"DELETE FROM {OLD_TABLE}")


class Migration(migrations.Migration):
    dependencies = [
        ("knox", "0009_extend_authtoken_field"),
    ]

    operations = [migrations.RunPython(hash_clear_tokens, migrations.RunPython.noop)]
