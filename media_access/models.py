from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from wagtail.admin.panels import FieldPanel
from wagtail.models import Orderable

from private_video import get_video_model_string

from .widgets import UsernameInput


class ViewerGrant(Orderable):
    """Who may watch the videos on one page.

    A page with no grants is open to everyone who passes Wagtail's page
    privacy; once a page has grants (even expired ones), only the granted
    users and groups may watch. Deleting the user or group a grant names
    keeps the grant, naming nobody: the page stays closed (a cascade would
    have left it with no grants, open to everyone).
    """

    page = ParentalKey(
        "wagtailcore.Page", verbose_name=_("page"), on_delete=models.CASCADE, related_name="viewer_grants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    group = models.ForeignKey(
        "auth.Group",
        verbose_name=_("group"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    can_download = models.BooleanField(
        _("may download"),
        default=False,
        help_text=_("Also offer the original file as a download."),
    )

    # The user is typed by username (widgets.UsernameInput): a list of every
    # account would hand the user directory to anyone who may edit a page.
    panels = [
        FieldPanel("user", widget=UsernameInput(), help_text=_("Their username.")),
        FieldPanel("group"),
        FieldPanel("expires_at"),
        FieldPanel("can_download"),
    ]

    class Meta(Orderable.Meta):
        verbose_name = _("viewer grant")
        verbose_name_plural = _("viewer grants")
        constraints = [
            # Never both; neither once the user or group it named was deleted.
            models.CheckConstraint(
                condition=Q(user__isnull=True) | Q(group__isnull=True),
                name="private_video_access_grant_not_user_and_group",
            )
        ]

    def __str__(self):
        who = self.user or self.group or _("nobody (the user or group was deleted)")
        if self.expires_at:
            return _("%(who)s until %(expires_at)s") % {
                "who": who, "expires_at": f"{self.expires_at:%Y-%m-%d %H:%M}",
            }
        return f"{who}"

    def clean(self):
        both = self.user_id and self.group_id
        neither = not (self.user_id or self.group_id)
        if both or (neither and not self.names_nobody_already()):
            raise ValidationError(_("Choose either a user or a group."))

    def names_nobody_already(self):
        """The stored grant's user or group was deleted: it may be kept as it
        is (it keeps the page closed), never made anew."""
        return bool(self.pk) and ViewerGrant.objects.filter(pk=self.pk, user=None, group=None).exists()

    def is_active(self, now=None):
        return self.expires_at is None or self.expires_at > (now or timezone.now())

    def audit_data(self):
        return {
            "user": self.user_id and self._name_of("user"),
            "group": self.group_id and self._name_of("group"),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "can_download": self.can_download,
        }

    def _name_of(self, field):
        # Deleting a group or user deletes its grants in the same collector
        # run, and the grant's log entry may be written after the row is gone.
        try:
            return str(getattr(self, field))
        except ObjectDoesNotExist:
            return f"#{getattr(self, field + '_id')}"


class PlaybackLogEntry(models.Model):
    """One record per playback session (not per range request) of a video on a page."""

    session = models.CharField(_("session"), max_length=64, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    username = models.CharField(_("username"), max_length=150, blank=True)
    page = models.ForeignKey(
        "wagtailcore.Page", verbose_name=_("page"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    page_title = models.CharField(_("page title"), max_length=255, blank=True)
    video = models.ForeignKey(
        get_video_model_string(), verbose_name=_("video"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    video_title = models.CharField(_("video title"), max_length=255, blank=True)
    rendition = models.CharField(_("rendition"), max_length=64, blank=True)
    allowed = models.BooleanField(_("allowed"))
    reason = models.CharField(_("reason"), max_length=32, blank=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("playback log entry")
        verbose_name_plural = _("playback log entries")
        indexes = [models.Index(fields=["session", "page", "video", "allowed", "started_at"])]

    def __str__(self):
        template = (
            _("%(user)s allowed %(video)s on %(page)s") if self.allowed
            else _("%(user)s denied %(video)s on %(page)s")
        )
        return template % {
            "user": self.username or _("anonymous"), "video": self.video_title, "page": self.page_title,
        }


class DecisionScope(models.Model):
    """One row per thing a remembered media decision can rest on ("p:<page
    id>", "u:<user id>", "s:<session key>", "v:<video id>", "schema"), whose
    value database triggers installed by ``media_access.decisions`` replace
    with a random one, in the same transaction, whenever a row it covers
    changes. Random rather than the next number, so a database restored from
    a backup never brings back a value some worker has seen with other data.
    ``touched`` (Unix seconds, the database's clock) lets old rows be pruned;
    ``decisions`` explains why that is safe."""

    key = models.CharField(_("key"), max_length=255, primary_key=True)
    value = models.BigIntegerField(_("value"))
    touched = models.BigIntegerField(_("touched"), db_index=True)

    class Meta:
        verbose_name = _("decision scope")


class PlaybackPosition(models.Model):
    """Where a signed-in viewer left a video, so the player can offer to
    resume there. One row per user and video, whichever page showed it;
    written only by the viewer's own requests (``views.playback.save_position``)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    video = models.ForeignKey(
        get_video_model_string(), verbose_name=_("video"), on_delete=models.CASCADE, related_name="+"
    )
    position = models.FloatField(_("position (seconds)"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("playback position")
        verbose_name_plural = _("playback positions")
        constraints = [
            models.UniqueConstraint(fields=["user", "video"], name="private_video_access_position_unique")
        ]

    def __str__(self):
        return f"{self.user_id} @ {self.video_id}: {self.position:.1f} s"


class Viewing(models.Model):
    """One playback of a video on a page by one viewer (watch analytics): the
    seconds the player reported as played, merged from every beacon
    (``views.analytics.watch_beacon``). ``viewer`` identifies the browser
    without storing anything that could be replayed or traced back: an HMAC
    of the viewer cookie (or the signed-in user's id), never an IP address or
    a session key. ``seconds`` is a bitmap, bit ``i`` (LSB first within each
    byte) set when second ``[i, i + 1)`` was played; merging is a bitwise OR,
    so a beacon sent twice counts once."""

    video = models.ForeignKey(
        get_video_model_string(), verbose_name=_("video"), on_delete=models.CASCADE, related_name="+"
    )
    page = models.ForeignKey(
        "wagtailcore.Page", verbose_name=_("page"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.CASCADE,
        related_name="+",
    )
    viewer = models.CharField(_("viewer"), max_length=64)
    session = models.CharField(_("playback session"), max_length=64)
    seconds = models.BinaryField(_("seconds watched (bitmap)"), default=bytes)
    watched = models.PositiveIntegerField(_("seconds watched"), default=0)
    duration = models.FloatField(_("duration (seconds)"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("viewing")
        verbose_name_plural = _("viewings")
        constraints = [
            models.UniqueConstraint(
                fields=["video", "page", "viewer", "session"], name="private_video_access_viewing_unique"
            )
        ]

    def __str__(self):
        return f"{self.viewer[:8]} @ {self.video_id}: {self.watched} s"
