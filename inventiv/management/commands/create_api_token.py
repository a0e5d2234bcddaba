"""Create a REST API token for a user and print it once.

Only the token's hash is stored (django-rest-knox): it cannot be shown again, and a lost token is replaced
by a new one. Scripts send it as `Authorization: Token <token>`. Revoke a token in the admin (Auth tokens).
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Create a REST API token for USERNAME and print it (once: only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--expires-days", type=int, default=None,
                            help="Days until the token stops working (default: never).")

    def handle(self, *args, username: str, expires_days: int | None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active user {username!r}.")
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1.")
        _, token = AuthToken.objects.create(user, expiry=timedelta(days=expires_days) if expires_days else None)
        # The token alone on stdout, so that a script can capture it; the advice on stderr.
        self.stdout.write(token)
        self.stderr.write("Shown only once: Inventiv keeps only its hash. Send it as `Authorization: Token <token>`.")
