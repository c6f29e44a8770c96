"""The player's endpoints: one JSON description per page and video, and the
HLS playlists. Each reads top to bottom as the policy, like ``serve``: look
the objects up by id → ask ``can_watch`` → answer. Only what these hand out
(signed URLs) opens rendition files, and nginx checks those without Python.
"""

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from wagtail.models import Page

from private_video import get_video_model

from .. import hls
from ..access_log import record_playback
from ..policy import Outcome, can_watch
from ..signals import send_video_served
from ..tokens import VideoToken
from .serve import PAGE_FIELDS, forbidden, frontend_login_url, not_found, private, require_safe


DENIED_MESSAGES = {
    Outcome.LOGIN_REQUIRED: _("This video is private. Sign in to watch it."),
    Outcome.FORBIDDEN: _("You do not have access to this video. Ask the page's owner for access."),
}


def _lookup(page_id, video_id):
    page = Page.objects.filter(pk=page_id).only(*PAGE_FIELDS).first()
    video = get_video_model().objects.filter(pk=video_id).first()
    return page, video


@csrf_exempt
@require_safe
def playback(request, page_id, video_id):
    """Sources, poster, storyboard, captions, duration and a fresh token, or why not.

    The player also calls this to renew its token before it expires; a
    viewer who lost access gets the denial instead, and no new token."""
    page, video = _lookup(page_id, video_id)
    if page is None or video is None:
        return private(JsonResponse({"allowed": False, "reason": "not_found"}, status=404))
    decision = can_watch(request, page, video)
    if decision.outcome is Outcome.NOT_FOUND:
        return private(JsonResponse({"allowed": False, "reason": "not_found"}, status=404))
    if not decision.allowed:
        body = {
            "allowed": False,
            "reason": decision.outcome.value,
            "message": DENIED_MESSAGES.get(decision.outcome, DENIED_MESSAGES[Outcome.FORBIDDEN]),
        }
        if decision.outcome is Outcome.LOGIN_REQUIRED:
            body["login_url"] = redirect_to_login(page.url or "/", frontend_login_url())["Location"]
        return private(JsonResponse(body, status=403))
    return private(JsonResponse(hls.playback_info(page, video)))


@csrf_exempt
@require_safe
def playlist(request, page_id, video_id, name):
    """The master or a rung's media playlist, with every URI it lists made fetchable."""
    page, video = _lookup(page_id, video_id)
    if page is None or video is None:
        return private(not_found())
    decision = can_watch(request, page, video)
    if decision.outcome is Outcome.NOT_FOUND:
        return private(not_found())
    if not decision.allowed:
        record_playback(request, page, video, name, decision)
        # A player cannot follow a login redirect for a playlist: say no plainly.
        return private(forbidden())

    renditions = hls.renditions_by_name(video)
    rendition = renditions.get(name)
    # Playlists only; their media files and everything else go by signed URL.
    if rendition is None or rendition.kind not in hls.PLAYLIST_KINDS:
        return private(not_found())
    is_master = rendition.kind == hls.Kind.HLS_MASTER
    try:
        if is_master:
            # ?level=<rung>: one quality for a native HLS player (see master_playlist).
            text = hls.master_playlist(page, video, renditions, level=request.GET.get("level"))
        else:
            text = hls.media_playlist(video, renditions, name, VideoToken.issue(video))
    except LookupError:
        return private(not_found())
    if is_master:
        send_video_served(request, page, video, name, decision)
    return private(HttpResponse(text, content_type=hls.HLS_TYPE))
