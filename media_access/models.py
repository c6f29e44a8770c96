from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from modelcluster.fields import ParentalKey
from wagtail.models import Orderable

from private_video import get_video_model_string


class ViewerGrant(Orderable):
    """Who may watch the videos on one page.

    A page with no grants is open to everyone who passes Wagtail's page
    privacy; once a page has grants (even expired ones), only the granted
    users and groups may watch.
    """

    page = ParentalKey("wagtailcore.Page", on_delete=models.CASCADE, related_name="viewer_grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    group = models.ForeignKey(
        "auth.Group",
        verbose_name=_("group"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    can_download = models.BooleanField(
        _("may download"),
        default=False,
        help_text=_("Also offer the original file as a download."),
    )

    class Meta(Orderable.Meta):
        verbose_name = _("viewer grant")
        verbose_name_plural = _("viewer grants")
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, group__isnull=True) | Q(user__isnull=True, group__isnull=False)),
                name="private_video_access_grant_user_xor_group",
            )
        ]

    def __str__(self):
        who = self.user or self.group
        return f"{who}" + (f" until {self.expires_at:%Y-%m-%d %H:%M}" if self.expires_at else "")

    def clean(self):
        if bool(self.user_id) == bool(self.group_id):
            raise ValidationError(_("Choose either a user or a group."))

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

    session = models.CharField(max_length=64, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    page = models.ForeignKey(
        "wagtailcore.Page", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    page_title = models.CharField(max_length=255, blank=True)
    video = models.ForeignKey(get_video_model_string(), null=True, on_delete=models.SET_NULL, related_name="+")
    video_title = models.CharField(max_length=255, blank=True)
    rendition = models.CharField(max_length=64, blank=True)
    allowed = models.BooleanField()
    reason = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("playback log entry")
        verbose_name_plural = _("playback log entries")
        indexes = [models.Index(fields=["session", "page", "video", "allowed", "started_at"])]

    def __str__(self):
        outcome = "allowed" if self.allowed else "denied"
        return f"{self.username or 'anonymous'} {outcome} {self.video_title} on {self.page_title}"


class PolicyGeneration(models.Model):
    """One row whose value changes, in the same transaction, with every row a
    remembered media decision was read from (database triggers installed by
    ``media_access.decisions``). A new value is random rather than the next
    number, so a database restored from a backup never brings back a value
    some worker has seen with other data."""

    value = models.BigIntegerField()

    class Meta:
        verbose_name = _("policy generation")
