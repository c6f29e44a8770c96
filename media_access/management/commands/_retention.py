"""The shape of the retention commands (delete_watch_analytics,
delete_playback_log): keep ``MEDIA_ACCESS_<setting>`` days, or ``--days``."""

from django.core.management.base import BaseCommand, CommandError


class RetentionCommand(BaseCommand):
    setting_name = ""  # e.g. "ANALYTICS_RETENTION_DAYS", for --help

    def default_days(self):
        """The setting's value (read by name where it is named)."""
        raise NotImplementedError

    def delete_expired(self, days):
        """Delete what is older than ``days``; returns how many rows."""
        raise NotImplementedError

    def describe(self, deleted, days):
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None,
            help=f"Keep this many days instead of MEDIA_ACCESS_{self.setting_name}.",
        )

    def handle(self, *args, days=None, **options):
        days = self.default_days() if days is None else days
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise CommandError(f"The retention must be a whole number of days, not {days!r}.")
        self.stdout.write(self.describe(self.delete_expired(days), days))
