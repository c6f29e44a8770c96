"""A video's processing status, as the admin shows it."""

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class VideoStatus:
    code: str
    label: str
    progress: int | None = None
    error: str = ""
    eta_seconds: int | None = None
    playable: bool = False
    outdated: bool = False

    @property
    def can_rerun(self):
        return self.code in ("failed", "uploaded") or (self.code == "ready" and self.outdated)


def latest_job(video):
    # Sliced from .all() so a prefetch of transcode_jobs serves the listing.
    jobs = list(video.transcode_jobs.all()[:1]) if video.pk else []
    return jobs[0] if jobs else None


def video_status(video):
    job = latest_job(video)
    if job is None:
        # No job yet: the original is all there is.
        return VideoStatus("uploaded", _("Uploaded"))
    outdated = job.is_outdated(video)
    if job.status == job.Status.QUEUED and job.phase == job.Phase.LADDER:
        # Its playable version is out; the full ladder waits for a worker.
        return VideoStatus(
            "processing",
            _("Playable, waiting for the full ladder") if job.playable else _("Waiting for the full ladder"),
            progress=job.progress,
            playable=job.playable, outdated=outdated,
        )
    if job.status == job.Status.QUEUED:
        return VideoStatus("queued", _("Queued"), progress=0, outdated=outdated)
    if job.status == job.Status.PROCESSING:
        label = _("Processing, playable") if job.playable else _("Processing")
        return VideoStatus(
            "processing", label, progress=job.progress, eta_seconds=job.eta_seconds,
            playable=job.playable, outdated=outdated,
        )
    if job.status == job.Status.READY:
        return VideoStatus(
            "ready", _("Ready (outdated)") if outdated else _("Ready"), outdated=outdated, playable=True
        )
    if job.status == job.Status.FAILED:
        return VideoStatus("failed", _("Failed"), error=job.error or _("Processing failed."), outdated=outdated)
    return VideoStatus("uploaded", _("Uploaded"), outdated=True)
