from django.core.management import call_command
from django.core.management.base import BaseCommand

from catalog.models import Provider


class Command(BaseCommand):
    help = "Load the catalog seed on an empty database; leave an existing catalog (and operators' edits) alone."

    def handle(self, *args, **options):
        if Provider.objects.exists():
            self.stdout.write("Catalog present; `manage.py loaddata catalog` resets it to the seed values.")
            return
        call_command("loaddata", "catalog", verbosity=options["verbosity"])
