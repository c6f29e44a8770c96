"""Watch analytics: the player's beacon and the per-video report.

The beacon (``watch_beacon``) reads as the other player endpoints: look the
page and video up → ask ``can_watch`` → merge. A refused viewer's beacon is
answered 403 and stored nowhere. It never runs on the serving path: media
bytes go through ``serve`` and nginx; this is a separate small POST.

CSRF: the beacon requires Django's CSRF token, carried in the JSON body as
``"csrf"`` (``navigator.sendBeacon`` cannot set headers) or, for ``fetch``,
in the usual ``X-CSRFToken`` header, and checked by Django's own
``CsrfViewMiddleware`` (token against the browser's CSRF cookie, Origin and,
on HTTPS, Referer). An exemption would let any site make a signed-in
viewer's browser post "watched 100 %" for them, and the per-viewer report
answers a compliance question: it must not be forgeable cross-site.
"""

import csv
import json
import math
import re

from django.conf import settings
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseNotAllowed
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from private_video.permissions import videos_user_may
from private_video.spreadsheets import csv_cell

from .. import analytics
from .serve import PLAIN_TEXT, private

# A beacon is small: a few ranges. Anything larger is not from our player.
MAX_BODY = 16 * 1024
MAX_RANGES = 256
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{8,64}")
# How far a beacon's duration may be from the probed one (HLS rounds to segments).
DURATION_SLACK = 2.0
RANGE_SLACK = 0.5


class BadBeacon(ValueError):
    pass


def _bad(message):
    return private(HttpResponseBadRequest(f"{message}\n", content_type=PLAIN_TEXT))


def _read_body(request):
    """The body, or None when it declares more than MAX_BODY bytes (refused
    unread; Django reads no more than the declared length)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if declared > MAX_BODY:
        return None
    return request.body


def _csrf_refusal(request, body_token):
    """Django's CSRF check, with the token from the JSON body when no header carries it."""
    if body_token and isinstance(body_token, str) and settings.CSRF_HEADER_NAME not in request.META:
        request.META[settings.CSRF_HEADER_NAME] = body_token

    def checked_view(request):  # never called: process_view only looks at the callback's attributes
        raise AssertionError

    return CsrfViewMiddleware(lambda request: None).process_view(request, checked_view, (), {})


def _number(value, what):
    # bool is an int to Python, not a number of seconds to us. A JSON integer
    # has no size limit: one past float's range (10**400) is as refused as
    # 1e999 (float() raises OverflowError for it, isfinite() too).
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise BadBeacon(_("%(what)s must be a finite number of seconds.") % {"what": what})


def parse_beacon(data, video_duration):
    """(session, ranges, duration) from a decoded beacon, or BadBeacon."""
    if not isinstance(data, dict):
        raise BadBeacon(_("The beacon must be a JSON object."))
    session = data.get("session")
    if not isinstance(session, str) or not SESSION_RE.fullmatch(session):
        raise BadBeacon(_("The session must be 8 to 64 of A-Z a-z 0-9 _ -."))
    sent = _number(data.get("duration"), _("The duration"))
    if not sent > 0:
        raise BadBeacon(_("The duration is out of range."))
    duration = sent
    if video_duration:
        if abs(sent - video_duration) > max(DURATION_SLACK, video_duration * 0.02):
            raise BadBeacon(_("The duration is not this video's."))
        # The probed duration is the one every viewing of the video is counted in.
        duration = float(video_duration)
    elif sent > analytics.MAX_UNPROBED_DURATION:
        # Nothing to compare it with: only a length a recording could have.
        raise BadBeacon(_("The duration is out of range."))
    limit = max(duration, sent) + RANGE_SLACK
    ranges = data.get("ranges")
    if not isinstance(ranges, list) or len(ranges) > MAX_RANGES:
        raise BadBeacon(_("The ranges must be a list of at most %(n)d pairs.") % {"n": MAX_RANGES})
    parsed = []
    for pair in ranges:
        if not isinstance(pair, list) or len(pair) != 2:
            raise BadBeacon(_("Each range must be a [start, end] pair."))
        start, end = _number(pair[0], _("A range start")), _number(pair[1], _("A range end"))
        if not 0 <= start <= end <= limit:
            raise BadBeacon(_("A range is outside the video."))
        parsed.append((start, min(end, duration)))
    return session, parsed, duration


@csrf_exempt  # checked below, with the token from the body (see the module docstring)
def watch_beacon(request, page_id, video_id):
    """Merge the played ranges of one playback: 204, or why not."""
    if request.method != "POST":
        return private(HttpResponseNotAllowed(["POST"], content_type=PLAIN_TEXT))
    body = _read_body(request)
    if body is None:
        return private(HttpResponse(f"{_('The beacon is too large.')}\n", status=413, content_type=PLAIN_TEXT))
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than Python's recursion limit.
        data = None
    refusal = _csrf_refusal(request, data.get("csrf") if isinstance(data, dict) else None)
    if refusal is not None:
        return private(refusal)
    from .playback import BEACON_KIND, _gate  # (playback imports this module for beacon_info)

    # A remembered decision answers a repeat beacon with one query (views.playback).
    allowed, refusal = _gate(request, page_id, video_id, BEACON_KIND)
    if refusal is not None:
        return refusal
    page, video = allowed.page, allowed.video
    if data is None:
        return _bad(_("The beacon must be JSON."))
    try:
        session, ranges, duration = parse_beacon(data, video.duration)
    except BadBeacon as error:
        return _bad(error)
    viewer = analytics.viewer_id(request)
    if viewer is None:
        return _bad(_("The browser sent no cookie to tell this viewer by."))
    user = request.user if request.user.is_authenticated else None
    analytics.record(
        video=video, page=page, user=user, viewer=viewer, session=session, ranges=ranges, duration=duration
    )
    return private(HttpResponse(status=204))


