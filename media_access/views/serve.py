"""The only views that answer with private media.

They read top to bottom as the policy: look the objects up by id → ask
``can_watch`` → send ``video_served`` (the playback log records it) or
record the refusal → hand the file to the response builder.
Nothing about the file (ETag, Last-Modified, Range) is looked at before the
policy has allowed the request, so conditional headers cannot probe it.

A decision the policy allowed for the same session cookie, page, video,
rendition and kind is reused while nothing it rests on has changed
(``decisions.py`` states the invariant); such a request touches neither
``request.user`` nor the session, and costs one small query.
"""

from dataclasses import replace
from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseForbidden, HttpResponseNotAllowed, HttpResponseNotFound
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from wagtail.models import Page

from private_video import get_video_model

from .. import decisions
from ..access_log import record_playback
from ..files import ORIGINAL, original_is_played, resolve_file
from ..policy import Outcome, can_watch
from ..responses import get_response_builder
from ..signals import send_video_served


# What the policy, the log and the resolver read of two wide rows; anything
# else (an editor's permission check) loads on access.
PAGE_FIELDS = (
    "id", "path", "depth", "title", "live", "has_unpublished_changes", "alias_of", "content_type",
    "expire_at",
)
VIDEO_FIELDS = ("id", "title", "file", "original_filename")
NOT_FOUND_BODY = _("Not found.")
FORBIDDEN_BODY = _("You do not have access to this video.")
PLAIN_TEXT = "text/plain; charset=utf-8"


def require_safe(view):
    """GET and HEAD only; anything else a plain-text 405 (Django's own is typed text/html)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            return private(HttpResponseNotAllowed(["GET", "HEAD"], content_type=PLAIN_TEXT))
        return view(request, *args, **kwargs)

    return wrapped


# Exempt from CSRF only so that other methods get an honest 405: the views
# accept nothing but GET and HEAD and change no state.
@csrf_exempt
@require_safe
def watch(request, page_id, video_id, rendition):
    return _serve(request, page_id, video_id, rendition, attachment=False)


@csrf_exempt
@require_safe
def download(request, page_id, video_id, rendition):
    return _serve(request, page_id, video_id, rendition, attachment=True)


def _serve(request, page_id, video_id, rendition, *, attachment):
    response = _decide_and_build(request, page_id, video_id, rendition, attachment=attachment)
    return private(response)


def private(response):
    """What every media_access answer says about caching, whichever branch made it.

    Denials too: a shared cache must not keep a login redirect or a 403 for
    someone else. ``Vary: Cookie`` on all of them, not only where the policy
    happened to read the session: a 404 for an id that exists must look like
    one for an id that does not."""
    response["Cache-Control"] = "private, no-store"
    if response.has_header("Vary"):
        patch_vary_headers(response, ("Cookie",))
    else:
        response["Vary"] = "Cookie"
    return response


def _decide_and_build(request, page_id, video_id, rendition, *, attachment):
    # recall() reads the decision scopes before the policy's own queries: a
    # change committed after that read gives a scope the entry rests on
    # another value, so the next request runs the policy.
    generation = decisions.current_generation(request)
    key = decisions.key_for(request, page_id, video_id, rendition, attachment)
    remembered = decisions.recall(key, generation)
    if remembered is not None:
        send_video_served(request, remembered.page, remembered.video, rendition, remembered.decision)
        return get_response_builder().build(request, remembered.served)

    page = Page.objects.filter(pk=page_id).only(*PAGE_FIELDS).first()
    video = get_video_model().objects.filter(pk=video_id).only(*VIDEO_FIELDS).first()
    if page is None or video is None:
        return not_found()

    # The original's bytes are a download whatever the Content-Disposition:
    # inline too they need the download right, unless the player plays the
    # original itself (no rendition can stand in for it yet).
    original = rendition == ORIGINAL
    decision = can_watch(request, page, video, download=attachment or original)
    if decision.outcome is Outcome.NOT_FOUND:
        return not_found()
    if decision.outcome is Outcome.LOGIN_REQUIRED:
        record_playback(request, page, video, rendition, decision)
        return login_redirect(request.get_full_path())
    if decision.outcome is Outcome.FORBIDDEN:
        record_playback(request, page, video, rendition, decision)
        return forbidden()
    if not decision.can_download and (attachment or (original and not original_is_played(video))):
        # Logged as the refusal it is (the decision itself allowed watching).
        record_playback(request, page, video, rendition, replace(decision, outcome=Outcome.FORBIDDEN,
                                                                 reason="no_download"))
        return forbidden()

    served = resolve_file(video, rendition, attachment=attachment)
    if served is None:
        return not_found()
    send_video_served(request, page, video, rendition, decision)
    decisions.remember(key, generation, page, video, decision, served)
    return get_response_builder().build(request, served)


# Denials are plain text (nosniff comes from SecurityMiddleware), never a page.
def not_found():
    return HttpResponseNotFound(f"{NOT_FOUND_BODY}\n", content_type=PLAIN_TEXT)


def forbidden():
    return HttpResponseForbidden(f"{FORBIDDEN_BODY}\n", content_type=PLAIN_TEXT)


def login_redirect(next_path):
    response = redirect_to_login(next_path, login_url=frontend_login_url())
    response["Content-Type"] = PLAIN_TEXT
    return response


def frontend_login_url():
    return getattr(settings, "WAGTAIL_FRONTEND_LOGIN_URL", None) or settings.LOGIN_URL
