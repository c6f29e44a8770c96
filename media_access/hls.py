"""What the player is given once the policy allowed it: HLS playlists whose
URIs carry signed tokens, and the one playback description (JSON).

The stored playlists name their siblings by rendition name (see
``transcoding.models.Rendition``). Here each name becomes a URL a browser may
fetch: a media playlist → its media_access URL (policy-checked per request);
a rung's fMP4 file, poster, storyboard, caption → a signed nginx URL
(``media_access.tokens``), checked by nginx without Python. What a rendition
is comes from its ``kind``, never from its name. Playlists and cue indexes
are read once per process (``published``).
"""

import re

from django.urls import reverse

from . import published
from .files import ORIGINAL, Kind, best_playback_name, ready_renditions, resolve_file
from .tokens import VideoToken

HLS_TYPE = "application/vnd.apple.mpegurl"
# The playlists a player fetches from Django (policy-checked, URIs signed).
PLAYLIST_KINDS = (Kind.HLS_MASTER, Kind.HLS_VIDEO, Kind.HLS_AUDIO)
MEDIA_PLAYLIST_KINDS = (Kind.HLS_VIDEO, Kind.HLS_AUDIO)
# Captions are named captions-<language> (see transcoding.models.Rendition).
CAPTIONS_PREFIX = "captions-"
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')
_VTT_TIME = re.compile(r"(?:(\d+):)?(\d{2}):(\d{2}(?:\.\d+)?)")


def renditions_by_name(video):
    return {rendition.name: rendition for rendition in ready_renditions(video)}


def master_rendition(renditions):
    """The video's master playlist, if it has one."""
    return next((r for r in renditions.values() if r.kind == Kind.HLS_MASTER), None)


def playlist_url(page, video, name):
    return reverse("media_access:hls_playlist", args=[page.pk, video.pk, name])


def read_text(rendition):
    return published.read_text(rendition.file)


def rewrite_playlist(text, uri_for):
    """``text`` with every URI (plain lines and ``URI="..."`` attributes, as in
    ``EXT-X-MAP`` and the audio tracks' ``EXT-X-MEDIA``) mapped by ``uri_for``.

    ``uri_for(name)`` returns the new URI or None for a name that must not be
    handed out, which drops the whole playlist (``LookupError``): a
    half-working playlist is worse than an honest 404.
    """

    def mapped(name):
        uri = uri_for(name)
        if uri is None:
            raise LookupError(name)
        return uri

    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            lines.append(_URI_ATTRIBUTE.sub(lambda m: f'URI="{mapped(m.group(1))}"', stripped))
        else:
            lines.append(mapped(stripped))
    return "\n".join(lines) + "\n"


def master_playlist(page, video, renditions, level=None):
    """The master playlist with playlist URLs; with ``level`` (a video rung's
    name) only that rung, still with every audio rendition: how a native HLS
    player is held to one quality without losing the sound, which lives in
    the audio renditions, not in the rung. An unknown level is a LookupError."""
    master = master_rendition(renditions)

    def uri_for(name):
        rendition = renditions.get(name)
        if rendition is not None and rendition.kind in MEDIA_PLAYLIST_KINDS:
            return playlist_url(page, video, name)
        return None

    text = read_text(master)
    if level:
        text = only_variant(text, level)
    return rewrite_playlist(text, uri_for)


def only_variant(text, level):
    """``text`` (a master playlist) keeping only the variant whose URI is ``level``."""
    lines, kept, pending = [], False, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#EXT-X-STREAM-INF:"):
            pending = stripped
        elif pending is not None and stripped and not stripped.startswith("#"):
            if stripped == level:
                lines += [pending, stripped]
                kept = True
            pending = None
        elif pending is None:
            lines.append(line)
    if not kept:
        raise LookupError(level)
    return "\n".join(lines) + "\n"


def media_playlist(video, renditions, name, token):
    def uri_for(sibling):
        # A media playlist points into its fMP4 file, nothing else.
        rendition = renditions.get(sibling)
        if rendition is None or rendition.kind != Kind.HLS_MEDIA:
            return None
        return signed_url(token, rendition)

    return rewrite_playlist(read_text(renditions[name]), uri_for)


def signed_url(token, rendition):
    try:
        return token.url_for(rendition.file.name)
    except ValueError:
        # A file left from before the original was replaced (another key):
        # not this video's folder, so no token opens it.
        return None


def storyboard_cues(text):
    """The sprite tiles of a storyboard WebVTT index: start, end and x, y, w, h per cue."""
    cues = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "-->" not in line or index + 1 >= len(lines):
            continue
        start, end = (_seconds(part) for part in line.split("-->", 1))
        fragment = lines[index + 1].partition("#xywh=")[2]
        try:
            x, y, w, h = (int(value) for value in fragment.split(","))
        except ValueError:
            continue
        if start is not None and end is not None:
            cues.append({"start": start, "end": end, "x": x, "y": y, "w": w, "h": h})
    return cues


def cached_storyboard_cues(rendition):
    """A storyboard index's cues, parsed once per published file."""
    return published.cached(
        "storyboard-cues", rendition.file.name, lambda: storyboard_cues(read_text(rendition))
    )


def _seconds(text):
    match = _VTT_TIME.search(text.strip())
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def playback_info(page, video):
    """The player's one description of what it may load, for a viewer the policy allowed.

    Signed URLs work with or without nginx in front: without it (runserver,
    serve mode "django") ``media_access.views.signed`` checks the same token."""
    renditions = renditions_by_name(video)
    token = VideoToken.issue(video)

    def file_url(rendition):
        return signed_url(token, rendition)

    sources = []
    levels = []
    master = master_rendition(renditions)
    if master is not None:
        sources.append({"type": HLS_TYPE, "src": playlist_url(page, video, master.name)})
        for name, rendition in renditions.items():
            if rendition.kind == Kind.HLS_VIDEO:
                levels.append({
                    "name": name, "width": rendition.width, "height": rendition.height,
                    "bitrate": rendition.bitrate,
                })
    fallback = best_playback_name(video)
    served = resolve_file(video, fallback)
    if served is not None:
        sources.append({
            "type": served.content_type,
            "src": reverse("media_access:watch", args=[page.pk, video.pk, fallback]),
        })

    by_kind = {}
    for rendition in renditions.values():
        by_kind.setdefault(rendition.kind, rendition)
    poster = by_kind.get(Kind.POSTER)
    storyboard = None
    if Kind.STORYBOARD in by_kind and Kind.STORYBOARD_VTT in by_kind:
        sprite_url = file_url(by_kind[Kind.STORYBOARD])
        cues = cached_storyboard_cues(by_kind[Kind.STORYBOARD_VTT])
        if sprite_url and cues:
            storyboard = {"url": sprite_url, "cues": cues}
    captions = []
    for name, rendition in sorted(renditions.items()):
        if rendition.kind == Kind.CAPTIONS and rendition.content_type.startswith("text/vtt"):
            url = file_url(rendition)
            if url:
                # The name carries the language: captions-<language>.
                language = name.removeprefix(CAPTIONS_PREFIX)
                captions.append({"src": url, "srclang": language, "label": language})

    return {
        "allowed": True,
        "title": video.title,
        "duration": video.duration or (master.duration if master else None),
        "width": video.width,
        "height": video.height,
        "poster": file_url(poster) if poster else None,
        "sources": sources,
        "levels": sorted(levels, key=lambda level: level["height"] or 0),
        "storyboard": storyboard,
        "captions": captions,
        "token": token.as_json(),
        "original": fallback == ORIGINAL,
    }
