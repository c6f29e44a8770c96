import re
import uuid

from django.conf import settings
from django.db import models
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from modelcluster.contrib.taggit import ClusterTaggableManager
from modelcluster.fields import ParentalKey
from modelcluster.models import ClusterableModel
from taggit.models import TaggedItemBase
from wagtail.admin.panels import FieldPanel
from wagtail.models import CollectionMember
from wagtail.search import index

from .layout import original_name
from .probe import container_extension
from .storage import private_storage

_SAFE_EXTENSION = re.compile(r"^\.[a-z0-9]{1,8}$")


def video_upload_to(instance, filename):
    """An unguessable key per upload; the uploader's filename is kept as data
    only. The extension is the container ffprobe detected (``apply_probe``
    runs before the file is saved), never the one in the uploader's name: an
    MP4 called "clip.m3u8" is stored as .mp4. Unprobed files get none."""
    extension = "." + container_extension(instance.container, instance.probe_data) if instance.container else ""
    if not _SAFE_EXTENSION.match(extension):
        extension = ""
    instance.key = uuid.uuid4()
    return original_name(instance.key, extension)


class VideoTag(TaggedItemBase):
    """The tags of the library's own Video. Always that model, whatever
    ``PRIVATE_VIDEO_MODEL`` says (so the library's migrations never change
    with a site's setting): a site's own video model declares its own tag
    model and ``tags`` field, as its own migrations hold them::

        class MyVideoTag(TaggedItemBase):
            content_object = ParentalKey("mysite.MyVideo", on_delete=models.CASCADE,
                                         related_name="tagged_items")

        class MyVideo(AbstractVideo):
            tags = ClusterTaggableManager(through=MyVideoTag, blank=True, verbose_name=_("tags"))

    (the system check private_video.E004 says so when it is missing)."""

    content_object = ParentalKey(
        "private_video.Video", on_delete=models.CASCADE, related_name="tagged_items"
    )


class AbstractVideo(CollectionMember, index.Indexed, ClusterableModel):
    """The fields and behaviour every video model has. A site that needs more
    fields subclasses this and names its model in ``PRIVATE_VIDEO_MODEL``
    (before its first migrate), as with Wagtail's custom document model."""

    title = models.CharField(_("title"), max_length=255)
    file = models.FileField(
        _("file"), storage=private_storage, upload_to=video_upload_to, max_length=255
    )
    key = models.UUIDField(_("key"), default=uuid.uuid4, editable=False, db_index=True)
    original_filename = models.CharField(_("original filename"), max_length=255, blank=True, editable=False)
    file_size = models.PositiveBigIntegerField(_("file size"), null=True, editable=False)
    tags = ClusterTaggableManager(through=VideoTag, blank=True, verbose_name=_("tags"))
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True, db_index=True)
    uploaded_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by user"),
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    # Probed from the content by ffprobe at upload time.
    duration = models.FloatField(_("duration"), null=True, blank=True, editable=False)
    width = models.PositiveIntegerField(_("width"), null=True, blank=True, editable=False)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True, editable=False)
    video_codec = models.CharField(_("video codec"), max_length=32, blank=True, editable=False)
    audio_codec = models.CharField(_("audio codec"), max_length=32, blank=True, editable=False)
    container = models.CharField(_("container"), max_length=64, blank=True, editable=False)
    probe_data = models.JSONField(_("probe data"), default=dict, blank=True, editable=False)

    # The editor's chosen poster: an uploaded image or a picked frame, stored
    # as JPEG under the renditions prefix (layout.poster_name); empty: the
    # transcoder's own poster. ``poster_time`` says which frame was picked.
    poster_file = models.FileField(
        _("poster"), storage=private_storage, blank=True, editable=False, max_length=255
    )
    poster_time = models.FloatField(_("poster frame (seconds)"), null=True, blank=True, editable=False)

    search_fields = [
        *CollectionMember.search_fields,
        index.SearchField("title", boost=10),
        index.AutocompleteField("title"),
        index.SearchField("original_filename"),
        index.RelatedFields("tags", [index.SearchField("name", boost=10)]),
        # Admin search finds a video by a word said in it.
        index.RelatedFields("captions", [index.SearchField("text")]),
        index.FilterField("uploaded_by_user"),
    ]

    panels = [
        FieldPanel("title"),
        FieldPanel("file"),
        FieldPanel("collection"),
        FieldPanel("tags"),
    ]

    class Meta:
        abstract = True
        ordering = ["-created_at", "-pk"]
        verbose_name = _("video")
        verbose_name_plural = _("videos")
        permissions = [("choose_video", _("Can choose video"))]

    def __str__(self):
        return self.title

    @property
    def filesize_display(self):
        return filesizeformat(self.file_size) if self.file_size else ""

    @property
    def duration_display(self):
        if self.duration is None:
            return ""
        total = int(round(self.duration))
        hours, rest = divmod(total, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"

    def apply_probe(self, info):
        self.duration = info.duration
        width, height = info.display_size or (info.width, info.height)
        self.width, self.height = width, height
        self.video_codec = info.video_codec[:32]
        self.audio_codec = info.audio_codec[:32]
        self.container = info.format_name[:64]
        self.probe_data = {
            # ffprobe's "filename" is a server path (a temporary one at upload).
            "format": {k: v for k, v in info.raw.get("format", {}).items() if k != "filename"},
            "streams": info.raw.get("streams", []),
        }

    def get_admin_edit_url(self):
        return reverse("private_video:edit", args=[self.pk])


class Video(AbstractVideo):
    """The library's video model; ``PRIVATE_VIDEO_MODEL`` may name a site's own
    subclass of AbstractVideo instead (as WAGTAILDOCS_DOCUMENT_MODEL does)."""

    class Meta(AbstractVideo.Meta):
        pass


# Captions and chapters: their own models, beside the video's.
from .tracks import Caption, Chapter  # noqa: E402,F401
from .uploads.models import Upload  # noqa: E402,F401
