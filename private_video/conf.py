"""The video library's settings and their defaults: the one table (docs/settings.md
documents every entry). Read them with ``setting("NAME")``; the Django setting
is ``PRIVATE_VIDEO_<NAME>``. Nothing here is read at import time, so a missing
or bad setting is reported by the system checks (``private_video.checks``),
never by a traceback on import."""

from django.conf import settings

_GiB = 1024**3

PREFIX = "PRIVATE_VIDEO_"

DEFAULTS = {
    # The video model ("app_label.ModelName", an AbstractVideo subclass); read by get_video_model().
    "MODEL": "private_video.Video",
    # Largest upload, in bytes; nginx's limit on the upload URLs is rendered from it.
    "MAX_UPLOAD_SIZE": 8 * _GiB,
    # S3 multipart uploads: bytes per part the browser sends straight to the bucket.
    "UPLOAD_CHUNK_SIZE": 64 * 1024**2,
    # Local (tus) uploads: bytes per PATCH (nginx's body limit on the tus URL is rendered from it).
    # Larger than an S3 part: a PATCH is streamed to disk as it arrives (a cut one keeps what
    # arrived), so its size only sets how many requests a file costs.
    "TUS_CHUNK_SIZE": 256 * 1024**2,
    # Seconds an unfinished resumable upload is kept after its last byte; then expire_uploads deletes it.
    "UPLOAD_EXPIRY": 86400,
    # The private folder tus uploads are staged in (None: "upload-staging" beside the private storage root).
    "UPLOAD_STAGING_DIR": None,
    # Lifetime in seconds of a presigned S3 multipart part URL.
    "S3_UPLOAD_URL_LIFETIME": 3600,
    # ffmpeg demuxers an upload may be (None: probe.DEFAULT_INPUT_FORMATS).
    "INPUT_FORMATS": None,
    # A file smaller than this many bytes per second of claimed duration is refused.
    "MIN_BYTES_PER_SECOND": 4,
    # Overrides of ffprobe's kernel limits (keys of FFPROBE_LIMITS_DEFAULT; None: unlimited).
    "FFPROBE_LIMITS": None,
    # ffprobe's kernel limits: CPU seconds, address space, and no files written (its answer goes to a pipe).
    "FFPROBE_LIMITS_DEFAULT": {"cpu_seconds": 60, "memory_bytes": 2 * _GiB, "file_size_bytes": 0},
    # Largest caption file (SRT or WebVTT), in bytes: hours of dense captions
    # are a few hundred KiB; anything bigger is refused before it is parsed.
    "MAX_CAPTION_SIZE": 2 * 1024**2,
    # Largest poster image upload, in bytes (it is decoded by Pillow and re-encoded as JPEG).
    "MAX_POSTER_SIZE": 10 * 1024**2,
}


def setting(name):
    """The value of ``PRIVATE_VIDEO_<name>``, or its default. A name missing
    from DEFAULTS is a KeyError: every setting the library reads is in the table."""
    return getattr(settings, PREFIX + name, DEFAULTS[name])
