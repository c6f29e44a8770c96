"""Who may watch which video on which page: the one place that decides.

Every media response (watch, download, the player's choice of message) asks
``can_watch(request, page, video)``; nothing else grants access. The policy
itself keeps nothing beyond the request. An allowed decision says whether it
may be remembered (``Decision.cacheable``) and until when (``valid_until``);
``decisions.py`` keeps such decisions until any row they were read from
changes, so a revoked grant or a removed group membership still takes effect
on the next request.

The checks run cheapest and most common first: a viewer with a grant on a live
page costs a handful of small queries; whether the user may edit the page, or
may choose or change the video in the library (several queries each), is
asked only when it can change the answer.

Editing a page is not a right to its videos. A page editor previews a video
that is not on the live page (a draft's, or any on an unpublished or expired
page) only if they may also choose it (the library's collection
permissions), since choosing it is what put it there; downloading an
original takes a grant that allows it or change permission on the video.

A page past its ``expire_at`` is treated as unpublished from that instant,
and a remembered decision ends at it, whether or not ``publish_scheduled``
has run. A changed page password is a new restriction row
(``signal_handlers``), so a session that passed the old one no longer passes.
"""

import enum
from dataclasses import dataclass, replace
from functools import cached_property

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from wagtail import hooks
from wagtail.models import BaseViewRestriction, Page, ReferenceIndex

from private_video import get_video_model
from private_video.page_forms import checks_video_choices
from private_video.pages import VideoPageMixin, holds_videos
from private_video.permissions import video_permission_policy


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
    # Only meaningful when can_watch was asked with download=True.
    can_download: bool = False
    # Allowed from facts that decisions.py watches for change: the live page's
    # own rows, its restrictions and grants, the user and their groups, the
    # session. Never when it rested on the user being an editor (page
    # permissions), on the library's collection permissions (choose, change),
    # or on the asynchronously updated reference index.
    cacheable: bool = False
    # When the decision lapses by itself (the earliest matching grant's
    # expiry); None if only a change can end it.
    valid_until: object = None

    @property
    def allowed(self):
        return self.outcome is Outcome.ALLOWED


class _Viewer:
    """The request's user, with the facts the policy may need, each looked up at most once."""

    def __init__(self, request, page, video):
        self.request = request
        self.user = request.user
        self.page = page
        self.video = video

    @property
    def relied_on_editing(self):
        """An allowing fact the decision cache does not watch was used: page
        permissions or collection permissions on the video."""
        return any(self.__dict__.get(name) is True for name in ("may_edit", "may_choose", "may_change"))

    @property
    def signed_in(self):
        return self.user.is_authenticated and self.user.is_active

    @cached_property
    def may_edit(self):
        if not self.signed_in:
            return False
        return self.page.permissions_for_user(self.user).can_edit()

    @cached_property
    def may_choose(self):
        """May put this video on a page: what previewing a draft's video needs."""
        return self.signed_in and video_permission_policy().user_has_permission_for_instance(
            self.user, "choose", self.video
        )

    @cached_property
    def may_change(self):
        """May edit the video in the library: what downloading it needs without a grant."""
        return self.signed_in and video_permission_policy().user_has_permission_for_instance(
            self.user, "change", self.video
        )

    def grants(self):
        return list(self.page.viewer_grants.all())

    @cached_property
    def group_ids(self):
        return set(self.user.groups.values_list("pk", flat=True))

    def named_by(self, grant):
        if grant.user_id is not None:
            return grant.user_id == self.user.pk
        return grant.group_id in self.group_ids


def is_expired(page, now=None):
    """Past its ``expire_at``: off the air at once, before ``publish_scheduled``
    has unpublished it."""
    return page.expire_at is not None and page.expire_at <= (now or timezone.now())


CHECK_HOOK = "check_video_access"


