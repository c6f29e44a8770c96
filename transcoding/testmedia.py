"""Media made on the spot with ffmpeg's lavfi sources: for the demo page,
the tests and the benchmarks. Nothing is downloaded."""

import json
import subprocess
from pathlib import Path


def make_test_video(
    path,
    *,
    duration=4,
    width=320,
    height=180,
    fps=25,
    vcodec="libx264",
    pix_fmt="yuv420p",
    audio=True,
    video=True,
    acodec="aac",
    preset="veryfast",
    faststart=True,
    video_args=(),
    extra_args=(),
):
    """Write a short clip with a moving test pattern (and a tone) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    if video:
        cmd += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    if video:
        cmd += ["-c:v", vcodec, "-pix_fmt", pix_fmt, *video_args]
        if vcodec == "libx264":
            cmd += ["-preset", preset, "-g", str(fps * 2)]
    if audio:
        cmd += ["-c:a", acodec]
        if acodec == "aac":
            cmd += ["-b:a", "96k"]
    if faststart and path.suffix.lower() in {".mp4", ".mov", ".m4v"}:
        cmd += ["-movflags", "+faststart"]
    cmd += [*extra_args, "-shortest", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path


def make_colour_video(path, colours, *, seconds_each, tone=False):
    """One solid colour after another (ffmpeg colour names), ``seconds_each``
    seconds each, 320x180 at 25 fps, with a 440 Hz tone if ``tone``."""
    inputs = []
    for name in colours:
        inputs += ["-f", "lavfi", "-i", f"color=c={name}:s=320x180:r=25:d={seconds_each}"]
    audio = []
    if tone:
        inputs += ["-f", "lavfi", "-i",
                   f"sine=frequency=440:sample_rate=48000:duration={seconds_each * len(colours)}"]
        audio = ["-map", f"{len(colours)}:a", "-c:a", "aac"]
    joined = "".join(f"[{index}:v]" for index in range(len(colours))) + f"concat=n={len(colours)}:v=1:a=0[v]"
    _ffmpeg(*inputs, "-filter_complex", joined, "-map", "[v]", *audio,
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50",
            "-movflags", "+faststart", str(path))
    return Path(path)


def ffprobe_json(path, *args):
    """ffprobe's JSON for ``path`` (streams and format unless args say otherwise)."""
    cmd = ["ffprobe", "-v", "error", "-of", "json", *(args or ("-show_streams", "-show_format")), str(path)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout)


def keyframe_times(path):
    """Presentation times of the video keyframes, in seconds."""
    data = ffprobe_json(
        path, "-select_streams", "v:0", "-show_entries", "packet=pts_time,flags",
    )
    return [
        round(float(packet["pts_time"]), 3)
        for packet in data.get("packets", [])
        if "K" in packet.get("flags", "") and packet.get("pts_time") not in (None, "N/A")
    ]


def video_packet_hashes(path):
    """One hash per video packet, unchanged by remuxing: equal lists mean
    the video was copied, not re-encoded."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "framemd5", "-"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    return [line.rsplit(",", 1)[-1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def mean_luma(path):
    """Average brightness (0-255) of an image, by ffmpeg's signalstats."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "lavfi", "-i", f"movie={path},signalstats",
         "-show_entries", "frame_tags=lavfi.signalstats.YAVG", "-of", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    frames = json.loads(out).get("frames", [])
    return float(frames[0]["tags"]["lavfi.signalstats.YAVG"])


def set_display_rotation(path, degrees):
    """Mark the first track of an MP4 as shown rotated, as phones do: they
    store the picture sideways and put the turn in the track header."""
    import struct

    matrices = {
        90: (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000),
        180: (-0x10000, 0, 0, 0, -0x10000, 0, 0, 0, 0x40000000),
        270: (0, -0x10000, 0, 0x10000, 0, 0, 0, 0, 0x40000000),
    }
    data = bytearray(Path(path).read_bytes())
    at = data.index(b"tkhd") + 4
    version = data[at]
    # version, flags, times, track id, reserved, duration, reserved(8),
    # layer, group, volume, reserved: then the 3x3 matrix.
    offset = at + 4 + (8 if version == 0 else 16) + 8 + (4 if version == 0 else 8) + 8 + 8
    data[offset:offset + 36] = struct.pack(">9i", *matrices[degrees])
    Path(path).write_bytes(bytes(data))
    return path


def _ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=300)


