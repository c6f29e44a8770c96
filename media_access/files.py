"""Which stored file a watch URL names: "original" (the uploaded file) or a
ready rendition by name. Paths come from the database, never the request."""

from transcoding.models import Rendition

from .content_types import content_type_for
from .responses import ServedFile

ORIGINAL = "original"
Kind = Rendition.Kind


def ready_renditions(video):
    """The video's published renditions (a row without a file is not served)."""
    return list(Rendition.objects.filter(video=video).exclude(file=""))


def _stem(video):
    """The uploader's name without its extension (the title if there is none)."""
    name = video.original_filename or video.title or "video"
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem or "video"


def _extension(stored_name):
    last = stored_name.rsplit("/", 1)[-1]
    return "." + last.rsplit(".", 1)[-1] if "." in last else ""


def resolve_file(video, name, *, attachment=False):
    """The ServedFile for ``name`` on ``video``, or None if there is no such ready file."""
    if name == ORIGINAL:
        if not video.file:
            return None
        return ServedFile(
            storage=video.file.storage,
            name=video.file.name,
            # The stored extension is the detected container's, never the
            # uploader's: an MP4 uploaded as "clip.exe" downloads as clip.mp4.
            filename=_stem(video) + _extension(video.file.name),
            content_type=content_type_for(video.file.name),
            attachment=attachment,
        )
    rendition = Rendition.objects.filter(video=video, name=name).exclude(file="").first()
    if rendition is None:
        return None
    return ServedFile(
        storage=rendition.file.storage,
        name=rendition.file.name,
        filename=f"{_stem(video)}-{rendition.name}{_extension(rendition.file.name)}",
        content_type=content_type_for(rendition.file.name, rendition.content_type),
        attachment=attachment,
    )


def best_playback_name(video):
    """The progressive file the player loads (its fallback beside HLS): the
    tallest ready MP4 rendition, or the original while there is none (before
    transcoding has made one, or when it cannot). Never the original once a
    rendition can stand in for it: a viewer without the right to download
    gets the original's bytes only while it is the one thing to play
    (``original_is_played``)."""
    return progressive_name(ready_renditions(video))


def progressive_name(renditions):
    """``best_playback_name`` among these ready ``renditions``, without queries."""
    mp4s = [r for r in renditions if r.kind == Kind.MP4]
    if mp4s:
        return max(mp4s, key=lambda r: (r.height or 0, r.size or 0)).name
    return ORIGINAL


def original_is_played(video):
    """Whether the player plays the original itself (no MP4 rendition is
    ready): then watching it needs no download right."""
    return best_playback_name(video) == ORIGINAL
