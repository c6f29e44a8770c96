"""What editors add to a video besides its file: captions (their own
objects, never renditions, so a re-run of the transcode keeps them) and
chapters. Both are delivered by media_access behind the same policy and
signed URLs as the renditions (private_video.layout.text_track_name)."""

import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from wagtail.models import Orderable

from . import get_video_model_string
from .layout import text_track_name
from .storage import private_storage


def caption_upload_to(instance, filename):
    return text_track_name(instance.video.key, "captions", secrets.token_hex(6))


class Caption(models.Model):
    """One text track of a video: its cues as normalised WebVTT in the private
    storage, and their plain text (for admin search and the page transcript)."""

    class Kind(models.TextChoices):
        SUBTITLES = "subtitles", _("Subtitles")
        CAPTIONS = "captions", _("Captions (with sounds, for deaf and hard-of-hearing viewers)")
        DESCRIPTIONS = "descriptions", _("Audio descriptions")

    video = models.ForeignKey(
        get_video_model_string(), on_delete=models.CASCADE, related_name="captions", verbose_name=_("video")
    )
    # A BCP 47 language tag: "en", "fr-CA", "zh-Hant", "ar".
    language = models.CharField(_("language"), max_length=35)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.SUBTITLES)
    label = models.CharField(_("label"), max_length=100, help_text=_("What viewers see in the captions menu."))
    is_default = models.BooleanField(_("default"), default=False)
    file = models.FileField(_("file"), storage=private_storage, upload_to=caption_upload_to, max_length=255)
    text = models.TextField(_("text"), blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-is_default", "language", "kind"]
        verbose_name = _("caption track")
        verbose_name_plural = _("caption tracks")
        constraints = [
            models.UniqueConstraint(fields=["video", "language", "kind"], name="private_video_caption_unique_language")
        ]

    def __str__(self):
        return self.label


class Chapter(Orderable):
    """A named point in the video; media_access serves them as a WebVTT chapters track."""

    video = ParentalKey(
        get_video_model_string(), on_delete=models.CASCADE, related_name="chapters", verbose_name=_("video")
    )
    start = models.FloatField(_("start (seconds)"))
    title = models.CharField(_("title"), max_length=255)

    class Meta(Orderable.Meta):
        ordering = ["start", "sort_order"]
        verbose_name = _("chapter")
        verbose_name_plural = _("chapters")

    def __str__(self):
        return self.title

    @property
    def start_display(self):
        """"1:05" or "1:02:03" (with a fraction when there is one)."""
        whole = int(self.start)
        fraction = round(self.start - whole, 3)
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        text = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
        return text + (f"{fraction:.3f}"[1:].rstrip("0") if fraction else "")
