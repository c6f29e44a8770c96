"""ffprobe: what a media file really is, judged by its content."""

from dataclasses import dataclass, field
from fractions import Fraction

import ffmpeg

# Containers ffmpeg reports for still images and text; a file that probes as
# one of these is not a video whatever its extension says.
_NOT_VIDEO_FORMATS = {
    "image2", "png_pipe", "jpeg_pipe", "gif", "webp_pipe", "bmp_pipe", "tiff_pipe",
    "svg_pipe", "tty", "srt", "webvtt", "ass", "lrc", "txt", "mpjpeg",
}
_STILL_IMAGE_CODECS = {"mjpeg", "png", "gif", "bmp", "tiff", "webp", "ansi"}


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
    raw: dict = field(default_factory=dict, repr=False)

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


def _frame_rate(stream):
    for key in ("avg_frame_rate", "r_frame_rate"):
        value = stream.get(key)
        if value and value != "0/0":
            try:
                rate = Fraction(value)
            except (ValueError, ZeroDivisionError):
                continue
            if rate > 0:
                return float(rate)
    return None


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


def probe(path, timeout=60):
    """Probe ``path`` with ffprobe. Raises ProbeError for anything unreadable."""
    try:
        data = ffmpeg.probe(str(path), timeout=timeout)
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else "ffprobe could not read the file"
        # ffprobe prefixes the path; a server's temp path means nothing to users.
        raise ProbeError(reason.removeprefix(f"{path}: "), "\n".join(detail)) from None
    except Exception as exc:  # timeout or ffprobe missing
        raise ProbeError(f"ffprobe failed: {exc}") from None

    fmt = data.get("format") or {}
    info = MediaInfo(
        format_name=fmt.get("format_name", ""),
        duration=_float(fmt.get("duration")),
        size=_int(fmt.get("size")),
        bit_rate=_int(fmt.get("bit_rate")),
        raw=data,
    )
    for stream in data.get("streams") or []:
        kind = stream.get("codec_type")
        disposition = stream.get("disposition") or {}
        if kind == "video" and not disposition.get("attached_pic") and not info.has_video:
            info.has_video = True
            info.video_codec = stream.get("codec_name", "")
            info.width = _int(stream.get("width"))
            info.height = _int(stream.get("height"))
            info.pix_fmt = stream.get("pix_fmt", "")
            info.profile = stream.get("profile", "")
            info.rotation = _rotation(stream)
            info.frame_rate = _frame_rate(stream)
            if info.duration is None:
                info.duration = _float(stream.get("duration"))
        elif kind == "audio" and not info.has_audio:
            info.has_audio = True
            info.audio_codec = stream.get("codec_name", "")
            info.audio_channels = _int(stream.get("channels"))
    return info


def keyframe_gap(path, *, seconds=30, duration=None, timeout=60):
    """The longest time between video keyframes in the first ``seconds``
    (to the end of that window when keyframes stop), from the packet index
    alone: nothing is decoded. None when it cannot be told."""
    try:
        data = ffmpeg.probe(
            str(path), timeout=timeout, select_streams="v:0", read_intervals=f"%+{seconds}",
            show_entries="packet=pts_time,flags",
        )
    except Exception:  # noqa: BLE001 - unknown spacing: the caller plays safe
        return None
    times = sorted(
        float(packet["pts_time"]) for packet in data.get("packets") or []
        if "K" in packet.get("flags", "") and packet.get("pts_time") not in (None, "N/A")
    )
    if not times:
        return None
    end = min(seconds, duration) if duration else times[-1]
    edges = [*times, max(end, times[-1])]
    return max(b - a for a, b in zip(edges, edges[1:]))


def probe_video(path):
    """Probe and insist on a real, moving video. Raises ProbeError saying why not."""
    info = probe(path)
    formats = set(info.format_name.split(","))
    if formats & _NOT_VIDEO_FORMATS or info.video_codec in _STILL_IMAGE_CODECS and not info.duration:
        raise ProbeError("This is an image or text file, not a video.")
    if not info.has_video:
        if info.has_audio:
            raise ProbeError("This file has sound but no picture; upload a video.")
        raise ProbeError("No video stream was found in this file.")
    if not info.width or not info.height:
        raise ProbeError("The video stream has no picture size.")
    if not info.duration or info.duration <= 0:
        raise ProbeError("The video has no duration; it may be truncated.")
    return info
