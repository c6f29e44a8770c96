"""The rendition ladder as data, and how it fits a given source."""

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from fractions import Fraction

from django.core.exceptions import ImproperlyConfigured

from private_video.probe import is_empty_stream, main_video_stream, parse_rate, sound_streams, stream_seconds

from .conf import DEFAULTS, setting


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


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def get_ladder():
    """``TRANSCODING_LADDER`` (Rungs or dicts of Rung fields), tallest first.
    Raises ImproperlyConfigured naming the entry that is wrong (the system
    check ``private_video_transcoding.E004`` reports it)."""
    configured = setting("LADDER")
    if configured is None:  # set to None: the default, as when unset
        configured = DEFAULTS["LADDER"]
    if isinstance(configured, (str, bytes, dict)) or not hasattr(configured, "__iter__"):
        raise ImproperlyConfigured(
            f"TRANSCODING_LADDER must be a list of rungs (dicts of Rung fields), not {configured!r}"
        )
    rungs = []
    for item in configured:
        if isinstance(item, dict):
            try:
                item = Rung(**item)
            except TypeError as exc:
                raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r}: {exc}") from None
        if not isinstance(item, Rung):
            raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r} is not a Rung or a dict of its fields")
        for name in ("height", "maxrate_kbps", "audio_kbps"):
            if not _positive_int(getattr(item, name)):
                raise ImproperlyConfigured(
                    f"TRANSCODING_LADDER entry {item!r}: {name} must be a positive whole number"
                )
        if not (isinstance(item.crf, int) and not isinstance(item.crf, bool) and 0 <= item.crf <= 51):
            raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r}: crf must be a whole number from 0 to 51")
        if item.height < 2:
            raise ImproperlyConfigured(f"TRANSCODING_LADDER entry {item!r}: height must be at least 2")
        rungs.append(item)
    if not rungs:
        raise ImproperlyConfigured("TRANSCODING_LADDER is empty")
    return sorted(rungs, key=lambda rung: rung.height, reverse=True)


def segment_seconds():
    return setting("SEGMENT_SECONDS")


def keyframe_seconds():
    return setting("KEYFRAME_SECONDS")


def progressive_height():
    return setting("PROGRESSIVE_HEIGHT")


def ladder_signature():
    """Changes whenever the output would: a job made with another is outdated."""
    payload = {
        # Bumped when the shape of the outputs changes (2: short-side ladder,
        # audio as separate renditions, deinterlacing and tone mapping).
        "layout": 2,
        "ladder": [asdict(rung) for rung in get_ladder()],
        "segment": segment_seconds(),
        "keyframe": keyframe_seconds(),
        "progressive": progressive_height(),
        "preset": setting("X264_PRESET"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PlannedRung:
    """A rung fitted to one source. The ladder's heights are the short side
    of the picture as shown, so a portrait 720x1280 clip gets 720x1280,
    540x960 and 360x640, and its label ("720p") names that short side."""

    rung: Rung
    width: int
    height: int

    @property
    def short_side(self):
        return min(self.width, self.height)

    @property
    def label(self):
        return f"{self.short_side}p"


def even(value):
    """Nearest even number (halves round up): 4:2:0 needs even sizes."""
    return max(2, int(math.floor(value / 2.0 + 0.5)) * 2)


def even_below(value):
    """The even number at or below ``value``: never a pixel more than there is."""
    return max(2, int(math.floor(value / 2.0)) * 2)


def source_video_stream(info):
    """ffprobe's entry for the picture the pipeline uses (``probe.main_video_stream``)."""
    streams = info.raw.get("streams", [])
    if info.video_index is not None:
        for stream in streams:
            if stream.get("index") == info.video_index:
                return stream
    return main_video_stream(streams) or {}


def display_dimensions(info):
    """(width, height) as the picture should be shown, exact: sample aspect
    ratio applied to the width, then the rotation of the display matrix."""
    stream = source_video_stream(info)
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
    return width, height


def display_aspect(info):
    """Width/height as the picture should be shown: SAR and rotation applied."""
    width, height = display_dimensions(info)
    return width / height


def fit_short_side(info, short_side):
    """(width, height), both even, of the shown picture scaled so that its
    short side is ``short_side``; the long side never exceeds the source's."""
    width, height = display_dimensions(info)
    longest = max(even_below(max(width, height)), 2)
    long_side = min(even(short_side * max(width, height) / min(width, height)), longest)
    return (long_side, short_side) if width >= height else (short_side, long_side)


def plan_ladder(info, ladder=None):
    """The rungs this source gets, measured on the short side of the picture
    as shown: none bigger than the source (never upscale), plus one at the
    source's own size when it sits below the top rung, so the best rung is
    as sharp as the original."""
    ladder = ladder or get_ladder()
    width, height = display_dimensions(info)
    source_short = even_below(min(width, height))
    rungs = [(rung, even(rung.height)) for rung in ladder if even(rung.height) <= source_short]
    if source_short < even(ladder[0].height) and all(short != source_short for _, short in rungs):
        # Borrow the caps of the next rung up for the source-size rung.
        above = [rung for rung in ladder if even(rung.height) > source_short][-1]
        own = Rung(source_short, above.maxrate_kbps, above.crf, above.audio_kbps)
        rungs.insert(0, (own, source_short))
    return [PlannedRung(rung, *fit_short_side(info, short)) for rung, short in rungs]


def lowest_rung(info, ladder=None):
    return plan_ladder(info, ladder)[-1]


def progressive_rung(planned):
    """The rung the progressive MP4 is made from: the target short side, or
    the nearest one below it, or the smallest when all are bigger."""
    target = progressive_height()
    below = [p for p in planned if p.short_side <= target]
    return below[0] if below else planned[-1]


# ffprobe's field_order for interlaced pictures (top/bottom field first,
# and the two "coded one way, shown the other" orders).
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})
# Transfer functions of HDR video: PQ (HDR10, Dolby Vision base) and HLG.
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})


