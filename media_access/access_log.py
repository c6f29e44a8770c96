"""The playback log: one record per viewing session, not per range request.

A player fetches a video in many range requests; recording each would cost a
database write per request. A record is written the first time a session asks
for a video on a page (per outcome) within ``MEDIA_ACCESS_LOG_WINDOW`` seconds;
later requests in the window cost a memory lookup, or one indexed read in
another worker process.

Allowed playback arrives as the ``video_served`` signal (``log_served`` is
its receiver, connected in ``signal_handlers``); refusals, which serve
nothing, are recorded by the views directly.
"""

import logging
import threading
import time
from collections import OrderedDict
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import setting
from .models import PlaybackLogEntry
from .retention import delete_older
from .tokens import cookie_viewer

logger = logging.getLogger(__name__)

_recent = OrderedDict()
_recent_lock = threading.Lock()
_RECENT_MAX = 10_000
SESSION_SALT = "media_access.access_log.session"


def log_window():
    return int(setting("LOG_WINDOW"))


def session_id(request):
    """A stable, non-reversible id for the viewing session: the Django
    session, else the browser's viewer cookie (``MEDIA_ACCESS_VIEWER_COOKIE``,
    one random value per browser, set by the playback JSON and the
    playlists), else, for a client that keeps no cookie, its address and
    User-Agent. Behind a proxy (the bundled nginx) the address is the proxy's
    for everyone, so the cookie is what tells anonymous viewers apart.

    Only a keyed hash (HMAC with SECRET_KEY) is stored, never the address,
    the cookie or the session key: a plain hash of an IPv4 address and a
    common User-Agent could be reversed by trying every address."""
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        source = f"s:{session_key}"
    elif cookie_viewer(request):
        source = f"v:{cookie_viewer(request)}"
    else:
        source = f"a:{request.META.get('REMOTE_ADDR', '')}:{request.headers.get('User-Agent', '')}"
    return salted_hmac(SESSION_SALT, source, algorithm="sha256").hexdigest()[:40]


def record_playback(request, page, video, rendition, decision):
    window = log_window()
    session = session_id(request)
    key = (session, page.pk, video.pk, decision.allowed)
    now = time.monotonic()
    with _recent_lock:
        seen = _recent.get(key)
        if seen is not None and now - seen < window:
            return None
    try:
        since = timezone.now() - timedelta(seconds=window)
        exists = PlaybackLogEntry.objects.filter(
            session=session, page=page, video=video, allowed=decision.allowed, started_at__gte=since
        ).exists()
        entry = None
        if not exists:
            user = request.user if request.user.is_authenticated else None
            entry = PlaybackLogEntry.objects.create(
                session=session,
                user=user,
                username=user.get_username() if user else "",
                page=page,
                page_title=page.title[:255],
                video=video,
                video_title=video.title[:255],
                rendition=rendition[:64],
                allowed=decision.allowed,
                reason=decision.reason[:32],
            )
    except DatabaseError:
        # Playback must not fail because the log could not be written.
        logger.exception("Could not record playback of video %s on page %s", video.pk, page.pk)
        return None
    with _recent_lock:
        _recent[key] = now
        _recent.move_to_end(key)
        while len(_recent) > _RECENT_MAX:
            _recent.popitem(last=False)
    return entry


def log_served(sender, request, page, video, rendition, decision, **kwargs):
    """The ``video_served`` receiver: one record per session, page and video."""
    record_playback(request, page, video, rendition, decision)


def delete_expired(now=None, days=None):
    """Delete playback-log entries that started more than the retention
    period (``PLAYBACK_LOG_RETENTION_DAYS``) ago; returns how many."""
    days = setting("PLAYBACK_LOG_RETENTION_DAYS") if days is None else days
    return delete_older(PlaybackLogEntry.objects.all(), "started_at", days, now)


def forget_recent():
    """Tests: start from an empty in-memory window."""
    with _recent_lock:
        _recent.clear()