def rotate_by_matrix(source, path, degrees):
    """A copy of ``source`` whose display matrix says "turn by ``degrees``",
    written by ffmpeg itself (ffmpeg 5.1 honours the ``rotate`` tag only when
    copying; on an encode the tag is dropped)."""
    _ffmpeg("-i", str(source), "-map", "0", "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(path))
    return Path(path)


def make_interlaced_video(path, *, duration=2, width=320, height=240, field_order="tt", flagged=True,
                          interlaced=True):
    """Interlaced H.264 like a broadcast or camcorder recording: 50 fields a
    second woven into 25 frames, coded as fields, ``field_order`` tagged.
    ``flagged=False``: the same pictures as MPEG-4 Part 2 in AVI, where
    nothing says they are interlaced (ffprobe: field_order "unknown");
    with ``interlaced=False`` too, the progressive 25 fps control.

    The pattern is drawn at twice the size and scaled down: at its own size
    testsrc2 has one-pixel lines that idet takes for combing."""
    weave = "interleave_top" if field_order in ("tt", "tb") else "interleave_bottom"
    parity = "tff" if field_order in ("tt", "tb") else "bff"
    pattern = f"testsrc2=size={width * 2}x{height * 2}:rate={50 if interlaced else 25}:duration={duration}"
    filters = f"scale={width}:{height}" + (f",tinterlace={weave},fieldorder={parity}" if interlaced else "")
    picture = ["-f", "lavfi", "-i", pattern, "-vf", filters]
    if not flagged:
        _ffmpeg(*picture, "-c:v", "mpeg4", "-q:v", "3", "-an", "-f", "avi", str(path))
        return Path(path)
    _ffmpeg(
        *picture,
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-flags", "+ilme+ildct", "-field_order", field_order, "-an", str(path),
    )
    return Path(path)


def make_hdr_video(path, *, duration=1, width=320, height=180, transfer="smpte2084"):
    """The test pattern as HDR video (10-bit BT.2020, PQ or HLG), with the
    colour tags a phone or camera writes: SDR white at 100 nits."""
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={duration}",
        "-vf", f"zscale=tin=bt709:pin=bt709:min=bt709:rin=full:t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=100,"
               "format=yuv420p10le",
        "-c:v", "libx264", "-preset", "veryfast",
        "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc", "-an", str(path),
    )
    return Path(path)


def make_multi_audio_video(path, tracks, *, duration=2, width=320, height=180):
    """A clip with one audio stream per ``(language, title)`` in ``tracks``
    (either may be None), each a tone of its own pitch."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=25:duration={duration}"]
    for index, _ in enumerate(tracks):
        args += ["-f", "lavfi", "-i", f"sine=frequency={440 * (index + 1)}:sample_rate=48000:duration={duration}"]
    args += ["-map", "0:v"]
    for index, _ in enumerate(tracks):
        args += ["-map", f"{index + 1}:a"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50", "-c:a", "aac", "-b:a", "64k"]
    for index, (language, title) in enumerate(tracks):
        if language:
            args += [f"-metadata:s:a:{index}", f"language={language}"]
        if title:
            # MP4 keeps a track's title as its handler name.
            args += [f"-metadata:s:a:{index}", f"title={title}", f"-metadata:s:a:{index}", f"handler_name={title}"]
    _ffmpeg(*args, "-movflags", "+faststart", "-shortest", str(path))
    return Path(path)


def idet_counts(path):
    """ffmpeg's interlace detection over the whole video (multi-frame
    counts): {"tff": n, "bff": n, "progressive": n, "undetermined": n}."""
    import re

    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:v:0", "-vf", "idet", "-f", "null", "-"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stderr
    line = next(line for line in out.splitlines() if "Multi frame detection" in line)
    return {
        key.lower(): int(value)
        for key, value in re.findall(r"(TFF|BFF|Progressive|Undetermined):\s*(\d+)", line)
    }


def rgb_difference(first, second, size="32x18"):
    """Mean absolute difference (0-255) of the first frames of two videos,
    each decoded to RGB by its own colour tags and shrunk to ``size``."""
    def pixels(path):
        return subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1",
             "-vf", f"scale={size.replace('x', ':')}:flags=area,format=rgb24", "-f", "rawvideo", "-"],
            check=True, capture_output=True, timeout=60,
        ).stdout

    a, b = pixels(first), pixels(second)
    return sum(abs(x - y) for x, y in zip(a, b)) / len(a)
