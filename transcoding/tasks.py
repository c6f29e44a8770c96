"""Transcoding through the Django Tasks API, on its own backend alias
(``TRANSCODING_TASK_BACKEND``, default ``"transcoding"``) so transcoder
workers can be run, scaled and tested apart from the default queue."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django_tasks import task

from .models import TranscodeJob
from .profiles import ladder_signature, setting

Status = TranscodeJob.Status


@task()
def transcode_video(job_id):
    from .pipeline import run_job

    return run_job(job_id)


def task_backend_alias():
    return setting("TASK_BACKEND", "transcoding")


def send_job(job_id):
    result = transcode_video.using(backend=task_backend_alias()).enqueue(job_id)
    # The immediate backend has run the job by now; never overwrite its state.
    TranscodeJob.objects.filter(pk=job_id).update(task_id=str(result.id)[:64])
    return result


def enqueue_transcode(video):
    """A new job for the video's current original, sent after commit.
    Older unfinished jobs for the video are superseded: their workers stop
    at the next progress report."""
    TranscodeJob.objects.filter(
        video=video, status__in=[Status.QUEUED, Status.PROCESSING]
    ).update(status=Status.SUPERSEDED, finished_at=timezone.now())
    job = TranscodeJob.objects.create(
        video=video, source_name=video.file.name, ladder_signature=ladder_signature()
    )
    transaction.on_commit(lambda: send_job(job.pk))
    return job


def recover_stale_jobs(now=None):
    """Jobs whose worker stopped heartbeating (killed, machine lost) go back
    to the queue, or fail after ``TRANSCODING_MAX_ATTEMPTS``. Returns the
    re-queued ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=setting("LEASE_SECONDS", 120))
    max_attempts = setting("MAX_ATTEMPTS", 3)
    requeued = []
    stale = TranscodeJob.objects.filter(status=Status.PROCESSING, heartbeat_at__lt=cutoff)
    for job in stale:
        # Conditional on the heartbeat we saw: a second recoverer, or the
        # worker coming back to life, makes this a no-op.
        claimed = TranscodeJob.objects.filter(
            pk=job.pk, status=Status.PROCESSING, heartbeat_at=job.heartbeat_at
        )
        if job.attempts >= max_attempts:
            claimed.update(
                status=Status.FAILED,
                error=f"The worker processing this video stopped responding {job.attempts} times; "
                "the file may be too large or crash ffmpeg.",
                finished_at=now,
            )
        elif claimed.update(status=Status.QUEUED, worker="", stage="requeued", eta_seconds=None):
            requeued.append(job.pk)
    # Queued jobs whose task never reached the queue (the enqueue after
    # commit failed, e.g. the queue database was unreachable) are sent again.
    unsent = TranscodeJob.objects.filter(status=Status.QUEUED, task_id="", created_at__lt=cutoff)
    requeued += list(unsent.values_list("pk", flat=True))
    for job_id in requeued:
        send_job(job_id)
    return requeued


def rerun(video):
    """A fresh job for an editor's re-run request (failed or outdated)."""
    with transaction.atomic():
        return enqueue_transcode(video)
