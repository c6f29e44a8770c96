"""Background cleanup of watch analytics, through the Django Tasks API on the
default backend. Run ``delete_watch_analytics_task.enqueue()`` from a
scheduler (or the ``delete_watch_analytics`` management command from cron)
once a day."""

from django_tasks import task


@task()
def delete_watch_analytics_task():
    """Delete viewings older than MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS; returns how many."""
    from .analytics import delete_expired

    return delete_expired()
