"""Watch analytics: which seconds of a video each viewing played, merged from
the player's beacons (``views.analytics.watch_beacon``), and the numbers a
report shows about one video.

A viewing's seconds are a bitmap (``Viewing.seconds``): bit ``i`` (least
significant bit first within each byte) is set when the viewer played second
``[i, i + 1)``. A played range ``[start, end)`` covers second ``i`` when the
middle of that second, ``i + 0.5``, lies inside it, so a range is never
counted as more than it is worth by rounding (a 0.3 s sliver covers nothing;
``[4.2, 9.7)`` covers seconds 4 to 9). Merging is a bitwise OR: sending the
same ranges twice, or ranges already sent, changes nothing.

Who a viewer is: the signed-in user, else an HMAC of the browser's viewer
cookie (``MEDIA_ACCESS_VIEWER_COOKIE``) or, before it exists, of the session
or CSRF secret. Only the HMAC is stored: never an IP address, never a key
that could be replayed as a cookie.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import setting
from .models import Viewing
from .tokens import cookie_viewer

# A completed viewing: at least this share of the video's seconds played.
COMPLETION_SHARE = 0.9
# The longest video analytics keeps seconds for (a bitmap of 4.5 KiB at most).
MAX_DURATION = 10 * 3600
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
            start = i
            while bits & 1:
                bits >>= 1
                i += 1
            ranges.append((start, i))
        else:
            # Skip a run of zeros at once.
            low = (bits & -bits).bit_length() - 1
            bits >>= low
            i += low
    return ranges


# ---- writing ----------------------------------------------------------------------


def record(*, video, page, user, viewer, session, ranges, duration, now=None):
    """Merge ``ranges`` into this viewing's seconds: one SELECT ... FOR UPDATE
    and at most one write (an INSERT for a new viewing, an UPDATE when a
    beacon brought new seconds, nothing when it did not). Returns the Viewing."""
    now = now or timezone.now()
    count = seconds_count(duration)
    new_bits = ranges_to_bits(ranges, count)
    key = {"video": video, "page": page, "viewer": viewer, "session": session}
    for attempt in (1, 2):
        with transaction.atomic():
            row = Viewing.objects.select_for_update().filter(**key).first()
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
                count = max(count, seconds_count(row.duration))
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
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = Viewing.objects.filter(updated_at__lt=cutoff).delete()
    return deleted


# ---- reading ----------------------------------------------------------------------


@dataclass
class ViewerRow:
    """One viewer of one video: every viewing of theirs merged."""

    viewer: str
    user: object = None
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
    seconds: int                                          # the curve's length
    viewings: int = 0
    viewers: list = field(default_factory=list)           # ViewerRow, most watched first
    curve: list = field(default_factory=list)             # unique viewers who played second i
    viewings_curve: list = field(default_factory=list)    # viewings that played second i
    total_watch_seconds: int = 0                          # sum of every viewing's seconds

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


def _add_bits(counts, bits):
    for start, stop in bits_to_ranges(bits):
        for i in range(start, min(stop, len(counts))):
            counts[i] += 1


def video_stats(video, viewings=None):
    """The numbers of the report for ``video`` (every page it is shown on)."""
    if viewings is None:
        viewings = Viewing.objects.filter(video=video).select_related("user").order_by("pk")
    viewings = list(viewings)
    duration = video.duration or max((v.duration for v in viewings), default=0.0)
    count = seconds_count(duration)
    stats = VideoStats(duration=duration, seconds=count, viewings=len(viewings),
                       curve=[0] * count, viewings_curve=[0] * count)
    mask = (1 << count) - 1
    rows = {}
    for viewing in viewings:
        bits = from_bytes(viewing.seconds) & mask
        stats.total_watch_seconds += bits.bit_count()
        _add_bits(stats.viewings_curve, bits)
        row = rows.get(viewing.viewer)
        if row is None:
            row = rows[viewing.viewer] = ViewerRow(viewer=viewing.viewer, user=viewing.user)
        row.bits |= bits
        row.viewings += 1
        if row.user is None and viewing.user is not None:
            row.user = viewing.user
        if row.last_watched is None or viewing.updated_at > row.last_watched:
            row.last_watched = viewing.updated_at
    for row in rows.values():
        row.seconds = row.bits.bit_count()
        row.share = row.seconds / count if count else 0.0
        _add_bits(stats.curve, row.bits)
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
