"""ffprobe: what a media file really is, judged by its content.

Also the one place that says how ffmpeg and ffprobe may open a file that
came from an upload (DESIGN rule 4): only real container demuxers, only
local files, under kernel resource limits.
"""

import json
import math
import os
import re
import subprocess
from dataclasses import dataclass, field
from fractions import Fraction

from django.core.exceptions import ImproperlyConfigured
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

from .conf import setting
from .sandbox import child_env, child_preexec

# The demuxers an upload may be opened with (``PRIVATE_VIDEO_INPUT_FORMATS``,
# ffmpeg's names as ``ffmpeg -demuxers`` lists them): containers that hold
# their media themselves. "mov" is the whole MP4/MOV/3GP family, "matroska"
# covers WebM, "mpegts" is .ts/.mts/.m2ts, "mpeg" is program streams (.mpg,
# .vob), "asf" is .wmv. Whatever the setting says, a format whose file is a
# list of other files, URLs or devices is never allowed.
DEFAULT_INPUT_FORMATS = ("mov", "matroska", "avi", "mpegts", "mxf", "flv", "mpeg", "asf", "ogg", "dv")
_PLAYLIST_FORMATS = {
    "hls", "applehttp", "concat", "dash", "webm_dash_manifest", "imf", "sdp", "rtp", "rtsp", "sap",
}
_NEVER_ALLOWED = _PLAYLIST_FORMATS | {
    "image2", "image2pipe", "lavfi", "tee", "data", "subfile", "ffmetadata", "fbdev", "kmsgrab",
    "video4linux2", "v4l2", "x11grab", "alsa", "pulse", "oss", "jack", "openal", "iec61883",
    "libdc1394", "libcdio",
}
# Only local files: a source on S3 is copied to the worker first. No tcp,
# udp, http, data, subfile, concat or pipe protocols.
INPUT_PROTOCOLS = "file"
# The one exception: a completed S3 multipart upload is probed in place
# through one short presigned GET URL (``probe_video_url``). That call alone
# may use the URL's own scheme (and nothing else: no file, no other scheme),
# follows no redirect, and keeps the demuxer allow-list, none of whose
# formats opens another URL; so the presigned object is all it can reach.
_URL_PROTOCOLS = {"https": "https,tls,tcp", "http": "http,tcp"}
_URL_OPTIONS = ("-max_redirects", "0", "-reconnect", "0")

# The stored original's extension, from the detected demuxer (never from the
# uploader's file name). See ``container_extension``.
_EXTENSIONS = {
    "mov": "mp4", "matroska": "mkv", "avi": "avi", "mpegts": "ts", "mxf": "mxf", "flv": "flv",
    "mpeg": "mpg", "asf": "wmv", "ogg": "ogv", "dv": "dv",
}
_WEBM_CODECS = {"vp8", "vp9", "av1", "opus", "vorbis", "webvtt"}

# Containers ffmpeg reports for still images and text; a file that probes as
# one of these is not a video whatever its extension says.
_NOT_VIDEO_FORMATS = {
    "image2", "png_pipe", "jpeg_pipe", "gif", "webp_pipe", "bmp_pipe", "tiff_pipe",
    "svg_pipe", "tty", "srt", "webvtt", "ass", "lrc", "txt", "mpjpeg",
}
_STILL_IMAGE_CODECS = {"mjpeg", "png", "gif", "bmp", "tiff", "webp", "ansi"}


def allowed_demuxers():
    """The demuxer allow-list; ImproperlyConfigured if it names a playlist,
    list or device format."""
    formats = tuple(setting("INPUT_FORMATS") or DEFAULT_INPUT_FORMATS)
    forbidden = sorted(set(formats) & _NEVER_ALLOWED)
    if forbidden:
        raise ImproperlyConfigured(
            f"PRIVATE_VIDEO_INPUT_FORMATS names {', '.join(forbidden)}: these open other files, URLs or "
            "devices and are never allowed for uploads."
        )
    if not formats or not all(re.fullmatch(r"[a-z0-9_]+", name) for name in formats):
        raise ImproperlyConfigured(f"PRIVATE_VIDEO_INPUT_FORMATS {formats!r} must be ffmpeg demuxer names.")
    return formats


