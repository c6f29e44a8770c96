"""Background cleanup of watch analytics and the playback log, through the
Django Tasks API on the default backend. Run ``delete_watch_analytics_task.enqueue()``
and ``delete_playback_log_task.enqueue()`` from a scheduler (or the
``delete_watch_analytics`` and ``delete_playback_log`` management commands
from cron) once a day."""

from django_tasks import task


@task()
def delete_watch_analytics_task():
    """Delete viewings older than MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS; returns how many."""
    from .analytics import delete_expired

    return delete_expired()


@task()
def delete_playback_log_task():
    """Delete playback-log entries older than MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS; returns how many."""
    from .access_log import delete_expired

    return delete_expired()