def is_interlaced(info):
    return source_video_stream(info).get("field_order") in INTERLACED_FIELD_ORDERS


# ffmpeg's pixel formats that carry transparency: ProRes 4444, PNG, QuickTime
# Animation, FFV1 or Ut Video exports of titles and overlays.
_ALPHA_PIXEL_FORMATS = re.compile(r"^(yuva|gbrap|ya\d|rgba|bgra|argb|abgr|ayuv)")
# Decoders that read a WebM picture's transparency: ffmpeg's own VP8 and VP9
# decoders drop it (it is a second picture in each block's additions).
_ALPHA_DECODERS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}


def has_alpha(info):
    """Whether the picture is partly transparent: its pixel format has an
    alpha plane, or it is WebM VP8/VP9 stored with one (``alpha_decoder``)."""
    return bool(_ALPHA_PIXEL_FORMATS.match(info.pix_fmt or "")) or alpha_decoder(info) is not None


def alpha_decoder(info):
    """The decoder that keeps the transparency of a VP8 or VP9 picture
    written with an alpha channel (WebM's ALPHA_MODE 1), or None."""
    stream = source_video_stream(info)
    if str(_tags(stream).get("alpha_mode", "")).strip() != "1":
        return None
    return _ALPHA_DECODERS.get(stream.get("codec_name"))


def hdr_transfer(info):
    """The source's HDR transfer function, or None for SDR."""
    transfer = source_video_stream(info).get("color_transfer")
    return transfer if transfer in HDR_TRANSFERS else None


def video_level(info):
    """H.264 level times ten (``41`` for 4.1), or None when unknown."""
    level = source_video_stream(info).get("level")
    try:
        level = int(level)
    except (TypeError, ValueError):
        return None
    return level if level > 0 else None


# Source language tags are ISO 639-2 (three letters); HLS wants RFC 5646,
# which uses the two-letter code where one exists.
_ISO_639_2_TO_1 = {
    "ara": "ar", "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "chi": "zh", "zho": "zh",
    "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en", "est": "et",
    "fas": "fa", "per": "fa", "fin": "fi", "fra": "fr", "fre": "fr", "heb": "he", "hin": "hi",
    "hrv": "hr", "hun": "hu", "ind": "id", "isl": "is", "ice": "is", "ita": "it", "jpn": "ja",
    "kor": "ko", "lav": "lv", "lit": "lt", "msa": "ms", "may": "ms", "nld": "nl", "dut": "nl",
    "nor": "no", "nob": "nb", "nno": "nn", "pol": "pl", "por": "pt", "ron": "ro", "rum": "ro",
    "rus": "ru", "slk": "sk", "slo": "sk", "slv": "sl", "spa": "es", "srp": "sr", "swe": "sv",
    "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi", "cym": "cy", "wel": "cy", "gle": "ga",
    "eus": "eu", "baq": "eu", "glg": "gl",
}
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def language_tag(raw):
    """RFC 5646 tag for a stream's language tag, or "" when unknown."""
    raw = (raw or "").strip().replace("_", "-")
    if not raw or not _LANGUAGE_TAG.match(raw) or raw.lower() in ("und", "mis", "mul", "zxx", "unk"):
        return ""
    primary, _, rest = raw.partition("-")
    primary = _ISO_639_2_TO_1.get(primary.lower(), primary.lower())
    return primary + ("-" + rest if rest else "")