def input_options(demuxer=None, protocols=INPUT_PROTOCOLS):
    """ffmpeg/ffprobe input options for anything made from an upload: the
    demuxer and protocol whitelists, and the demuxer itself once a probe has
    found it (so a file swapped after the probe is not read as something else)."""
    options = {"format_whitelist": ",".join(allowed_demuxers()), "protocol_whitelist": protocols}
    if demuxer:
        options["f"] = demuxer
    return options


def input_args(demuxer=None, protocols=INPUT_PROTOCOLS):
    return [arg for key, value in input_options(demuxer, protocols).items() for arg in (f"-{key}", value)]


def _url_input_args(url):
    """The input options for probing one presigned ``url``: its scheme only."""
    from urllib.parse import urlsplit

    protocols = _URL_PROTOCOLS.get(urlsplit(str(url)).scheme)
    if protocols is None:
        raise ValueError("Only an http(s) URL is probed remotely.")
    return [*input_args(protocols=protocols), *_URL_OPTIONS]


def container_extension(format_name, raw):
    """The extension (without dot) for a file ffprobe reported as
    ``format_name`` with ``raw`` ({"format": …, "streams": […]}), or ""."""
    names = (format_name or "").split(",")
    demuxer = next((name for name in _EXTENSIONS if name in names), None)
    if demuxer == "mov":
        brand = (((raw or {}).get("format") or {}).get("tags") or {}).get("major_brand", "").strip().lower()
        if brand in ("", "qt"):
            return "mov"
        return "3gp" if brand.startswith("3g") else "mp4"
    if demuxer == "matroska":
        codecs = {stream.get("codec_name") for stream in (raw or {}).get("streams") or []}
        return "webm" if codecs and codecs <= _WEBM_CODECS else "mkv"
    return _EXTENSIONS.get(demuxer, "")


class ProbeError(Exception):
    """The file could not be read as media; the message is for humans,
    ``detail`` keeps everything ffprobe said."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail or message


@dataclass
class MediaInfo:
    format_name: str
    duration: float | None
    size: int | None
    bit_rate: int | None
    width: int | None = None
    height: int | None = None
    rotation: int = 0
    frame_rate: float | None = None
    video_codec: str = ""
    pix_fmt: str = ""
    profile: str = ""
    audio_codec: str = ""
    audio_channels: int | None = None
    has_audio: bool = False
    has_video: bool = False
    # ffprobe's index of the picture the pipeline uses (main_video_stream).
    video_index: int | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def video_selector(self):
        """The stream specifier of that picture for ffmpeg (``-map 0:<it>``):
        its index, or the first video stream that is not cover art."""
        return str(self.video_index) if self.video_index is not None else "V:0"

    @property
    def demuxer(self):
        """The allowed demuxer ffprobe chose, to force on later ffmpeg runs."""
        names = self.format_name.split(",")
        return next((name for name in allowed_demuxers() if name in names), None)

    @property
    def extension(self):
        return container_extension(self.format_name, self.raw)

    @property
    def display_size(self):
        """(width, height) as shown, after rotation metadata is applied."""
        if self.width is None or self.height is None:
            return None
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


def _rotation(stream):
    rotation = 0
    tags = stream.get("tags") or {}
    if "rotate" in tags:
        rotation = int(float(tags["rotate"]))
    for side_data in stream.get("side_data_list") or []:
        if "rotation" in side_data:
            rotation = -int(float(side_data["rotation"]))
    return rotation % 360


def parse_rate(text):
    """A rate as ffprobe writes it ("30000/1001"), in frames per second, or
    None for "0/0", junk or nothing."""
    try:
        rate = Fraction(text or "")
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def _frame_rate(stream):
    return parse_rate(stream.get("avg_frame_rate")) or parse_rate(stream.get("r_frame_rate"))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def finite_float(value):
    """A number ffprobe wrote ("12.5", "N/A", "inf"), or None unless it is a finite one."""
    number = _float(value)
    return number if number is not None and math.isfinite(number) else None


def _refusal(stderr):
    """A sentence for a file the whitelists refused, from ffprobe's log, or None."""
    match = re.search(r"^\[([\w-]+) @ 0x[0-9a-f]+\] Format not on whitelist", stderr, re.MULTILINE)
    if match:
        name = match.group(1)
        if name in _PLAYLIST_FORMATS:
            return _("It is a playlist or a list of other files or streams (%(name)s); upload the video file itself.") % {
                "name": name
            }
        if name in _NEVER_ALLOWED or name in _NOT_VIDEO_FORMATS or name.endswith("_pipe") or name in (
            "apng", "mjpeg", "gif", "mpjpeg", "smjpeg", "ico", "alias_pix", "brender_pix",
        ):
            return _("This is an image or text file, not a video.")
        return _(
            "Its format (%(name)s) is not one this site accepts; upload an MP4, MOV, MKV, WebM, AVI, "
            "MPEG-TS, MXF or FLV video."
        ) % {"name": name}
    if re.search(r"Protocol '[\w-]+' not on whitelist", stderr):
        return _("It refers to other files or network addresses; upload the video file itself.")
    return None


