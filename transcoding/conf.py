"""Transcoding's settings and their defaults: the one table (docs/settings.md
documents every entry). Read them with ``setting("NAME")``; the Django setting
is ``TRANSCODING_<NAME>``. Nothing here is read at import time, so a missing or
bad setting is reported by the system checks (``transcoding.checks``), never
by a traceback on import."""

import tempfile
from pathlib import Path

from django.conf import settings

_GiB = 1024**3

PREFIX = "TRANSCODING_"

DEFAULTS = {
    # The TASKS alias transcoding tasks are sent to (and its workers read).
    "TASK_BACKEND": "transcoding",
    # Queue of the quick playable phase, on a task backend without priorities (RQ).
    "PLAYABLE_QUEUE": "transcoding-playable",
    # Queue of the full-ladder phase, on a task backend without priorities (RQ).
    "LADDER_QUEUE": "transcoding-ladder",
    # Send a job to the task backend whenever a video gets a new original.
    "AUTO_ENQUEUE": True,
    # Dotted path of the class that builds ffmpeg's command lines.
    "BACKEND": "transcoding.backends.ffmpeg_python.FFmpegPythonBackend",
    # The HLS rungs: dicts of profiles.Rung fields (height is the short side); None: this default.
    "LADDER": (
        {"height": 1080, "maxrate_kbps": 5000, "crf": 22},
        {"height": 720, "maxrate_kbps": 3000, "crf": 23},
        {"height": 540, "maxrate_kbps": 1800, "crf": 23},
        {"height": 360, "maxrate_kbps": 800, "crf": 24},
    ),
    # HLS segment length, in seconds.
    "SEGMENT_SECONDS": 6,
    # Keyframe interval of the encodes, in seconds (divides the segment length).
    "KEYFRAME_SECONDS": 2,
    # Short side of the progressive MP4 (or the nearest rung below it).
    "PROGRESSIVE_HEIGHT": 720,
    # x264 preset of the full ladder.
    "X264_PRESET": "veryfast",
    # x264 preset of the quick playable version.
    "FAST_X264_PRESET": "veryfast",
    # Audio streams of a source that become audio renditions; the rest are dropped.
    "MAX_AUDIO_TRACKS": 8,
    # Largest source picture, in pixels per frame; bigger sources fail with a message.
    "MAX_SOURCE_PIXELS": 8192 * 8192,
    # Fast path (remux, no encode): highest bit rate of the original, in kbit/s.
    "FAST_PATH_MAX_KBPS": 10_000,
    # Fast path: largest short side of the original (its long side: twice this).
    "FAST_PATH_MAX_SHORT_SIDE": 1080,
    # Fast path: highest H.264 level of the original, times ten.
    "FAST_PATH_MAX_LEVEL": 42,
    # Fast path: longest gap between keyframes of the original, in seconds.
    "FAST_PATH_MAX_KEYFRAME_SECONDS": 5,
    # Frames the interlace detector reads when the container does not say.
    "IDET_FRAMES": 120,
    # The poster is taken this many seconds in (at most a quarter of the video).
    "POSTER_SEEK_SECONDS": 5,
    # Short side of the poster, in pixels (never more than the source's).
    "POSTER_HEIGHT": 720,
    # Seconds between storyboard tiles (longer for long videos, see STORYBOARD_MAX_TILES).
    "STORYBOARD_INTERVAL": 2,
    # Most tiles in a storyboard.
    "STORYBOARD_MAX_TILES": 100,
    # Long side of a storyboard tile, in pixels.
    "STORYBOARD_TILE_WIDTH": 160,
    # ffmpeg processes at once on this host, across all workers (lock files in LOCK_DIR).
    "MAX_FFMPEG_PROCESSES": 1,
    # Wall-clock limit of one ffmpeg run, in seconds.
    "FFMPEG_TIMEOUT": 6 * 3600,
    # An ffmpeg run that reports no progress for this many seconds is killed.
    "FFMPEG_STALL_TIMEOUT": 300,
    # Overrides of some of FFMPEG_LIMITS_DEFAULT's keys (None as a value: unlimited).
    "FFMPEG_LIMITS": None,
    # Kernel limits of one ffmpeg (setrlimit before exec); set FFMPEG_LIMITS to change some.
    "FFMPEG_LIMITS_DEFAULT": {
        # CPU seconds over all threads; None: FFMPEG_TIMEOUT with every core of this host busy.
        "cpu_seconds": None,
        # Address space, not resident memory: a 1080p ladder maps ~1.5 GiB; 4K sources need more.
        "memory_bytes": 8 * _GiB,
        # Per file written: the largest rendition of a long, tall source.
        "file_size_bytes": 64 * _GiB,
    },
    # ffmpeg's progress report interval, in seconds.
    "STATS_PERIOD": 0.5,
    # Lines of ffmpeg's stderr kept on a failed job.
    "STDERR_TAIL_LINES": 30,
    # Least seconds between two progress writes of a job.
    "PROGRESS_INTERVAL": 1.0,
    # A job whose worker has not renewed its lease for this many seconds is re-queued.
    "LEASE_SECONDS": 120,
    # Attempts (lost workers) before a job fails.
    "MAX_ATTEMPTS": 3,
    # A queued job without a task id is sent again after this many seconds (None: min(30, LEASE_SECONDS)).
    "RESEND_AFTER_SECONDS": None,
    # Longest a full ladder waits for other videos' playable phases running elsewhere, in seconds.
    "PLAYABLE_FIRST_WAIT_SECONDS": 60,
    # Seconds a replaced file stays (None: the longest signed URL lifetime + one segment + 60).
    "RETIRED_FILE_GRACE_SECONDS": None,
    # Folder of the jobs' scratch folders (None: the system's temporary folder).
    "TEMP_DIR": None,
    # Folder of the ffmpeg slot locks, shared by all workers of a host (None: one in the temporary folder).
    "LOCK_DIR": None,
}


def setting(name):
    return getattr(settings, PREFIX + name, DEFAULTS[name])


def temp_dir():
    """The folder the jobs' scratch folders go in."""
    return Path(setting("TEMP_DIR") or tempfile.gettempdir())


def lock_dir():
    """The folder of the ffmpeg slot locks: ``TRANSCODING_LOCK_DIR``, else a
    folder in the system's temporary folder, which every worker of the host
    shares (under systemd's PrivateTmp each service has its own temporary
    folder: set the setting when workers run as separate services)."""
    return Path(setting("LOCK_DIR") or Path(tempfile.gettempdir()) / "private-video-transcoding-locks")
