"""`manage.py sync_catalog PROVIDER`: refresh a provider's GPU types, prices and zone availability."""

from django.core.management.base import BaseCommand, CommandError

from catalog.models import Provider
from catalog.sync import sync_provider_catalog
from providers.base import ProviderError


class Command(BaseCommand):
    help = "Refresh a provider's GPU types, prices and zone availability from the provider's own catalog."

    def add_arguments(self, parser):
        parser.add_argument("provider", help="provider code, e.g. scaleway")

    def handle(self, *args, provider: str, **options):
        try:
            row = Provider.objects.get(code=provider)
        except Provider.DoesNotExist:
            known = ", ".join(Provider.objects.values_list("code", flat=True)) or "none"
            raise CommandError(f"no provider with code {provider!r} (known: {known})") from None
        try:
            result = sync_provider_catalog(row)
        except ProviderError as error:
            # One line an operator can act on; CommandError exits with status 1 and no traceback.
            raise CommandError(f"{provider}: {error.message}".replace("\n", " ")) from None
        self.stdout.write(result.summary())
