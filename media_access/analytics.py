"""Watch analytics: which seconds of a video each viewing played, merged from
the player's beacons (``views.analytics.watch_beacon``), and the numbers a
report shows about one video.

A viewing's seconds are a bitmap (``Viewing.seconds``): bit ``i`` (least
significant bit first within each byte) is set when the viewer played second
``[i, i + 1)``. A played range ``[start, end)`` covers second ``i`` when the
middle of that second, ``i + 0.5``, lies inside it, so a range is never
counted as more than it is worth by rounding (a 0.3 s sliver covers nothing;
``[4.2, 9.7)`` covers seconds 4 to 9). Merging is a bitwise OR: sending the
same ranges twice, or ranges already sent, changes nothing. A bitmap holds
the first ``MAX_SECONDS`` (10 h, 4.5 KiB) of a video: a longer recording is
counted, its report covering its first 10 hours.

How many viewings: each playback (page load) of the player is one viewing,
named by a random ``session`` the player picks. The session is the client's
word, so a viewer may start at most ``MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR``
new viewings of one video an hour; a beacon of another new session within
that hour is merged into the viewer's latest viewing of the video (its
seconds still count for the viewer, only not as one more viewing), so one
viewer cannot fill the table (``record``).

Who a viewer is: the signed-in user, else an HMAC of the browser's viewer
cookie (``MEDIA_ACCESS_VIEWER_COOKIE``) or, before it exists, of the session
or CSRF secret. Only the HMAC is stored: never an IP address, never a key
that could be replayed as a cookie.
"""

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Case, IntegerField, Max, Q, Value, When
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import setting
from .models import Viewing
from .retention import delete_older
from .tokens import cookie_viewer

# A completed viewing: at least this share of the video's seconds played.
COMPLETION_SHARE = 0.9
# The seconds a viewing's bitmap holds at most (4.5 KiB): of a longer video,
# the first ten hours are counted (and the report covers those).
MAX_SECONDS = 10 * 3600
# A beacon's duration when the video has no probed one to check it against.
MAX_UNPROBED_DURATION = 7 * 24 * 3600
# The window MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR counts new viewings in.
VIEWINGS_WINDOW = timedelta(hours=1)
# Viewings read per query while a report is computed.
REPORT_CHUNK = 2000
VIEWER_SALT = "media_access.analytics.viewer"


# ---- identity ---------------------------------------------------------------------


