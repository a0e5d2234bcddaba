"""Re-encrypt every secret stored at rest with the newest key of INVENTIV_ENCRYPTION_KEYS (README, "Rotating
the encryption key"). Prints what it did per column; fails if a stored secret cannot be decrypted."""

from django.core.management.base import BaseCommand, CommandError

from inventiv.key_rotation import rotate_encrypted_columns


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the newest key of INVENTIV_ENCRYPTION_KEYS (safe to run again)."

    def handle(self, *args, **options):
        reports = rotate_encrypted_columns()
        for report in reports:
            self.stdout.write(
                f"{report.column}: {report.reencrypted} re-encrypted, {report.already_current} already on the "
                f"newest key, {report.changed_meanwhile} changed meanwhile, {report.unreadable} unreadable"
            )
        unreadable = sum(report.unreadable for report in reports)
        if unreadable:
            raise CommandError(
                f"{unreadable} stored secret(s) could not be decrypted with any key of INVENTIV_ENCRYPTION_KEYS "
                "(or the key derived from SECRET_KEY): put back the key they were encrypted with, then run again"
            )
        self.stdout.write(self.style.SUCCESS("Every stored secret is encrypted with the newest key."))
