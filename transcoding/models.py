"""Renditions of a video and the jobs that make them."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from private_video import get_video_model_string
from private_video.layout import rendition_name
from private_video.storage import private_storage


def rendition_upload_to(instance, filename):
    # Names are set by the publisher (see ``transcoding.publish``); this is
    # only the fallback for a file saved through the field directly.
    return rendition_name(instance.video.key, filename)


class Rendition(models.Model):
    """One published output of a video, served by ``media_access`` by name.

    Names (``<s>`` is the picture's short side, so a portrait 720x1280 rung
    is ``720p``): ``mp4-<s>p`` (progressive MP4 with the first audio track),
    ``hls-master`` (master playlist), ``hls-<s>p`` (a rung's media playlist,
    video only), ``hls-<s>p-media`` (that rung's single fMP4 file, addressed
    by byte ranges), ``hls-audio<n>`` and ``hls-audio<n>-media`` (the n-th
    audio track of the source, an alternate audio rendition every rung
    plays with), ``poster``, ``storyboard`` and ``storyboard-vtt``. Playlists and the storyboard index refer to their
    siblings by rendition name, relative to their own URL, so they work under
    any ``.../<rendition name>`` URL scheme.

    ``kind`` says what a rendition is, so nothing parses names to find out.
    """

    class Kind(models.TextChoices):
        MP4 = "mp4", _("Progressive MP4")
        HLS_MASTER = "hls-master", _("HLS master playlist")
        # A rung's media playlist (video only).
        HLS_VIDEO = "hls-video", _("HLS video playlist")
        # An audio track's media playlist.
        HLS_AUDIO = "hls-audio", _("HLS audio playlist")
        # The fMP4 file a media playlist's byte ranges point into.
        HLS_MEDIA = "hls-media", _("HLS media file")
        POSTER = "poster", _("Poster")
        STORYBOARD = "storyboard", _("Storyboard image")
        STORYBOARD_VTT = "storyboard-vtt", _("Storyboard cues")
        CAPTIONS = "captions", _("Captions")

    video = models.ForeignKey(get_video_model_string(), related_name="renditions", on_delete=models.CASCADE)
    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=32, choices=Kind.choices, db_index=True)
    file = models.FileField(storage=private_storage, upload_to=rendition_upload_to, max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    bitrate = models.PositiveIntegerField(null=True, blank=True, help_text=_("bits per second"))
    codecs = models.CharField(max_length=100, blank=True, help_text=_("RFC 6381, e.g. avc1.64001f,mp4a.40.2"))
    duration = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["video", "name"]
        constraints = [
            models.UniqueConstraint(fields=["video", "name"], name="private_video_transcoding_rendition_unique_name")
        ]

    def __str__(self):
        return f"{self.video_id}/{self.name}"


class TranscodeJob(models.Model):
    """One run of the pipeline for one original. The latest job per video is its status.

    A job runs as two tasks, one per ``phase``: the quick playable version,
    then the full ladder. Between them it is queued again (``phase`` says
    for which), so every waiting video gets its playable version before any
    worker starts a full ladder.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        PROCESSING = "processing", _("Processing")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")
        SUPERSEDED = "superseded", _("Superseded")

    class Phase(models.TextChoices):
        PLAYABLE = "playable", _("Quick playable version")
        LADDER = "ladder", _("Full ladder")

    video = models.ForeignKey(get_video_model_string(), related_name="transcode_jobs", on_delete=models.CASCADE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.PLAYABLE)
    # The original this job was made for and the ladder it used: either
    # changing makes the job outdated.
    source_name = models.CharField(max_length=255)
    ladder_signature = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=32, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    eta_seconds = models.PositiveIntegerField(null=True, blank=True)
    playable = models.BooleanField(default=False)
    # What ffprobe found beyond the Video's own fields: rotation, frame
    # rate, bit rate, pixel format, profile, audio presence.
    source_info = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    stderr_tail = models.TextField(blank=True)
    # The attempt now running (or queued): 1 + the times a worker lost it.
    attempts = models.PositiveSmallIntegerField(default=0)
    # The task of the current phase; empty while not (yet) in the task queue.
    task_id = models.CharField(max_length=64, blank=True)
    worker = models.CharField(max_length=128, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the current phase was (re-)queued: an unsent task is sent again after a while.
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    playable_at = models.DateTimeField(null=True, blank=True)
    ladder_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        get_latest_by = "created_at"

    @property
    def is_active(self):
        return self.status in (self.Status.QUEUED, self.Status.PROCESSING)

    def is_outdated(self, video=None):
        """Made from another original, or with another ladder than today's."""
        from .profiles import ladder_signature

        video = video or self.video
        return self.source_name != video.file.name or self.ladder_signature != ladder_signature()

    def __str__(self):
        return f"job {self.pk} for video {self.video_id}: {self.status}"


class RetiredFile(models.Model):
    """A published file that a newer set replaced. Players may still hold
    signed URLs to it, so it is deleted only after ``delete_after`` (see
    ``transcoding.publish.delete_retired_files``); the row's deletion
    deletes the file, after commit."""

    video = models.ForeignKey(get_video_model_string(), related_name="+", on_delete=models.CASCADE)
    name = models.CharField(max_length=255)
    retired_at = models.DateTimeField(default=timezone.now)
    delete_after = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.name
