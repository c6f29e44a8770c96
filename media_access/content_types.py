"""The Content-Types private files are served with: a server-side allow-list
by extension, never what an upload claims, never anything a browser renders
as a page. Django's answers and the rendered nginx config read the same table."""

import posixpath
import re

from django.core.exceptions import ImproperlyConfigured

from .conf import setting

DEFAULT_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".m4s": "video/iso.segment",
    ".ts": "video/mp2t",
    ".m4a": "audio/mp4",
    ".mp3": "audio/mpeg",
    ".vtt": "text/vtt",
    ".jpg": "image/jpeg",
    ".png": "image/png",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"


def content_types():
    """The built-in table with ``MEDIA_ACCESS_CONTENT_TYPES`` on top."""
    return {**DEFAULT_CONTENT_TYPES, **(setting("CONTENT_TYPES") or {})}


def content_type_for(name, declared=""):
    """A Content-Type from the server-side allow-list; never anything a browser renders as a page."""
    allowed = content_types()
    if declared and declared in allowed.values():
        return declared
    return allowed.get(posixpath.splitext(name)[1].lower(), FALLBACK_CONTENT_TYPE)


def nginx_content_types():
    """The table as (extension, type) pairs that can be written into nginx's config."""
    pairs = sorted(content_types().items())
    for extension, content_type in pairs:
        if not re.match(r"^\.[a-z0-9]{1,8}$", extension) or not re.match(
            r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$", content_type
        ):
            raise ImproperlyConfigured(
                f"MEDIA_ACCESS_CONTENT_TYPES: {extension!r} → {content_type!r} cannot go into nginx's config."
            )
    return pairs