def can_watch(request, page, video, *, download=False):
    """Decide whether this request may receive the bytes of ``video`` as shown on ``page``.

    The built-in policy (``builtin_decision``) decides first; only when it
    allows do the site's ``check_video_access`` hooks run, each
    ``fn(request, page, video)`` (``page`` the specific page) returning None (no say) or an ``Outcome``
    that refuses (FORBIDDEN, NOT_FOUND, LOGIN_REQUIRED). A hook can take
    access away, never give it: a refusal of the built-in policy is final,
    and a hook answering ALLOWED has no say. While any such hook is
    registered no allowed decision is remembered (``decisions.py`` cannot
    know what a hook's answer rests on), so every request asks the hooks.
    """
    page = stored_page(page)
    if page is None:
        return Decision(Outcome.NOT_FOUND, "unpublished")
    decision = builtin_decision(request, page, video, download=download)
    if not decision.allowed:
        return decision
    checks = hooks.get_hooks(CHECK_HOOK)
    if not checks:
        return decision
    # The specific page, whichever view asks (the media views load a plain
    # Page): a hook written against the site's own page type must see it.
    page = page.specific
    for check in checks:
        outcome = check(request, page, video)
        if outcome is None or outcome is Outcome.ALLOWED:
            continue
        if not isinstance(outcome, Outcome):
            raise TypeError(
                f"A {CHECK_HOOK} hook must return None or a media_access.policy.Outcome, not {outcome!r}"
            )
        return Decision(outcome, CHECK_HOOK)
    return replace(decision, cacheable=False)


def stored_page(page):
    """The page as stored (a base Page), never an object in memory: the admin
    renders drafts, old revisions and workflow previews with the page's own
    template, and the tags there pass that object, whose video, grants, title
    and live flag are the revision's. A draft's video is then a preview (may
    edit and may choose), as on /watch/, and the site's hooks see the live
    page. None when it is gone."""
    if type(page) is Page:
        return page
    return Page.objects.filter(pk=page.pk).first()


def builtin_decision(request, page, video, *, download=False):
    """The policy's own decision, before the site's ``check_video_access`` hooks.

    All of these must hold: the page is live and not past its ``expire_at``
    (or, for a preview, the user may edit the page *and* may choose the
    video); the video is used on that page (a video only in the latest
    draft, for the same previewing editor only); Wagtail's page privacy on the
    page and every ancestor accepts the request; and, if the page has viewer
    grants, one that has not expired names the user or one of their groups
    (editors of the page need none). With ``download=True`` the decision also
    says whether the original may be downloaded: a matching grant's own flag,
    or change permission on the video in the library, never page-edit rights.
    """
    page = stored_page(page)
    if page is None:
        return Decision(Outcome.NOT_FOUND, "unpublished")
    viewer = _Viewer(request, page, video)
    user = viewer.user
    now = timezone.now()

    live = page.live and not is_expired(page, now)
    if not live and not (viewer.may_edit and viewer.may_choose):
        return Decision(Outcome.NOT_FOUND, "unpublished")
    on_page = _where_on_page(video, page)
    if not on_page or not live:
        # Content that is not (or no longer) on the air: a preview, for an
        # editor of the page who may also choose this video.
        if not (viewer.may_edit and viewer.may_choose and (
            on_page or video_is_on_page(video, page, draft=True)
        )):
            return Decision(Outcome.NOT_FOUND, "not_on_page")

    for restriction in page.get_view_restrictions():
        if not restriction.accept_request(request):
            if restriction.restriction_type == BaseViewRestriction.PASSWORD:
                return Decision(Outcome.FORBIDDEN, "password")
            if not user.is_authenticated:
                return Decision(Outcome.LOGIN_REQUIRED, "privacy")
            return Decision(Outcome.FORBIDDEN, "privacy")

    # A remembered decision must not outlive the page's scheduled expiry.
    page_until = page.expire_at if live else None
    grants = viewer.grants()
    if not grants:
        can_download = download and viewer.may_change
        return Decision(
            Outcome.ALLOWED, "open", can_download=can_download,
            cacheable=_cacheable(live, on_page, viewer), valid_until=page_until,
        )
    if not viewer.signed_in:
        return Decision(Outcome.LOGIN_REQUIRED, "grants")
    matching = [grant for grant in grants if grant.is_active(now) and viewer.named_by(grant)]
    if matching:
        granted_download = any(grant.can_download for grant in matching)
        expiries = [grant.expires_at for grant in matching if grant.expires_at is not None]
        if page_until is not None:
            expiries.append(page_until)
        return Decision(
            Outcome.ALLOWED,
            "grant",
            can_download=download and (granted_download or viewer.may_change),
            cacheable=_cacheable(live, on_page, viewer),
            # Until the last matching grant lapses; the earliest is simpler and safe.
            valid_until=min(expiries) if expiries else None,
        )
    if viewer.may_edit:
        return Decision(Outcome.ALLOWED, "editor", can_download=download and viewer.may_change)
    return Decision(Outcome.FORBIDDEN, "no_grant")