def run_ffprobe(path, args, timeout=60, *, url=False):
    """ffprobe's JSON answer for ``path`` (``args`` say what to show), with
    the input whitelists and under resource limits. Raises ProbeError.
    ``url=True``: ``path`` is a presigned http(s) URL (``probe_video_url``)."""
    inputs = _url_input_args(path) if url else input_args()
    cmd = ["ffprobe", "-v", "error", "-hide_banner", *args, "-of", "json", *inputs, "-i", str(path)]
    try:
        completed = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
            preexec_fn=child_preexec("ffprobe"), env=child_env(),
        )
    except subprocess.TimeoutExpired:
        raise ProbeError(
            _("Reading the file took longer than %(seconds)s seconds.") % {"seconds": f"{timeout:g}"}
        ) from None
    except OSError as exc:  # ffprobe missing or not executable
        raise ProbeError(_("ffprobe could not be started (%(reason)s).") % {"reason": exc.strerror}) from None
    stderr = completed.stderr.decode("utf-8", "replace").strip()
    if completed.returncode != 0:
        detail = stderr.replace(str(path), "<file>")
        if completed.returncode < 0:
            raise ProbeError(_("Reading the file needed more time or memory than this site allows."), detail)
        readable = _refusal(stderr)
        if readable:
            raise ProbeError(readable, detail)
        lines = detail.splitlines()
        reason = lines[-1] if lines else _("ffprobe could not read the file")
        if "Invalid data found when processing input" in reason:
            reason = _("Its content is not a media format ffmpeg knows; it is damaged or not a video.")
        # ffprobe prefixes the path; a server's temp path means nothing to users.
        raise ProbeError(reason.removeprefix("<file>: "), detail)
    try:
        return json.loads(completed.stdout or b"{}")
    except ValueError:
        raise ProbeError(_("ffprobe gave an unreadable answer."), stderr) from None


def probe(path, timeout=60, *, url=False):
    """Probe ``path`` with ffprobe. Raises ProbeError for anything unreadable."""
    data = run_ffprobe(path, ["-show_format", "-show_streams"], timeout=timeout, url=url)

    fmt = data.get("format") or {}
    info = MediaInfo(
        format_name=fmt.get("format_name", ""),
        duration=_float(fmt.get("duration")),
        size=_int(fmt.get("size")),
        bit_rate=_int(fmt.get("bit_rate")),
        raw=data,
    )
    start = _float(fmt.get("start_time"))
    names = info.format_name.split(",")
    if ("matroska" in names or "mov" in names) and info.duration and start and 0.5 < start < info.duration:
        # Matroska's segment duration, as ffmpeg writes it, is where the
        # last frame ends, counted from 0 whatever the first timestamp: a
        # 2 s clip whose timestamps start at 1 h "lasts" 3602 s. So is an
        # MP4's or MOV's (its movie duration counts an edit list's opening
        # gap): a broadcast recording copied with its own clock (-copyts)
        # starts at hours. ffmpeg plays every source from its first
        # timestamp, so the renditions last the difference.
        info.duration -= start
    streams = data.get("streams") or []
    video = main_video_stream(streams)
    if video is not None:
        info.has_video = True
        info.video_index = _int(video.get("index"))
        info.video_codec = video.get("codec_name", "")
        info.width = _int(video.get("width"))
        info.height = _int(video.get("height"))
        info.pix_fmt = video.get("pix_fmt", "")
        info.profile = video.get("profile", "")
        info.rotation = _rotation(video)
        info.frame_rate = _frame_rate(video)
        if info.duration is None:
            info.duration = _float(video.get("duration"))
        if info.duration is None and info.video_index is not None:
            # A file written live (a browser's MediaRecorder WebM, a
            # Matroska stream) states no duration: its packets do.
            info.duration = _duration_from_packets(path, info.video_index, timeout=timeout, url=url)
    audio = next(iter(sound_streams(streams)), None)
    if audio is not None:
        info.has_audio = True
        info.audio_codec = audio.get("codec_name", "")
        info.audio_channels = _int(audio.get("channels"))
    return info


