"""The player's endpoints: one JSON description per page and video, the
HLS playlists (with the captions' subtitle playlists), the chapters track
and the viewer's resume position. Each reads top to bottom as the policy,
like ``serve``: look the objects up by id → ask ``can_watch`` → answer. Only
what these hand out (signed URLs) opens rendition and caption files, and
nginx checks those without Python.

Like ``/watch/``, an allowed decision is remembered (``decisions.py`` states
the invariant), under the same key with the endpoint's kind in the rendition
slot (``#json``, ``#playlist``, ``#chapters``, ``#position``, ``#beacon``),
together with the user the session named and the video's renditions,
captions and chapters (``hls.VideoFacts``, under the video's scope). A
repeat request then costs the one scope query (plus, for a signed-in
viewer's JSON, their resume position) and neither loads the session nor
writes it. Denials always run the whole policy.
"""

import math
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.shortcuts import resolve_url
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import get_token
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from wagtail.models import Page

from private_video import get_video_model

from .. import decisions, hls
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


# The rendition slot of decisions.key_for for each player endpoint (a
# rendition name is a slug: never one of these).
JSON_KIND, PLAYLIST_KIND, CHAPTERS_KIND, POSITION_KIND, BEACON_KIND = (
    "#json", "#playlist", "#chapters", "#position", "#beacon",
)
KINDS = (JSON_KIND, PLAYLIST_KIND, CHAPTERS_KIND, POSITION_KIND, BEACON_KIND)


@dataclass(frozen=True)
class Allowed:
    """What a player endpoint needs once the policy allowed the request; kept
    (as the ``served`` of a remembered decision) for the repeat requests."""

    page: object
    video: object
    decision: object
    # The signed-in user the session named, None for an anonymous viewer.
    user: object
    facts: hls.VideoFacts


def _lookup(page_id, video_id):
    page = Page.objects.filter(pk=page_id).only(*PAGE_FIELDS).first()
    video = get_video_model().objects.filter(pk=video_id).first()
    return page, video


def _allowed(request, page_id, video_id, kind):
    """(Allowed, None) when the policy allows ``request``, else (None, (page,
    video, decision)) for the caller's refusal (decision None: no such page
    or video). A remembered decision answers first: then the request's user
    is the remembered one (the session, which names it, is unchanged), and
    neither the session nor the user is loaded."""
    generation = decisions.current_generation(request)
    keys = [decisions.key_for(request, page_id, video_id, k, False) for k in (kind, *(k for k in KINDS if k != kind))]
    remembered = decisions.recall_shared(keys, generation)
    if remembered is not None:
        allowed = remembered.served
        request.user = allowed.user if allowed.user is not None else AnonymousUser()
        return allowed, None
    page, video = _lookup(page_id, video_id)
    if page is None or video is None:
        return None, (page, video, None)
    decision = can_watch(request, page, video)
    if not decision.allowed:
        return None, (page, video, decision)
    # The user itself, not the request's lazy wrapper (kept for later requests).
    user = getattr(request.user, "_wrapped", request.user) if request.user.is_authenticated else None
    allowed = Allowed(page=page, video=video, decision=decision, user=user, facts=_facts(generation, video))
    decisions.remember(keys[0], generation, page, video, decision, allowed)
    return allowed, None


def _facts(generation, video):
    """The video's ``VideoFacts``, shared by every viewer's request while the
    video's scope (and ``schema``) read before them are unchanged."""
    try:
        scopes = [decisions.SCHEMA_SCOPE, decisions.video_scope(video.pk)]
    except Exception:
        scopes = None
    stamp = decisions.stamp(generation, scopes) if scopes else None
    if stamp is None:
        return hls.video_facts(video)
    values, until = stamp
    return hls.shared_video_facts(video, values, until)


def _gate(request, page_id, video_id, kind, *, log_refusal_as=None):
    """The top of the plain-text endpoints (playlists, the chapters track, the
    position, the beacon): the policy's answer. Returns (allowed, refusal);
    when ``refusal`` is a response, send it and nothing else. A player or a
    <track> cannot follow a login redirect: a refusal is a plain 403 (404
    when the video is not on the page)."""
    allowed, denied = _allowed(request, page_id, video_id, kind)
    if allowed is not None:
        return allowed, None
    page, video, decision = denied
    if decision is None or decision.outcome is Outcome.NOT_FOUND:
        return None, private(not_found())
    if log_refusal_as:
        record_playback(request, page, video, log_refusal_as, decision)
    return None, private(forbidden())


