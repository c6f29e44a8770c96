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