def stream_seconds(stream):
    """How long one ffprobe stream lasts, or None when it does not say:
    Matroska's per-track DURATION tag (the muxer's own figure; its
    ``duration`` field may be the file's), else ``duration``, else frames
    over frame rate."""
    for key, value in (stream.get("tags") or {}).items():
        if key.upper().split("-")[0] == "DURATION":
            seconds = _clock_seconds(value)
            if seconds is not None:
                return seconds
    seconds = _float(stream.get("duration"))
    if seconds is not None:
        return seconds
    frames, rate = _int(stream.get("nb_frames")), _frame_rate(stream)
    if frames is not None and rate:
        return frames / rate
    return None


def is_empty_stream(stream):
    """A track that is there but holds nothing (no packets, zero length)."""
    return _int(stream.get("nb_frames")) == 0 or stream_seconds(stream) == 0


def sound_streams(streams):
    """The audio streams of ffprobe's ``streams`` that hold sound."""
    return [s for s in streams if s.get("codec_type") == "audio" and not is_empty_stream(s)]


def main_video_stream(streams):
    """The picture a viewer means, of ffprobe's ``streams``: of the video
    streams that are not cover art, the longest; the first when none says
    how long it is. A one-frame still (a Matroska file's cover, which loses
    its attached-picture flag there) or a thumbnail track may come first."""
    candidates = [
        s for s in streams
        if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda s: stream_seconds(s) or 0.0)  # the first of equals


def _clock_seconds(value):
    """Seconds from "HH:MM:SS.fraction", or None."""
    try:
        hours, minutes, seconds = str(value).strip().split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _duration_from_packets(path, index, *, timeout, url):
    """The end of the last packet of stream ``index``: reads the packet
    index only (nothing is decoded). None when it cannot be told."""
    try:
        data = run_ffprobe(path, [
            "-select_streams", str(index), "-show_entries", "packet=pts_time,duration_time",
        ], timeout=timeout, url=url)
    except ProbeError:
        return None
    ends = [
        _float(packet.get("pts_time")) + (_float(packet.get("duration_time")) or 0.0)
        for packet in data.get("packets") or [] if _float(packet.get("pts_time")) is not None
    ]
    return max(ends) if ends else None


def opening_packets(path, *, stream="V:0", seconds=30, count=None, fields="pts_time,flags", timeout=60):
    """The first ``seconds`` (or ``count`` packets) of ``stream``'s packets,
    each with ``fields``, from the packet index alone: nothing is decoded.
    None when they cannot be read."""
    interval = f"%+#{count}" if count else f"%+{seconds}"
    try:
        data = run_ffprobe(path, [
            "-select_streams", stream, "-read_intervals", interval, "-show_entries", f"packet={fields}",
        ], timeout=timeout)
    except Exception:  # noqa: BLE001 - unknown: the callers play safe
        return None
    return data.get("packets") or []


def keyframe_gap(packets, *, seconds=30, duration=None):
    """The longest time between keyframes among ``opening_packets`` read for
    ``seconds`` (to the end of that window when keyframes stop). None when it
    cannot be told."""
    times = sorted(
        float(packet["pts_time"]) for packet in packets or []
        if "K" in packet.get("flags", "") and packet.get("pts_time") not in (None, "N/A")
    )
    if not times:
        return None
    end = min(seconds, duration) if duration else times[-1]
    edges = [*times, max(end, times[-1])]
    return max(b - a for a, b in zip(edges, edges[1:]))


