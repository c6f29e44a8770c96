import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .. import get_video_model_string


class Upload(models.Model):
    """One resumable upload, from its first byte to its Video (or its refusal).

    The id is unguessable and is the only name the client knows: the staged
    bytes are kept under it (``staging.path_for``), never under a name the
    client sent; ``filename`` is data only."""

    class State(models.TextChoices):
        RECEIVING = "receiving", _("receiving")
        PROCESSING = "processing", _("processing")
        COMPLETE = "complete", _("complete")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Backend(models.TextChoices):
        TUS = "tus", "tus"
        S3 = "s3", "s3"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    collection = models.ForeignKey(
        "wagtailcore.Collection", on_delete=models.CASCADE, related_name="+", verbose_name=_("collection")
    )
    title = models.CharField(_("title"), max_length=255, blank=True)
    filename = models.CharField(_("file name"), max_length=255)
    length = models.PositiveBigIntegerField(_("size"))
    offset = models.PositiveBigIntegerField(_("bytes received"), default=0)
    backend = models.CharField(_("backend"), max_length=8, choices=Backend.choices)
    video_key = models.UUIDField(default=uuid.uuid4, editable=False)
    s3_key = models.CharField(max_length=255, blank=True)
    s3_upload_id = models.CharField(max_length=255, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.RECEIVING)
    error = models.TextField(_("error"), blank=True)
    video = models.ForeignKey(
        get_video_model_string(), on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("started at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        app_label = "private_video"
        ordering = ["-created_at"]
        verbose_name = _("upload")
        verbose_name_plural = _("uploads")
        indexes = [models.Index(fields=["state", "expires_at"], name="private_vid_upload_expiry")]

    def __str__(self):
        return self.filename

    @property
    def progress(self):
        """Received fraction, 0..1."""
        return min(1.0, self.offset / self.length) if self.length else 0.0
