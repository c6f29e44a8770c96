from ...access_log import delete_expired
from ...conf import setting
from ._retention import RetentionCommand


class Command(RetentionCommand):
    help = (
        "Delete playback-log entries that started more than MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS "
        "days ago. Run it daily."
    )
    setting_name = "PLAYBACK_LOG_RETENTION_DAYS"

    def default_days(self):
        return setting("PLAYBACK_LOG_RETENTION_DAYS")

    def delete_expired(self, days):
        return delete_expired(days=days)

    def describe(self, deleted, days):
        return f"Deleted {deleted} playback-log entr{'y' if deleted == 1 else 'ies'} older than {days} day(s)."
