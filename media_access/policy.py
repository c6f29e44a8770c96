"""Who may watch which video on which page: the one place that decides.

Every media response (watch, download, the player's choice of message) asks
``can_watch(request, page, video)``; nothing else grants access. Decisions are
never cached beyond the request, so a revoked grant or a removed group
membership takes effect on the next request.
"""

import enum
from dataclasses import dataclass

from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils import timezone
from wagtail.models import BaseViewRestriction, Page, ReferenceIndex


class Outcome(enum.Enum):
    ALLOWED = "allowed"
    # The visitor might be allowed after signing in.
    LOGIN_REQUIRED = "login_required"
    FORBIDDEN = "forbidden"
    # Unknown, unpublished, or the video is not on that page: the same answer
    # whether or not the objects exist.
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    can_download: bool = False

    @property
    def allowed(self):
        return self.outcome is Outcome.ALLOWED


def can_watch(request, page, video):
    """Decide whether this request may receive the bytes of ``video`` as shown on ``page``.

    All of these must hold: the page is live (or the user may edit it, for
    previews); the video is used on that page; Wagtail's page privacy on the
    page and every ancestor accepts the request; and, if the page has viewer
    grants, one that has not expired names the user or one of their groups.
    """
    user = request.user
    page_permissions = page.permissions_for_user(user) if user.is_authenticated else None
    may_edit = bool(page_permissions and page_permissions.can_edit())

    if not page.live and not may_edit:
        return Decision(Outcome.NOT_FOUND, "unpublished")
    if not video_is_on_page(video, page, include_draft=may_edit):
        return Decision(Outcome.NOT_FOUND, "not_on_page")

    for restriction in page.get_view_restrictions():
        if not restriction.accept_request(request):
            if restriction.restriction_type == BaseViewRestriction.PASSWORD:
                return Decision(Outcome.FORBIDDEN, "password")
            if not user.is_authenticated:
                return Decision(Outcome.LOGIN_REQUIRED, "privacy")
            return Decision(Outcome.FORBIDDEN, "privacy")

    grants = list(page.viewer_grants.all()) if not may_edit else []
    if may_edit:
        return Decision(Outcome.ALLOWED, "editor", can_download=True)
    if not grants:
        return Decision(Outcome.ALLOWED, "open")
    if not user.is_authenticated or not user.is_active:
        return Decision(Outcome.LOGIN_REQUIRED, "grants")
    now = timezone.now()
    matching = [grant for grant in grants if grant.is_active(now) and _names_user(grant, user)]
    if not matching:
        return Decision(Outcome.FORBIDDEN, "no_grant")
    return Decision(Outcome.ALLOWED, "grant", can_download=any(g.can_download for g in matching))


def _names_user(grant, user):
    if grant.user_id is not None:
        return grant.user_id == user.pk
    return grant.group_id in _group_ids(user)


def _group_ids(user):
    # Memoised on the user object, which lives for one request only.
    if not hasattr(user, "_media_access_group_ids"):
        user._media_access_group_ids = set(user.groups.values_list("pk", flat=True))
    return user._media_access_group_ids


def video_is_on_page(video, page, *, include_draft=False):
    """The video is used on the page: its main field or its body (or, for
    other page types, anything the reference index records)."""
    specific = page.specific
    if getattr(specific, "video_id", None) == video.pk:
        return True
    if hasattr(specific, "videos"):
        if video.pk in {v.pk for v in specific.videos()}:
            return True
        if include_draft and page.has_unpublished_changes:
            draft = page.get_latest_revision_as_object()
            return video.pk in {v.pk for v in draft.videos()}
        return False
    return ReferenceIndex.get_references_to(video).filter(
        base_content_type=ContentType.objects.get_for_model(Page),
        object_id=str(page.pk),
    ).exists()