def language_name(tag):
    """A language's own name ("Français") for a menu, or "" when unknown."""
    from django.conf.locale import LANG_INFO

    entry = LANG_INFO.get(tag.lower()) or LANG_INFO.get(tag.split("-")[0].lower()) or {}
    if "fallback" in entry:
        entry = LANG_INFO.get(entry["fallback"][0], {})
    name = entry.get("name_local", "")
    return name[:1].upper() + name[1:]


def _playlist_text(value):
    # A quoted-string in a playlist may hold neither quotes nor line breaks.
    return " ".join(str(value).replace('"', "'").split())[:64]


# What muxers write as an MP4 track's handler name when nobody named it.
_DEFAULT_HANDLER_NAMES = {"core media audio", "soun", "sound", "audio", "stereo", "mono"}


def _track_title(handler_name):
    """MP4 keeps a track's title as its handler name (ffmpeg writes the
    ``title`` tag there); the names tools put there by default are not titles."""
    name = (handler_name or "").strip()
    lowered = name.lower()
    if not name or "handler" in lowered or lowered in _DEFAULT_HANDLER_NAMES or lowered.startswith("gpac"):
        return ""
    return name


@dataclass(frozen=True)
class AudioTrack:
    """One of the source's audio streams, packaged once as an alternate HLS
    audio rendition that every video rung refers to."""

    index: int  # position among the source's audio streams: ffmpeg's a:<index>
    language: str  # RFC 5646, "" when the source does not say
    name: str  # what the player's menu shows
    codec: str
    channels: int | None
    default: bool
    # Further audio streams (their a:<index>) joined to this one as its
    # channels, in order: a camera's left and right mono tracks.
    merge: tuple = ()

    @property
    def label(self):
        return f"audio{self.index + 1}"


def _tags(stream):
    return {key.lower(): value for key, value in (stream.get("tags") or {}).items()}


def _mono_pair(streams):
    """The positions of the first two of ``streams`` (the source's audio
    streams) when they are a left and a right channel written as tracks of
    their own, as professional cameras and recorders do: every stream with
    sound is mono, none has a name, all have one language (or none), and
    the first two share codec and sample rate. None otherwise: named or
    differently tagged tracks are alternatives (languages, commentary)."""
    sound = [(index, stream) for index, stream in enumerate(streams) if not is_empty_stream(stream)]
    if len(sound) < 2 or any(stream.get("channels") != 1 for _, stream in sound):
        return None
    tags = [_tags(stream) for _, stream in sound]
    if any(tag.get("title") or _track_title(tag.get("handler_name")) for tag in tags):
        return None
    if len({language_tag(tag.get("language")) for tag in tags}) != 1:
        return None
    (left_index, left), (right_index, right) = sound[:2]
    if (left.get("codec_name"), left.get("sample_rate")) != (right.get("codec_name"), right.get("sample_rate")):
        return None
    return left_index, right_index


def plan_audio(info):
    """Every audio stream of the source, in order; the first is the default.
    A camera's left and right mono tracks (``_mono_pair``) are one stereo track."""
    streams = [s for s in info.raw.get("streams", []) if s.get("codec_type") == "audio"]
    # An upload is hostile input: a hundred audio streams are not a hundred encodes.
    streams = streams[: int(setting("MAX_AUDIO_TRACKS"))]
    pair = _mono_pair(streams)
    tracks, names = [], set()
    for index, stream in enumerate(streams):
        if is_empty_stream(stream):
            continue  # a track with no sound in it: an HLS rendition of nothing never plays
        if pair and index == pair[1]:
            continue  # the right channel of the first track
        tags = _tags(stream)
        language = language_tag(tags.get("language"))
        name = _playlist_text(tags.get("title") or _track_title(tags.get("handler_name")))
        name = name or language_name(language) or (language or f"Audio {index + 1}")
        base, count = name, 2
        while name in names:
            name, count = f"{base} ({count})", count + 1
        names.add(name)
        merge = (pair[1],) if pair and index == pair[0] else ()
        tracks.append(AudioTrack(
            index=index, language=language, name=name, codec=stream.get("codec_name", ""),
            channels=2 if merge else stream.get("channels"), default=not tracks, merge=merge,
        ))
    return tracks


def picture_shortfall(info):
    """Seconds the sound goes on after the picture ends (0 under half a
    second), within the file's duration: the ladder holds the last picture
    that long."""
    picture = stream_seconds(source_video_stream(info))
    sound = max((seconds for s in sound_streams(info.raw.get("streams", [])) if (seconds := stream_seconds(s))),
                default=None)
    if picture is None or sound is None:
        return 0
    if info.duration:
        sound = min(sound, info.duration)
    shortfall = sound - picture
    return shortfall if shortfall >= 0.5 else 0


