"""The rendition ladder as data, and how it fits a given source."""

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class Rung:
    """One HLS variant: H.264 High at a capped CRF, AAC stereo."""

    height: int
    maxrate_kbps: int
    crf: int = 23
    audio_kbps: int = 128

    @property
    def label(self):
        return f"{self.height}p"

    @property
    def bufsize_kbps(self):
        return self.maxrate_kbps * 2


DEFAULT_LADDER = (
    Rung(1080, 5000, crf=22),
    Rung(720, 3000, crf=23),
    Rung(540, 1800, crf=23),
    Rung(360, 800, crf=24),
)


def setting(name, default):
    return getattr(settings, f"TRANSCODING_{name}", default)


def get_ladder():
    """``TRANSCODING_LADDER`` (Rungs or dicts of Rung fields), tallest first."""
    configured = setting("LADDER", None) or DEFAULT_LADDER
    rungs = []
    for item in configured:
        if isinstance(item, dict):
            try:
                item = Rung(**item)
            except TypeError as exc:
                raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r}: {exc}") from None
        if not isinstance(item, Rung) or item.height < 2:
            raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r} is not a Rung")
        rungs.append(item)
    if not rungs:
        raise ImproperlyConfigured("TRANSCODING_LADDER is empty")
    return sorted(rungs, key=lambda rung: rung.height, reverse=True)


def segment_seconds():
    return setting("SEGMENT_SECONDS", 6)


def keyframe_seconds():
    return setting("KEYFRAME_SECONDS", 2)


def progressive_height():
    return setting("PROGRESSIVE_HEIGHT", 720)


def ladder_signature():
    """Changes whenever the output would: a job made with another is outdated."""
    payload = {
        "ladder": [asdict(rung) for rung in get_ladder()],
        "segment": segment_seconds(),
        "keyframe": keyframe_seconds(),
        "progressive": progressive_height(),
        "preset": setting("X264_PRESET", "veryfast"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PlannedRung:
    rung: Rung
    width: int
    height: int

    @property
    def label(self):
        return f"{self.height}p"


def even(value):
    """Nearest even number (halves round up): 4:2:0 needs even sizes."""
    return max(2, int(math.floor(value / 2.0 + 0.5)) * 2)


def display_aspect(info):
    """Width/height as the picture should be shown: SAR and rotation applied."""
    stream = next(
        (s for s in info.raw.get("streams", []) if s.get("codec_type") == "video"), {}
    )
    sar = Fraction(1)
    raw_sar = stream.get("sample_aspect_ratio")
    if raw_sar and raw_sar not in ("0:1", "N/A", "1:1"):
        try:
            num, den = (int(part) for part in raw_sar.split(":"))
            if num > 0 and den > 0:
                sar = Fraction(num, den)
        except ValueError:
            pass
    width, height = Fraction(info.width) * sar, Fraction(info.height)
    if info.rotation % 180:
        width, height = height, width
    return width / height


def plan_ladder(info, ladder=None):
    """The rungs this source gets: none taller than the source (never
    upscale), plus one at the source's own height when it sits below the
    top rung, so the best rung is as sharp as the original."""
    ladder = ladder or get_ladder()
    aspect = display_aspect(info)
    shown_height = info.display_size[1] if info.display_size else info.height
    heights = [rung for rung in ladder if rung.height <= shown_height]
    if shown_height < ladder[0].height and all(r.height != even(shown_height) for r in heights):
        # Borrow the caps of the next rung up for the source-height rung.
        above = [rung for rung in ladder if rung.height > shown_height][-1]
        heights.insert(0, Rung(even(shown_height), above.maxrate_kbps, above.crf, above.audio_kbps))
    planned = []
    for rung in heights:
        height = even(rung.height)
        planned.append(PlannedRung(rung, even(height * aspect), height))
    return planned


def lowest_rung(info, ladder=None):
    return plan_ladder(info, ladder)[-1]


def progressive_rung(planned):
    """The rung the progressive MP4 is made from: the target height, or the
    nearest one below it, or the smallest when all are taller."""
    target = progressive_height()
    below = [p for p in planned if p.height <= target]
    return below[0] if below else planned[-1]


def output_frame_rate(info):
    """A constant rate for the outputs (sources may be VFR): the source's
    average, capped at 60 fps, as a fraction ffmpeg accepts."""
    rate = info.frame_rate or 30.0
    if rate > 60:
        rate = 60.0 if rate % 60 == 0 else 30.0
    if rate < 1:
        rate = 1.0
    return Fraction(rate).limit_denominator(1001)
