from django import template
from django.contrib.auth.views import redirect_to_login
from django.urls import reverse

from private_video.page_forms import video_ids_held_by
from private_video.permissions import video_permission_policy

from ..files import best_playback_name, resolve_file
from ..hls import captions_of
from ..policy import Outcome, can_watch, stored_page
from ..text_tracks import clock, transcript_cues
from ..views.serve import frontend_login_url

register = template.Library()


@register.simple_tag(takes_context=True)
def video_player_state(context, page, video):
    """What the player may show for this viewer: a source, or why not."""
    request = context.get("request")
    if request is None or page is None or video is None or not page.pk:
        return {"allowed": False, "reason": "unavailable"}
    decision = can_watch(request, page, video, download=True)
    if not decision.allowed and _unsaved_in_preview(request, page, video):
        return {"allowed": False, "reason": "unsaved_preview"}
    if not decision.allowed:
        return {
            "allowed": False,
            "reason": decision.outcome.value,
            "login_url": redirect_to_login(request.get_full_path(), frontend_login_url())["Location"]
            if decision.outcome is Outcome.LOGIN_REQUIRED
            else "",
        }
    name = best_playback_name(video)
    served = resolve_file(video, name)
    if served is None:
        return {"allowed": False, "reason": "unavailable"}
    args = [page.pk, video.pk, name]
    return {
        "allowed": True,
        "src": reverse("media_access:watch", args=args),
        "type": served.content_type,
        "download_url": reverse("media_access:download", args=args) if decision.can_download else "",
    }


def _unsaved_in_preview(request, page, video):
    """The edit view's live preview of a choice not saved yet: the page in
    memory holds the video, and the user may edit the page and choose the
    video. Nothing can play it until a draft is saved (the media answers
    decide on the stored page), so the player says so instead of refusing."""
    if not getattr(request, "is_preview", False) or video.pk not in video_ids_held_by(page):
        return False
    user = request.user
    stored = stored_page(page)
    return bool(
        stored is not None and user.is_authenticated
        and stored.permissions_for_user(user).can_edit()
        and video_permission_policy().user_has_permission_for_instance(user, "choose", video)
    )


@register.inclusion_tag("media_access/transcript.html", takes_context=True)
def video_transcript(context, page, video):
    """The video's transcript (its default caption's cues, with timestamps),
    only for a viewer the policy lets watch it; nothing for anyone else."""
    request = context.get("request")
    if request is None or page is None or video is None or not page.pk:
        return {"caption": None}
    if not can_watch(request, page, video).allowed:
        return {"caption": None}
    captions = captions_of(video)  # default first
    if not captions:
        return {"caption": None}
    caption = captions[0]
    lines = [
        {"start": start, "clock": clock(start), "text": " ".join(text.split())}
        for start, _end, text in transcript_cues(caption)
        if text.strip()
    ]
    return {"caption": caption, "lines": lines, "video": video}
