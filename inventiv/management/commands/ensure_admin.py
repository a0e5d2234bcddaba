"""Create the first admin user if there is none, and say how to sign in.

The password comes from INVENTIV_ADMIN_PASSWORD, or is generated and printed once; it is never written
to a file or a log.
"""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the first admin user (INVENTIV_ADMIN_USERNAME / INVENTIV_ADMIN_PASSWORD) if none exists."

    def handle(self, *args, **options):
        User = get_user_model()
        username = os.environ.get("INVENTIV_ADMIN_USERNAME", "admin")
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write(
                "Admin user exists. Forgot the password? Run: .venv/bin/python manage.py changepassword "
                f"{User.objects.filter(is_superuser=True).order_by('pk').first().username}"
            )
            return
        password = os.environ.get("INVENTIV_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        shown = password if "INVENTIV_ADMIN_PASSWORD" not in os.environ else "(from INVENTIV_ADMIN_PASSWORD)"
        self.stdout.write(self.style.SUCCESS(f"Created admin user: {username}  password: {shown}"))
        self.stdout.write("This password is shown only once; change it with `manage.py changepassword`.")