@csrf_exempt
@require_safe
def playback(request, page_id, video_id):
    """Sources, poster, storyboard, captions, duration and a fresh token, or why not.

    The player also calls this to renew its token before it expires; a
    viewer who lost access gets the denial instead, and no new token."""
    allowed, denied = _allowed(request, page_id, video_id, JSON_KIND)
    if allowed is None:
        page, video, decision = denied
        if decision is None or decision.outcome is Outcome.NOT_FOUND:
            return private(JsonResponse({"allowed": False, "reason": "not_found"}, status=404))
        body = {
            "allowed": False,
            "reason": decision.outcome.value,
            "message": DENIED_MESSAGES.get(decision.outcome, DENIED_MESSAGES[Outcome.FORBIDDEN]),
        }
        if decision.outcome is Outcome.LOGIN_REQUIRED:
            # Without ?next=<the page's URL>: whoever asks by id may not know
            # it (a private page's slug). The player adds the page it is on.
            body["login_url"] = resolve_url(frontend_login_url())
        return private(JsonResponse(body, status=403))
    page, video = allowed.page, allowed.video
    info = hls.playback_info(
        page, video, viewer=request_viewer(request), resume=resume_info(request, page, video), facts=allowed.facts
    )
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
    allowed, refusal = _gate(request, page_id, video_id, PLAYLIST_KIND, log_refusal_as=name)
    if refusal is not None:
        return refusal
    page, video, decision, facts = allowed.page, allowed.video, allowed.decision, allowed.facts

    subtitles = hls.SUBTITLES_PLAYLIST.match(name)
    if subtitles:
        # Looked up among this video's captions only: another video's caption
        # id is a 404 (and its file, in another folder, no token of this video
        # opens; such a caption is not among the video's captions_of either).
        caption_id = int(subtitles.group(1))
        caption = next((caption for caption in facts.captions if caption.pk == caption_id), None)
        if caption is None:
            return private(not_found())
        try:
            token = VideoToken.issue(video, viewer=request_viewer(request))
            text = hls.subtitles_playlist(video, caption, token, hls.video_duration(video, facts.renditions))
        except LookupError:
            return private(not_found())
        return remember_viewer(request, private(HttpResponse(text, content_type=hls.HLS_TYPE)))

    renditions = facts.renditions
    rendition = renditions.get(name)
    # Playlists only; their media files and everything else go by signed URL.
    if rendition is None or rendition.kind not in hls.PLAYLIST_KINDS:
        return private(not_found())
    is_master = rendition.kind == hls.Kind.HLS_MASTER
    try:
        if is_master:
            # ?level=<rung>: one quality for a native HLS player (see master_playlist).
            text = hls.master_playlist(
                page, video, renditions, level=request.GET.get("level"), captions=facts.captions
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
    allowed, refusal = _gate(request, page_id, video_id, CHAPTERS_KIND)
    if refusal is not None:
        return refusal
    items = list(allowed.facts.chapters)
    if not items:
        return private(not_found())
    duration = hls.video_duration(allowed.video, allowed.facts.renditions)
    return private(HttpResponse(chapters_vtt(items, duration), content_type=VTT_TYPE))


# Not CSRF-exempt: the player posts the token it got in the playback JSON as
# the csrfmiddlewaretoken form field (navigator.sendBeacon sends FormData).
def save_position(request, page_id, video_id):
    """Remember where the signed-in viewer is in the video: 204, or why not.

    Only the requesting user's own row is ever written, whatever the form
    holds besides ``position``; the viewer must be allowed to watch the video
    on that page, as for every other answer about it."""
    if request.method != "POST":
        return private(HttpResponseNotAllowed(["POST"], content_type=PLAIN_TEXT))
    allowed, refusal = _gate(request, page_id, video_id, POSITION_KIND)
    if refusal is not None:
        return refusal
    video = allowed.video
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
    duration = hls.video_duration(video, allowed.facts.renditions)
    if duration:
        position = min(position, float(duration))
    # One UPDATE for the usual repeat (update_or_create would lock-read first);
    # an INSERT the first time (a concurrent first save then updates instead).
    rows = PlaybackPosition.objects.filter(user=request.user, video=video)
    if not rows.update(position=position, updated_at=timezone.now()):
        try:
            with transaction.atomic():
                PlaybackPosition.objects.create(user=request.user, video=video, position=position)
        except IntegrityError:
            rows.update(position=position, updated_at=timezone.now())
    return private(HttpResponse(status=204))
