"""Background cleanup of resumable uploads, through the Django Tasks API on
the default backend. Run ``expire_uploads_task.enqueue()`` from a scheduler
(or the ``expire_uploads`` management command from cron) every hour or so."""

from django_tasks import task


@task()
def expire_uploads_task():
    from .completion import expire_uploads

    return expire_uploads()
