"""Which stored file a watch URL names: "original" (the uploaded file) or a
ready rendition by name. Paths come from the database, never the request."""

from django.apps import apps

from .responses import ServedFile, content_type_for

ORIGINAL = "original"


def rendition_model():
    # transcoding provides Rendition; until it exists only originals are served.
    try:
        return apps.get_model("private_video_transcoding", "Rendition")
    except LookupError:
        return None


def ready_renditions(video):
    Rendition = rendition_model()
    if Rendition is None:
        return []
    renditions = Rendition.objects.filter(video=video).exclude(file="")
    return [r for r in renditions if getattr(r, "is_ready", True)]


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
    Rendition = rendition_model()
    if Rendition is None:
        return None
    rendition = Rendition.objects.filter(video=video, name=name).exclude(file="").first()
    if rendition is None or not getattr(rendition, "is_ready", True):
        return None
    return ServedFile(
        storage=rendition.file.storage,
        name=rendition.file.name,
        filename=f"{_stem(video)}-{rendition.name}{_extension(rendition.file.name)}",
        content_type=content_type_for(rendition.file.name, getattr(rendition, "content_type", "")),
        attachment=attachment,
    )


# Originals a browser's <video> element plays as they are.
_BROWSER_PLAYABLE = {"video/mp4", "video/webm"}


def best_playback_name(video):
    """The file the simple player loads: the original when browsers play its
    container, else the tallest ready progressive MP4 rendition. (The HLS
    player of a later issue chooses among renditions itself.)"""
    if video.file and content_type_for(video.file.name) in _BROWSER_PLAYABLE:
        return ORIGINAL
    mp4s = [r for r in ready_renditions(video) if r.name.startswith("mp4-")]
    if mp4s:
        return max(mp4s, key=lambda r: (r.height or 0, r.size or 0)).name
    return ORIGINAL
