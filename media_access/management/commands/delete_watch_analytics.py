from ...analytics import delete_expired
from ...conf import setting
from ._retention import RetentionCommand


class Command(RetentionCommand):
    help = (
        "Delete watch analytics (viewings) last updated more than MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS "
        "days ago. Run it daily."
    )
    setting_name = "ANALYTICS_RETENTION_DAYS"

    def default_days(self):
        return setting("ANALYTICS_RETENTION_DAYS")

    def delete_expired(self, days):
        return delete_expired(days=days)

    def describe(self, deleted, days):
        return f"Deleted {deleted} viewing(s) older than {days} day(s)."
