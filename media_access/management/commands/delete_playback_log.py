from django.core.management.base import BaseCommand, CommandError

from ...access_log import delete_expired
from ...conf import setting


class Command(BaseCommand):
    help = (
        "Delete playback-log entries that started more than MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS "
        "days ago. Run it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None,
            help="Keep this many days instead of MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS.",
        )

    def handle(self, *args, days=None, **options):
        days = setting("PLAYBACK_LOG_RETENTION_DAYS") if days is None else days
        if not isinstance(days, int) or isinstance(days, bool) or days < 0:
            raise CommandError(f"The retention must be a whole number of days, not {days!r}.")
        deleted = delete_expired(days=days)
        self.stdout.write(f"Deleted {deleted} playback-log entr{'y' if deleted == 1 else 'ies'} older than {days} day(s).")
