"""The player's endpoints: one JSON description per page and video, the
HLS playlists (with the captions' subtitle playlists), the chapters track
and the viewer's resume position. Each reads top to bottom as the policy,
like ``serve``: look the objects up by id → ask ``can_watch`` → answer. Only
what these hand out (signed URLs) opens rendition and caption files, and
nginx checks those without Python.
"""

import math

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from wagtail.models import Page

from private_video import get_video_model

from .. import hls
from ..access_log import record_playback
from ..models import PlaybackPosition
from ..policy import Outcome, can_watch
from ..signals import send_video_served
from ..text_tracks import chapters_vtt
from .analytics import beacon_info
from ..tokens import VideoToken, remember_viewer, request_viewer
from .serve import PAGE_FIELDS, PLAIN_TEXT, forbidden, frontend_login_url, not_found, private, require_safe

VTT_TYPE = "text/vtt; charset=utf-8"


DENIED_MESSAGES = {
    Outcome.LOGIN_REQUIRED: _("This video is private. Sign in to watch it."),
    Outcome.FORBIDDEN: _("You do not have access to this video. Ask the page's owner for access."),
}


def _lookup(page_id, video_id):
    page = Page.objects.filter(pk=page_id).only(*PAGE_FIELDS).first()
    video = get_video_model().objects.filter(pk=video_id).first()
    return page, video


def _gate(request, page_id, video_id, *, log_refusal_as=None):
    """The top of the plain-text endpoints (playlists, the chapters track, the
    position): look both up, ask the policy. Returns (page, video, decision,
    refusal); when ``refusal`` is a response, send it and nothing else. A
    player or a <track> cannot follow a login redirect: a refusal is a plain
    403 (404 when the video is not on the page)."""
    page, video = _lookup(page_id, video_id)
    if page is None or video is None:
        return page, video, None, private(not_found())
    decision = can_watch(request, page, video)
    if decision.outcome is Outcome.NOT_FOUND:
        return page, video, decision, private(not_found())
    if not decision.allowed:
        if log_refusal_as:
            record_playback(request, page, video, log_refusal_as, decision)
        return page, video, decision, private(forbidden())
    return page, video, decision, None


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
    info = hls.playback_info(page, video, viewer=request_viewer(request), resume=resume_info(request, page, video))
    info["analytics"] = beacon_info(request, page, video)
    # The tokens are bound to this browser's viewer cookie: set it when it was missing.
    return remember_viewer(request, private(JsonResponse(info)))


def resume_info(request, page, video):
    """The signed-in viewer's own saved position (never anyone else's: the
    user is the request's) and how to post a new one; None when anonymous."""
    if not request.user.is_authenticated:
        return None
    position = (
        PlaybackPosition.objects.filter(user=request.user, video=video).values_list("position", flat=True).first()
    )
    return {
        "position": position,
        "url": reverse("media_access:playback_position", args=[page.pk, video.pk]),
        # The player posts it back as the csrfmiddlewaretoken form field.
        "csrf_token": get_token(request),
    }


@csrf_exempt
@require_safe
def playlist(request, page_id, video_id, name):
    """The master or a rung's media playlist, with every URI it lists made fetchable."""
    page, video, decision, refusal = _gate(request, page_id, video_id, log_refusal_as=name)
    if refusal is not None:
        return refusal

    subtitles = hls.SUBTITLES_PLAYLIST.match(name)
    if subtitles:
        # Looked up among this video's captions only: another video's caption
        # id is a 404 (and its file, in another folder, no token of this video opens).
        caption = video.captions.filter(pk=int(subtitles.group(1))).first()
        if caption is None:
            return private(not_found())
        try:
            token = VideoToken.issue(video, viewer=request_viewer(request))
            text = hls.subtitles_playlist(video, caption, token, hls.video_duration(video))
        except LookupError:
            return private(not_found())
        return remember_viewer(request, private(HttpResponse(text, content_type=hls.HLS_TYPE)))

    renditions = hls.renditions_by_name(video)
    rendition = renditions.get(name)
    # Playlists only; their media files and everything else go by signed URL.
    if rendition is None or rendition.kind not in hls.PLAYLIST_KINDS:
        return private(not_found())
    is_master = rendition.kind == hls.Kind.HLS_MASTER
    try:
        if is_master:
            # ?level=<rung>: one quality for a native HLS player (see master_playlist).
            text = hls.master_playlist(
                page, video, renditions, level=request.GET.get("level"), captions=hls.captions_of(video)
            )
        else:
            text = hls.media_playlist(video, renditions, name, VideoToken.issue(video, viewer=request_viewer(request)))
    except LookupError:
        return private(not_found())
    if is_master:
        send_video_served(request, page, video, name, decision)
        # No token in a master, but the media playlists it names will need the
        # viewer cookie (native HLS may start here, without the JSON).
        request_viewer(request)
    # A playlist fetched without the viewer cookie sets it, with its URIs signed for it.
    return remember_viewer(request, private(HttpResponse(text, content_type=hls.HLS_TYPE)))


@csrf_exempt
@require_safe
def chapters(request, page_id, video_id):
    """The video's chapters as a WebVTT chapters track, for viewers the policy allows."""
    page, video, decision, refusal = _gate(request, page_id, video_id)
    if refusal is not None:
        return refusal
    items = hls.chapters_of(video)
    if not items:
        return private(not_found())
    return private(HttpResponse(chapters_vtt(items, hls.video_duration(video)), content_type=VTT_TYPE))


# Not CSRF-exempt: the player posts the token it got in the playback JSON as
# the csrfmiddlewaretoken form field (navigator.sendBeacon sends FormData).
def save_position(request, page_id, video_id):
    """Remember where the signed-in viewer is in the video: 204, or why not.

    Only the requesting user's own row is ever written, whatever the form
    holds besides ``position``; the viewer must be allowed to watch the video
    on that page, as for every other answer about it."""
    if request.method != "POST":
        return private(HttpResponseNotAllowed(["POST"], content_type=PLAIN_TEXT))
    page, video, decision, refusal = _gate(request, page_id, video_id)
    if refusal is not None:
        return refusal
    if not request.user.is_authenticated:
        # Anonymous viewers have nowhere to keep a position; a beacon cannot sign in.
        return private(forbidden())
    try:
        position = float(request.POST.get("position", ""))
    except ValueError:
        position = math.nan
    if not math.isfinite(position):
        return private(HttpResponseBadRequest(
            f"{_('The position must be a number of seconds.')}\n", content_type=PLAIN_TEXT
        ))
    position = max(0.0, position)
    duration = hls.video_duration(video)
    if duration:
        position = min(position, float(duration))
    PlaybackPosition.objects.update_or_create(user=request.user, video=video, defaults={"position": position})
    return private(HttpResponse(status=204))
