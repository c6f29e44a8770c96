"""Transcoding through the Django Tasks API, on its own backend alias
(``TRANSCODING_TASK_BACKEND``, default ``"transcoding"``) so transcoder
workers can be run, scaled and tested apart from the default queue.

A job is sent twice, once per phase: first the quick playable version, then
the full ladder. Playable tasks go ahead of ladder tasks: by priority on a
backend that has priorities (the database backend), else on their own queue
(``TRANSCODING_PLAYABLE_QUEUE``) that workers read before the ladder queue
(RQ). So a burst of uploads is playable before any full ladder starts."""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks import task

from .conf import setting
from .models import TranscodeJob
from .profiles import ladder_signature

logger = logging.getLogger(__name__)

Status = TranscodeJob.Status
Phase = TranscodeJob.Phase

# Database backend: higher runs first (django-tasks allows -100..100).
PHASE_PRIORITY = {Phase.PLAYABLE: 50, Phase.LADDER: -50}


@task()
def transcode_video(job_id, phase=Phase.PLAYABLE):
    from .pipeline import run_job

    return run_job(job_id, phase)


def task_backend_alias():
    return setting("TASK_BACKEND")


def phase_queues():
    """Queue names for backends without priorities, playable first."""
    return [
        setting("PLAYABLE_QUEUE"),
        setting("LADDER_QUEUE"),
    ]


def _task_for(phase):
    from django_tasks import task_backends

    backend = task_backends[task_backend_alias()]
    if backend.supports_priority:
        return transcode_video.using(backend=backend.alias, priority=PHASE_PRIORITY[phase])
    playable_queue, ladder_queue = phase_queues()
    return transcode_video.using(
        backend=backend.alias, queue_name=playable_queue if phase == Phase.PLAYABLE else ladder_queue
    )


def send_job(job_id):
    """Hand the job's current phase to the task backend. A failure is logged,
    not raised: the job stays queued without a task id and
    ``recover_stale_jobs`` sends it again. Returns the task result or None."""
    phase = TranscodeJob.objects.filter(pk=job_id).values_list("phase", flat=True).first()
    if phase is None:
        return None
    try:
        result = _task_for(phase).enqueue(job_id, phase)
    except Exception:  # noqa: BLE001 - the queue may be down; recovery retries
        logger.exception("could not send transcode job %s (%s) to the task queue; will retry", job_id, phase)
        return None
    # The immediate backend has run the job by now (and may have sent its
    # next phase): only fill in a task id nobody has set since.
    TranscodeJob.objects.filter(pk=job_id, phase=phase, task_id="").update(task_id=str(result.id)[:64])
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


def resend_after_seconds():
    """How long a queued job may wait for its task id before it is sent again."""
    configured = setting("RESEND_AFTER_SECONDS")
    if configured is None:
        return float(min(30, setting("LEASE_SECONDS")))
    return float(configured)


def recover_stale_jobs(now=None):
    """Jobs whose worker stopped heartbeating (killed, machine lost) go back
    to the queue in the phase they were in, or fail after
    ``TRANSCODING_MAX_ATTEMPTS``; queued jobs that never reached the task
    queue (a send failed) are sent again. Returns the ids sent."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=setting("LEASE_SECONDS"))
    max_attempts = setting("MAX_ATTEMPTS")
    stale = TranscodeJob.objects.filter(status=Status.PROCESSING, heartbeat_at__lt=cutoff)
    requeued = []
    for job in stale:
        # Conditional on the heartbeat we saw: a second recoverer, or the
        # worker coming back to life, makes this a no-op.
        claimed = TranscodeJob.objects.filter(
            pk=job.pk, status=Status.PROCESSING, heartbeat_at=job.heartbeat_at
        )
        if job.attempts >= max_attempts:
            claimed.update(
                status=Status.FAILED,
                error=_("The worker processing this video stopped responding %(count)s times; "
                        "the file may be too large or crash ffmpeg.") % {"count": job.attempts},
                finished_at=now,
            )
        # Back in the queue without a task id: sent below, or again on the
        # next pass if sending fails.
        elif claimed.update(
            status=Status.QUEUED, worker="", stage="requeued", eta_seconds=None, task_id="",
            attempts=job.attempts + 1, queued_at=now,
        ):
            requeued.append(job.pk)
    forget_lost_tasks(now)
    unsent = TranscodeJob.objects.filter(
        status=Status.QUEUED, task_id="", queued_at__lt=now - timedelta(seconds=resend_after_seconds())
    ).exclude(pk__in=requeued).order_by("queued_at", "pk")
    sent = []
    for job_id in requeued + list(unsent.values_list("pk", flat=True)):
        if send_job(job_id) is not None:
            sent.append(job_id)
    return sent


# Queued jobs whose task is looked up per housekeeping pass, oldest first.
LOST_TASK_CHECKS = 100


def forget_lost_tasks(now=None):
    """Clear the task id of queued jobs whose task will never run them, so
    ``recover_stale_jobs`` sends them again: the backend no longer knows the
    task (Redis restarted without persistence and lost its queue), or the
    task ended, or has been running a while, without claiming the job (its
    worker lost the database before the claim). A duplicate send is
    harmless: only one task can claim the job. Returns the job ids."""
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks.exceptions import TaskResultDoesNotExist

    backend = task_backends[task_backend_alias()]
    if not backend.supports_get_result:
        return []
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=resend_after_seconds())
    waiting = (
        TranscodeJob.objects.filter(status=Status.QUEUED, queued_at__lt=cutoff)
        .exclude(task_id="").order_by("queued_at", "pk").values_list("pk", "task_id")[:LOST_TASK_CHECKS]
    )
    forgotten = []
    for job_id, task_id in waiting:
        try:
            result = backend.get_result(task_id)
        except TaskResultDoesNotExist:
            pass
        except Exception:  # noqa: BLE001 - the queue is down: the next pass tries again
            logger.warning("could not look up the task of transcode job %s", job_id, exc_info=True)
            break
        else:
            stuck = result.status == TaskResultStatus.RUNNING and (result.started_at or now) < cutoff
            if result.status == TaskResultStatus.READY or (result.status == TaskResultStatus.RUNNING and not stuck):
                continue
        if TranscodeJob.objects.filter(pk=job_id, status=Status.QUEUED, task_id=task_id).update(task_id=""):
            logger.warning("transcode job %s lost its task %s; sending it again", job_id, task_id)
            forgotten.append(job_id)
    return forgotten


def rerun(video):
    """A fresh job for an editor's re-run request (failed or outdated)."""
    with transaction.atomic():
        return enqueue_transcode(video)