def viewer_id(request):
    """A stable, non-reversible id of who sends this request, or None when the
    browser carries nothing to tell it by. 64 hex characters."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        source = f"user:{user.pk}"
    elif cookie_viewer(request):
        source = "cookie:" + cookie_viewer(request)
    elif getattr(request, "session", None) is not None and request.session.session_key:
        source = "session:" + request.session.session_key
    elif request.META.get("CSRF_COOKIE"):
        # The browser's CSRF secret (set with the playback JSON's token): the
        # same browser until it signs in, when the user id takes over.
        source = "csrf:" + request.META["CSRF_COOKIE"]
    else:
        return None
    return salted_hmac(VIEWER_SALT, source, algorithm="sha256").hexdigest()


# ---- bitmaps ----------------------------------------------------------------------


def seconds_count(duration):
    """How many whole-or-partial seconds a video of ``duration`` has."""
    return max(0, math.ceil(duration - 1e-9))


def counted_seconds(duration):
    """How many of those seconds a bitmap holds: the first MAX_SECONDS."""
    return min(seconds_count(duration), MAX_SECONDS)


def viewings_per_hour():
    """``MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR``: at least 1 (a viewing must be possible)."""
    return max(1, int(setting("ANALYTICS_VIEWINGS_PER_HOUR")))


def ranges_to_bits(ranges, count):
    """The seconds covered by ``ranges`` (pairs of seconds) as an int bitset."""
    bits = 0
    for start, end in ranges:
        first = max(0, math.ceil(start - 0.5))
        stop = min(count, math.ceil(end - 0.5))
        if stop > first:
            bits |= ((1 << (stop - first)) - 1) << first
    return bits


def to_bytes(bits, count):
    return bits.to_bytes((count + 7) // 8, "little")


def from_bytes(data):
    return int.from_bytes(bytes(data or b""), "little")


def bits_to_ranges(bits):
    """The set seconds as [first, last + 1) pairs (for people and tests)."""
    ranges, i = [], 0
    while bits:
        if bits & 1:
            # A run of ones at once: (bits + 1) clears it and sets the bit past it.
            ones = (~bits & (bits + 1)).bit_length() - 1
            ranges.append((i, i + ones))
            bits >>= ones
            i += ones
        else:
            # Skip a run of zeros at once.
            low = (bits & -bits).bit_length() - 1
            bits >>= low
            i += low
    return ranges


# ---- writing ----------------------------------------------------------------------


def _candidates(key, since, limit):
    """This viewing's row first (when it exists), then the viewer's other
    viewings of the video started since ``since``, newest first: at most
    ``limit`` + 1 rows, locked."""
    this = Q(page=key["page"], session=key["session"])
    return list(
        Viewing.objects.select_for_update()
        .filter(video=key["video"], viewer=key["viewer"])
        .filter(this | Q(created_at__gte=since))
        .annotate(_this=Case(When(this, then=Value(1)), default=Value(0), output_field=IntegerField()))
        .order_by("-_this", "-created_at", "-pk")[: limit + 1]
    )


def record(*, video, page, user, viewer, session, ranges, duration, now=None):
    """Merge ``ranges`` into this viewing's seconds: one SELECT ... FOR UPDATE
    and at most one write (an INSERT for a new viewing, an UPDATE when a
    beacon brought new seconds, nothing when it did not). Returns the Viewing.

    A new session of a viewer who already started
    ``MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR`` viewings of this video in
    the last hour is merged into their latest one instead of being a new
    row (the same SELECT finds both: this session's row, else the recent ones)."""
    now = now or timezone.now()
    count = counted_seconds(duration)
    new_bits = ranges_to_bits(ranges, count)
    key = {"video": video, "page": page, "viewer": viewer, "session": session}
    limit = viewings_per_hour()
    for attempt in (1, 2):
        with transaction.atomic():
            rows = _candidates(key, now - VIEWINGS_WINDOW, limit)
            if rows and rows[0]._this:
                row = rows[0]
            elif len(rows) >= limit:
                # Over the cap: the viewer's latest viewing takes these seconds.
                row = rows[0]
            else:
                row = None
            if row is None:
                try:
                    with transaction.atomic():
                        return Viewing.objects.create(
                            **key, user=user, seconds=to_bytes(new_bits, count), watched=new_bits.bit_count(),
                            duration=duration, created_at=now, updated_at=now,
                        )
                except IntegrityError:
                    # The same viewing's other beacon inserted it meanwhile: merge into that row.
                    if attempt == 2:
                        raise
                    continue
            old_bits = from_bytes(row.seconds)
            merged = old_bits | new_bits
            if merged != old_bits or row.duration < duration:
                count = max(count, counted_seconds(row.duration))
                row.seconds, row.watched = to_bytes(merged, count), merged.bit_count()
                row.duration, row.updated_at = max(row.duration, duration), now
                Viewing.objects.filter(pk=row.pk).update(
                    seconds=row.seconds, watched=row.watched, duration=row.duration, updated_at=now
                )
            return row
    raise AssertionError("unreachable")


def delete_expired(now=None, days=None):
    """Delete viewings last updated more than the retention period ago; returns how many."""
    days = setting("ANALYTICS_RETENTION_DAYS") if days is None else days
    return delete_older(Viewing.objects.all(), "updated_at", days, now)


# ---- reading ----------------------------------------------------------------------


@dataclass
class ViewerRow:
    """One viewer of one video: every viewing of theirs merged."""

    viewer: str
    user: object = None
    user_id: object = None
    bits: int = 0
    viewings: int = 0
    last_watched: datetime = None
    seconds: int = 0
    share: float = 0.0

    @property
    def percent(self):
        return round(self.share * 100, 1)

    @property
    def completed(self):
        return self.share >= COMPLETION_SHARE

    @property
    def label(self):
        if self.user is not None:
            return self.user.get_username()
        return "anonymous-" + self.viewer[:10]


@dataclass
class VideoStats:
    duration: float
    seconds: int                                          # the curve's length (the seconds counted)
    viewings: int = 0
    viewers: list = field(default_factory=list)           # ViewerRow, most watched first
    curve: list = field(default_factory=list)             # unique viewers who played second i
    viewings_curve: list = field(default_factory=list)    # viewings that played second i
    total_watch_seconds: int = 0                          # sum of every viewing's seconds

    @property
    def counts_part(self):
        """True when only the first MAX_SECONDS of a longer video are counted."""
        return self.seconds < seconds_count(self.duration)

    @property
    def unique_viewers(self):
        return len(self.viewers)

    @property
    def completed_viewers(self):
        return sum(1 for row in self.viewers if row.completed)

    @property
    def completion(self):
        """The share of unique viewers who played at least 90 % of the video."""
        return self.completed_viewers / len(self.viewers) if self.viewers else 0.0

    @property
    def peak(self):
        return max(self.curve, default=0)


def _add_bits(changes, bits):
    """Count ``bits`` into a difference array (``_prefix_sums`` makes the
    curve): O(played ranges) per viewing, not O(seconds)."""
    for start, stop in bits_to_ranges(bits):
        changes[start] += 1
        changes[stop] -= 1


def _prefix_sums(changes, count):
    return list(itertools.accumulate(changes[:count]))


def _viewing_facts(video, viewings):
    """(viewer, user id, seconds bitmap, updated_at) of each viewing, read in
    chunks of plain values (no model instance, no user joined per row)."""
    if viewings is not None:
        for viewing in viewings:
            yield viewing.viewer, viewing.user_id, viewing.seconds, viewing.updated_at
        return
    yield from (
        Viewing.objects.filter(video=video).order_by("pk")
        .values_list("viewer", "user_id", "seconds", "updated_at")
        .iterator(chunk_size=REPORT_CHUNK)
    )


def video_stats(video, viewings=None):
    """The numbers of the report for ``video`` (every page it is shown on).

    The viewings are streamed (``REPORT_CHUNK`` a query, values only) and
    each costs work in its played ranges, not in the video's seconds; their
    number is bounded per viewer by ``MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR``.
    Of a video longer than ``MAX_SECONDS`` the first ten hours are counted."""
    if viewings is not None:
        viewings = list(viewings)
    duration = video.duration
    if not duration:
        if viewings is not None:
            duration = max((v.duration for v in viewings), default=0.0)
        else:
            duration = Viewing.objects.filter(video=video).aggregate(d=Max("duration"))["d"] or 0.0
    count = counted_seconds(duration)
    stats = VideoStats(duration=duration, seconds=count)
    mask = (1 << count) - 1
    viewings_changes = [0] * (count + 1)
    rows = {}
    for viewer, user_id, seconds, updated_at in _viewing_facts(video, viewings):
        stats.viewings += 1
        bits = from_bytes(seconds) & mask
        stats.total_watch_seconds += bits.bit_count()
        _add_bits(viewings_changes, bits)
        row = rows.get(viewer)
        if row is None:
            row = rows[viewer] = ViewerRow(viewer=viewer)
        row.bits |= bits
        row.viewings += 1
        if row.user_id is None and user_id is not None:
            row.user_id = user_id
        if row.last_watched is None or updated_at > row.last_watched:
            row.last_watched = updated_at
    users = get_user_model()._default_manager.in_bulk({row.user_id for row in rows.values()} - {None})
    viewers_changes = [0] * (count + 1)
    for row in rows.values():
        row.user = users.get(row.user_id)
        row.seconds = row.bits.bit_count()
        row.share = row.seconds / count if count else 0.0
        _add_bits(viewers_changes, row.bits)
    stats.viewings_curve = _prefix_sums(viewings_changes, count)
    stats.curve = _prefix_sums(viewers_changes, count)
    stats.viewers = sorted(rows.values(), key=lambda row: (-row.share, row.label))
    return stats


# ---- the chart --------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 200, 32


def audience_curve_path(curve, peak, width=CHART_WIDTH - 2 * CHART_PAD, height=CHART_HEIGHT - 2 * CHART_PAD):
    """An SVG path (a step area) of ``curve``, in a ``width`` x ``height`` box
    with its origin at the bottom left of the plot; only numbers, no markup."""
    if not curve or not peak:
        return f"M0,{height}H{width}"
    step = width / len(curve)
    parts = [f"M0,{height}"]
    last = None
    for i, value in enumerate(curve):
        y = height - value / peak * height
        if y != last:
            parts.append(f"V{y:.2f}" if last is not None or i else f"L0,{y:.2f}")
            last = y
        parts.append(f"H{(i + 1) * step:.2f}")
    parts.append(f"V{height}Z")
    # Drop redundant horizontal moves: keep the last H of each run.
    compact = []
    for part in parts:
        if compact and part.startswith("H") and compact[-1].startswith("H"):
            compact[-1] = part
        else:
            compact.append(part)
    return "".join(compact)
