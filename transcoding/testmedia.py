"""Media made on the spot with ffmpeg's lavfi sources: for the demo page,
the tests and the benchmarks. Nothing is downloaded."""

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
    extra_args=(),
):
    """Write a short clip with a moving test pattern (and a tone) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}",
    ]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    cmd += ["-c:v", vcodec, "-pix_fmt", pix_fmt]
    if vcodec == "libx264":
        cmd += ["-preset", "veryfast", "-g", str(fps * 2)]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "96k"]
    if path.suffix.lower() in {".mp4", ".mov", ".m4v"}:
        cmd += ["-movflags", "+faststart"]
    cmd += [*extra_args, "-shortest", str(path)]
    subprocess.run(cmd, check=True, timeout=300)
    return path