# ---- the report --------------------------------------------------------------------


def _csv_response(filename, header, rows):
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    writer = csv.writer(response)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
    return response


def video_analytics(request, video_id):
    """The report for one video: audience curve, numbers, per-viewer table, CSV.

    Only for users who may change this video (looked up among those: any
    other id is a 404, as in the library's edit view)."""
    video = get_object_or_404(videos_user_may(request.user, "change"), pk=video_id)
    stats = analytics.video_stats(video)
    name = slugify(video.title) or f"video-{video.pk}"
    if request.GET.get("format") == "csv":
        if request.GET.get("data") == "curve":
            return _csv_response(
                f"{name}-audience.csv", ["second", "viewers", "viewings"],
                ((i, viewers, stats.viewings_curve[i]) for i, viewers in enumerate(stats.curve)),
            )
        return _csv_response(
            f"{name}-viewers.csv",
            ["viewer", "user_id", "name", "seconds_watched", "duration_seconds", "percent_watched",
             "watched_90_percent", "viewings", "last_watched"],
            (
                (row.label, row.user.pk if row.user else "", row.user.get_full_name() if row.user else "",
                 row.seconds, stats.seconds, f"{row.percent:.1f}", "yes" if row.completed else "no",
                 row.viewings, row.last_watched.isoformat() if row.last_watched else "")
                for row in stats.viewers
            ),
        )
    if request.GET.get("format") not in (None, "html"):
        raise Http404
    plot_w = analytics.CHART_WIDTH - 2 * analytics.CHART_PAD
    plot_h = analytics.CHART_HEIGHT - 2 * analytics.CHART_PAD
    context = {
        "video": video,
        "stats": stats,
        "completion_percent": round(stats.completion * 100, 1),
        "chart": {
            "width": analytics.CHART_WIDTH, "height": analytics.CHART_HEIGHT, "pad": analytics.CHART_PAD,
            "plot_width": plot_w, "plot_height": plot_h,
            "path": analytics.audience_curve_path(stats.curve, stats.peak, plot_w, plot_h),
            "bottom": analytics.CHART_PAD + plot_h, "right": analytics.CHART_PAD + plot_w,
        },
        "total_watch_minutes": round(stats.total_watch_seconds / 60, 1),
        "header_icon": "media",
        "page_title": _("Watch analytics"),
    }
    response = TemplateResponse(request, "media_access/analytics/video_report.html", context)
    response["Cache-Control"] = "private, no-store"
    return response


def video_analytics_index(request):
    """Reports → Watch analytics: the videos this user may change that someone
    watched, most recently watched first, each linking to its report."""
    from django.core.paginator import Paginator
    from django.db.models import Count, Max, OuterRef, Subquery

    from ..models import Viewing

    of_video = Viewing.objects.filter(video=OuterRef("pk")).order_by().values("video")
    videos = (
        videos_user_may(request.user, "change")
        .annotate(
            analytics_viewings=Subquery(of_video.annotate(n=Count("pk")).values("n")),
            analytics_viewers=Subquery(of_video.annotate(n=Count("viewer", distinct=True)).values("n")),
            analytics_last=Subquery(of_video.annotate(last=Max("updated_at")).values("last")),
        )
        .filter(analytics_viewings__gt=0)
        .order_by("-analytics_last", "-pk")
    )
    page = Paginator(videos, 50).get_page(request.GET.get("p"))
    response = TemplateResponse(request, "media_access/analytics/index.html", {
        "videos": page, "header_icon": "media", "page_title": _("Watch analytics"),
    })
    response["Cache-Control"] = "private, no-store"
    return response


def analytics_panel(request, video):
    """The video edit view's panel (``insert_video_edit_panels``): the headline numbers and the report's link."""
    from django.template.loader import render_to_string
    from django.urls import reverse

    from ..models import Viewing

    rows = Viewing.objects.filter(video=video)
    return render_to_string(
        "media_access/analytics/edit_panel.html",
        {
            "viewings": rows.count(),
            "viewers": rows.values("viewer").distinct().count(),
            "report_url": reverse("media_access_reports:video_analytics", args=[video.pk]),
        },
        request=request,
    )


def beacon_info(request, page, video):
    """What the player needs to send beacons (in the playback JSON)."""
    from django.middleware.csrf import get_token
    from django.urls import reverse

    return {
        "url": reverse("media_access:watch_beacon", args=[page.pk, video.pk]),
        "csrf_token": get_token(request),
        "every": 10,
    }

