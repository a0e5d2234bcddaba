"""`manage.py launch_plans [PROVIDER]`: print the launch-plan table (README, "Launch plans")."""

from django.core.management.base import BaseCommand

from catalog.plan_table import launch_plan_table


class Command(BaseCommand):
    help = "Print, as Markdown, the launch plan or the refusal of every model on every instance type of a provider."

    def add_arguments(self, parser):
        parser.add_argument("provider", nargs="?", default="scaleway", help="provider code (default: scaleway)")

    def handle(self, *args, provider: str, **options):
        self.stdout.write(launch_plan_table(provider=provider))