def starts_with_discarded_packets(packets):
    """Whether the container drops some of these ``opening_packets`` of the
    picture on playback (an MP4 edit list cutting the start, a trim done by
    copying): a copy of the packets as they are would show what was cut.
    (AAC's priming packet is always marked so: only the picture counts.)
    True when they could not be read (the caller plays safe)."""
    if packets is None:
        return True
    return any("D" in packet.get("flags", "") for packet in packets)


def probe_video(path):
    """Probe and insist on a real, moving video. Raises ProbeError saying why not."""
    info = probe(path)
    return _insist_on_video(info, os.path.getsize(path))


def probe_video_url(url, size, timeout=60):
    """``probe_video`` for a stored object read in place through one short
    presigned GET ``url`` (an S3 multipart upload, which the web server never
    held). ``size`` is the object's length as the store reports it. Only that
    URL's scheme is allowed, for this call only; redirects are refused."""
    return _insist_on_video(probe(url, timeout=timeout, url=True), size)


def _insist_on_video(info, size):
    formats = set(info.format_name.split(","))
    if formats & _NOT_VIDEO_FORMATS or info.video_codec in _STILL_IMAGE_CODECS and not info.duration:
        raise ProbeError(_("This is an image or text file, not a video."))
    if not info.has_video:
        if info.has_audio:
            raise ProbeError(_("This file has sound but no picture; upload a video."))
        raise ProbeError(_("No video stream was found in this file."))
    if not info.width or not info.height:
        raise ProbeError(_("The video stream has no picture size."))
    if not info.duration or info.duration <= 0:
        raise ProbeError(_("The video has no duration; it may be truncated."))
    check_plausible_size(info, size)
    return info


def _clock(seconds):
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def longest_plausible_seconds(size):
    """The longest a file of ``size`` bytes may play by ``check_plausible_size``'s
    floor, or None (no size, no floor). The transcoder stops ffmpeg past it:
    a header can be forged to claim less than the file plays."""
    floor = float(setting("MIN_BYTES_PER_SECOND"))
    if not size or floor <= 0:
        return None
    return size / floor


def check_plausible_size(info, size):
    """Refuse a file far too small for the duration or frame count it claims
    (a few KB saying it lasts hours): the ladder would make hours of video
    from it.

    The floor, ``PRIVATE_VIDEO_MIN_BYTES_PER_SECOND`` (default 4), is far below
    any real recording. The sparsest real video is a screen recording of a
    still screen: at 1 frame/s each skipped H.264 frame plus its container
    index costs 10-20 bytes (a 720p slide with a 10-minute GOP measures
    ~150 B/s); variable-rate recorders that write only changed frames still
    write keyframes of several KB (3 frames in 10 minutes measures ~76 B/s);
    any sound track adds 300 B/s or more. A frame takes at least one byte in
    every codec and container, so more frames than bytes is refused too."""
    floor = float(setting("MIN_BYTES_PER_SECOND"))
    # The longest of the file's duration and its tracks' own: an MP4's
    # movie header may say 1 s while its track (which ffmpeg plays) lasts hours.
    claimed = max([info.duration or 0.0] + [
        seconds for s in info.raw.get("streams") or [] if s.get("codec_type") in ("video", "audio")
        and (seconds := finite_float(s.get("duration"))) is not None
    ])
    if claimed and size < claimed * floor:
        raise ProbeError(_(
            "The file is %(size)s but claims to last %(duration)s: too small for a "
            "real video that long. It is damaged or made to look longer than it is."
        ) % {"size": filesizeformat(size), "duration": _clock(claimed)})
    frames = max((_int(s.get("nb_frames")) or 0 for s in info.raw.get("streams") or []
                  if s.get("codec_type") == "video"), default=0)
    if frames > size:
        raise ProbeError(_(
            "The file is %(size)s but claims %(frames)s frames: too small for a real video "
            "with that many. It is damaged or made to look longer than it is."
        ) % {"size": filesizeformat(size), "frames": f"{frames:,}"})