# The sample rates the AAC renditions keep: the two every browser's decoder
# plays and HLS authoring asks for. Windows' AAC decoder (Firefox, Edge's
# fallback) plays nothing above 48 kHz, so a recorder's 96 or 192 kHz sound
# was silent or refused there; below 44.1 kHz (phones' voice memos at 8 kHz,
# old cameras at 11.025 or 32 kHz) an AAC frame lasts up to 128 ms, and the
# sound track ran that much past the picture and started that much late in
# players that skip no priming. Any other rate is resampled to 48 kHz.
AUDIO_SAMPLE_RATES = (44100, 48000)


def source_sample_rate(info, track):
    """The sample rate of ``track``'s source stream, or None when not known."""
    streams = [s for s in info.raw.get("streams", []) if s.get("codec_type") == "audio"]
    stream = streams[track.index] if track.index < len(streams) else {}
    try:
        return int(stream.get("sample_rate") or 0) or None
    except (TypeError, ValueError):
        return None


def audio_sample_rate(info, track):
    """The sample rate ``track``'s AAC rendition is made at: the source's own
    when it is one of ``AUDIO_SAMPLE_RATES``, else 48 kHz."""
    rate = source_sample_rate(info, track)
    return rate if rate in AUDIO_SAMPLE_RATES else 48000


def audio_kbps():
    """The one audio rendition is made at the ladder's highest audio rate."""
    return max(rung.audio_kbps for rung in get_ladder())


# Where ``pipeline.note_frame_spacing`` notes, in ffprobe's entry of the
# picture, the rate that keeps every frame of its fastest parts.
FASTEST_RATE_KEY = "fastest_frame_rate"
# Rates cameras, screen recorders and broadcasts use: a measured rate within
# 8 % of one (timestamps rounded to milliseconds, capture jitter) is that one.
_COMMON_RATES = tuple(Fraction(rate) for rate in (
    "10", "12", "15", "20", "24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60",
))


def fastest_frame_rate(times, base=None):
    """The rate that keeps every frame of the fastest parts of a picture
    whose presentation ``times`` (seconds, any order) are given: from the
    spacing of frames two apart (one late frame is jitter, not a faster
    part), the tenth shortest in a hundred (a few bunched frames are not a
    part either), snapped to ``base`` (the stream's r_frame_rate), else to
    the nearest common rate, within 8 %. None when it cannot be told or is
    no sane rate (above 240)."""
    times = sorted(set(times))
    spans = sorted((b - a) / 2 for a, b in zip(times, times[2:]) if b > a)
    if len(spans) < 10:
        return None
    spacing = spans[len(spans) // 10]
    if spacing <= 1 / 240:
        return None
    measured = 1 / spacing
    near = [rate for rate in _COMMON_RATES if abs(float(rate) / measured - 1) <= 0.08]
    if base and base <= 60 and abs(base / measured - 1) <= 0.08:
        return Fraction(base).limit_denominator(1001)
    if near:
        return min(near, key=lambda rate: abs(float(rate) / measured - 1))
    return Fraction(measured).limit_denominator(1001)


def output_frame_rate(info):
    """A constant rate for the outputs (sources may be VFR): the source's
    own rate, at most 60 fps, as a fraction ffmpeg accepts.

    A variable rate is made constant at the rate of its fastest parts (noted
    by ``pipeline.note_frame_spacing``), not at its average: 10 fps here and
    30 fps there averages ~20, which drops every third frame of the 30 fps
    parts (judder); at 30 the 10 fps parts repeat their frames, which costs
    x264 next to nothing. Interlaced sources keep their frame rate.

    The average, unless the stream's base rate is a little above it (within
    5 %): the average of a fragmented MP4 (a browser's or OBS's recording)
    is estimated from its fragments, 24.74 for a 25 fps file, and encoding
    at that drops a frame now and then. Above 60 fps the rate is divided by
    the smallest whole number that brings it to 60 or below, so every kept
    frame is evenly spaced: 120 and 240 give 60, 100 gives 50, 144 gives 48."""
    rate = info.frame_rate or 30.0
    stream = source_video_stream(info)
    base = parse_rate(stream.get("r_frame_rate"))
    if base and base <= 60 and rate < base <= rate * 1.05:
        rate = base
    fastest = parse_rate(stream.get(FASTEST_RATE_KEY))
    # Not for interlaced pictures: broadcast is steady, and a demuxer that
    # hands out each field as a packet (H.264 field pictures) would double it.
    if fastest and fastest > rate * 1.05 and not is_interlaced(info):
        rate = fastest
    if rate > 60:
        rate = rate / math.ceil(rate / 60 - 1e-9)
    if rate < 1:
        rate = 1.0
    return Fraction(rate).limit_denominator(1001)