def _cacheable(live, on_page, viewer):
    return live and on_page == _OWN_CONTENT and not viewer.relied_on_editing


_OWN_CONTENT = "content"
_REFERENCE_INDEX = "reference_index"


def video_is_on_page(video, page, *, draft=False):
    """The video is used on the page: its main field or its body, in the live
    content (or, with ``draft``, the latest revision), or for other page
    types anything Wagtail's reference index records."""
    if draft:
        if not page.has_unpublished_changes or not checks_video_choices(page.specific_class or type(page)):
            return False
        specific = page.get_latest_revision_as_object()
        attname = _main_video_attname(type(specific))
        if attname and getattr(specific, attname) == video.pk:
            return True
        if holds_videos(specific):
            return video.pk in {v.pk for v in specific.videos()}
        return _in_reference_index(video, page)
    return bool(_where_on_page(video, page))


def _where_on_page(video, page):
    """Where the live page says it uses the video: "content" (the page's own
    rows), "reference_index" (Wagtail's index, updated in a task after a
    publish, so it is never the basis of a remembered decision), or None."""
    model = page.specific_class or type(page)
    if not checks_video_choices(model):
        # Its editors' video choices were never checked (no VideoChoicePageForm).
        return None
    if isinstance(page, model):
        specific = page
    else:
        # A base Page from the media views: one small query answers the
        # common case (the page's main video) without loading the page's content.
        attname = _main_video_attname(model)
        if attname and model._default_manager.filter(pk=page.pk, **{attname: video.pk}).exists():
            return _OWN_CONTENT
        specific = model._default_manager.filter(pk=page.pk).first() if issubclass(model, VideoPageMixin) else None
    if specific is not None:
        attname = _main_video_attname(type(specific))
        if attname and getattr(specific, attname) == video.pk:
            return _OWN_CONTENT
        if holds_videos(specific) and video.pk in {v.pk for v in specific.videos()}:
            return _OWN_CONTENT
    if specific is not None and holds_videos(specific):
        return None
    return _REFERENCE_INDEX if _in_reference_index(video, page) else None


def _in_reference_index(video, page):
    return ReferenceIndex.get_references_to(video).filter(
        base_content_type=ContentType.objects.get_for_model(Page),
        object_id=str(page.pk),
    ).exists()


def _main_video_attname(model):
    """The column of the page type's main video (``main_video_field``, "video"
    by default) when that field is a foreign key to the video model, else
    None. A host site's own ``video`` field pointing elsewhere (its own clip
    model, wagtailmedia's Media) says nothing about private videos: its ids
    merely coincide. As the page contract (``videos()``) counts them."""
    name = getattr(model, "main_video_field", "video")
    try:
        field = model._meta.get_field(name)
    except Exception:
        return None
    related = getattr(field, "related_model", None)
    if field.many_to_one and isinstance(related, type) and issubclass(related, get_video_model()):
        return field.attname
    return None
