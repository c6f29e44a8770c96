"""What the player is given once the policy allowed it: HLS playlists whose
URIs carry signed tokens, and the one playback description (JSON).

The stored playlists name their siblings by rendition name (see
``transcoding.models.Rendition``). Here each name becomes a URL a browser may
fetch: a media playlist → its media_access URL (policy-checked per request);
a rung's fMP4 file, poster, storyboard, caption → a signed nginx URL
(``media_access.tokens``), checked by nginx without Python. What a rendition
is comes from its ``kind``, never from its name. Playlists and cue indexes
are read once per process (``published``).

Captions and chapters are the library's own objects (``private_video.tracks``),
never renditions: each caption's WebVTT file sits under the renditions prefix,
so the same signed URL reaches it. They can change at any time, so what this
module says about them is built from the rows (``VideoFacts``), never cached
with the stored (immutable) playlist text; the player's views keep one
``VideoFacts`` in a remembered decision, which rests on the video's scope
(``decisions.py``: renditions, captions and chapters all change it).
"""

import math
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.urls import reverse

from . import published
from .content_types import content_type_for
from .files import ORIGINAL, Kind, progressive_name, ready_renditions, resolve_file
from .tokens import VideoToken, video_prefix

HLS_TYPE = "application/vnd.apple.mpegurl"
# The playlists a player fetches from Django (policy-checked, URIs signed).
PLAYLIST_KINDS = (Kind.HLS_MASTER, Kind.HLS_VIDEO, Kind.HLS_AUDIO)
MEDIA_PLAYLIST_KINDS = (Kind.HLS_VIDEO, Kind.HLS_AUDIO)
# The master's one subtitles group, and the playlist names of its members:
# hls-subs-<caption id>, served by the playlist view (policy-checked).
SUBTITLES_GROUP = "subs"
SUBTITLES_PLAYLIST = re.compile(r"^hls-subs-([0-9]{1,18})$")
# Apple's accessibility characteristics for a caption track (HLS authoring spec).
_CAPTION_CHARACTERISTICS = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
# What a quoted-string attribute may not hold (RFC 8216 4.2), and a BCP 47 tag's characters.
_UNQUOTABLE = re.compile(r'["\x00-\x1f\x7f]')
_LANGUAGE = re.compile(r"^[A-Za-z0-9-]{1,35}$")
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


def captions_of(video):
    """The video's caption tracks, default first (one query); the JSON, the
    master playlist and the transcript list them in this same order. A file
    outside the video's renditions folder (left from before the original was
    replaced: another key) is left out, since no token of this video opens it."""
    prefix = video_prefix(video)
    return [caption for caption in video.captions.all() if caption.file and caption.file.name.startswith(prefix)]


def chapters_of(video):
    return list(video.chapters.all())


@dataclass(frozen=True)
class VideoFacts:
    """What the player's answers read of a video besides its own row: its
    ready renditions by name, its caption tracks (``captions_of``) and its
    chapters; three queries. Kept with a remembered decision, so only used
    while the video's scope is unchanged (a rendition, caption or chapter
    written or deleted changes it)."""

    renditions: dict
    captions: tuple
    chapters: tuple


def video_facts(video):
    return VideoFacts(
        renditions=renditions_by_name(video), captions=tuple(captions_of(video)), chapters=tuple(chapters_of(video))
    )


# (video id, video key) -> (scope values, until, VideoFacts). The key too: a
# test database rolled back reuses ids, and scope values with them.
_shared_facts = OrderedDict()
_shared_facts_lock = threading.Lock()
SHARED_FACTS_MAX = 256


def shared_video_facts(video, values, until, now=None):
    """``video_facts(video)``, kept per process for every viewer while the
    request reads the same scope ``values`` (``decisions.stamp``: the video's
    and ``schema``, read before) and not after ``until``."""
    now = time.time() if now is None else now
    key = (video.pk, str(video.key))
    with _shared_facts_lock:
        kept = _shared_facts.get(key)
        if kept is not None and kept[0] == values and now < kept[1]:
            _shared_facts.move_to_end(key)
            return kept[2]
    facts = video_facts(video)
    with _shared_facts_lock:
        _shared_facts[key] = (values, until, facts)
        _shared_facts.move_to_end(key)
        while len(_shared_facts) > SHARED_FACTS_MAX:
            _shared_facts.popitem(last=False)
    return facts


def forget_shared_facts():
    """Tests: start from nothing kept."""
    with _shared_facts_lock:
        _shared_facts.clear()


def playback_fallback(video, renditions):
    """(name, content type) of the progressive file the player falls back to,
    content type None when there is no such file: ``files.best_playback_name``
    and ``files.resolve_file`` answered from ``renditions``, without queries."""
    name = progressive_name(renditions.values())
    if name == ORIGINAL:
        served = resolve_file(video, ORIGINAL)
        return name, (served.content_type if served is not None else None)
    rendition = renditions[name]
    return name, content_type_for(rendition.file.name, rendition.content_type)


def master_playlist(page, video, renditions, level=None, captions=()):
    """The master playlist with playlist URLs; with ``level`` (a video rung's
    name) only that rung, still with every audio rendition: how a native HLS
    player is held to one quality without losing the sound, which lives in
    the audio renditions, not in the rung. An unknown level is a LookupError.
    ``captions`` become its SUBTITLES group (``with_subtitles``)."""
    master = master_rendition(renditions)

    def uri_for(name):
        rendition = renditions.get(name)
        if rendition is not None and rendition.kind in MEDIA_PLAYLIST_KINDS:
            return playlist_url(page, video, name)
        return None

    text = read_text(master)
    if level:
        text = only_variant(text, level)
    return with_subtitles(rewrite_playlist(text, uri_for), captions)


def _quoted(value):
    return _UNQUOTABLE.sub(" ", str(value)).strip()


def subtitles_media_lines(captions):
    """One ``EXT-X-MEDIA:TYPE=SUBTITLES`` line per caption, in the given order.
    NAMEs are unique in the group (RFC 8216 4.3.4.1.1), so a repeated label gets a number."""
    lines, names = [], set()
    for caption in captions:
        name = _quoted(caption.label) or _quoted(caption.language) or "Subtitles"
        unique, n = name, 2
        while unique in names:
            unique, n = f"{name} ({n})", n + 1
        names.add(unique)
        attributes = ["TYPE=SUBTITLES", f'GROUP-ID="{SUBTITLES_GROUP}"', f'NAME="{unique}"']
        if _LANGUAGE.match(caption.language or ""):
            attributes.append(f'LANGUAGE="{caption.language}"')
        attributes += [f"DEFAULT={'YES' if caption.is_default else 'NO'}", "AUTOSELECT=YES", "FORCED=NO"]
        if caption.kind == "captions":
            attributes.append(f'CHARACTERISTICS="{_CAPTION_CHARACTERISTICS}"')
        # Relative: resolves against the master's own policy-checked URL.
        attributes.append(f'URI="hls-subs-{caption.pk}.m3u8"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    return lines


def with_subtitles(text, captions):
    """``text`` (a rewritten master) with the captions' SUBTITLES group, named
    by every variant; unchanged without captions."""
    media = subtitles_media_lines(captions)
    if not media:
        return text
    lines, inserted = [], False
    for line in text.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if not inserted:
                lines += media
                inserted = True
            line += f',SUBTITLES="{SUBTITLES_GROUP}"'
        lines.append(line)
    if not inserted:
        lines += media
    return "\n".join(lines) + "\n"


def subtitles_playlist(video, caption, token, duration):
    """A caption's VOD media playlist: one segment, its signed WebVTT file.
    A LookupError when the file is not under this video's folder."""
    try:
        url = token.url_for(caption.file.name)
    except ValueError:
        raise LookupError(caption.pk) from None
    length = max(float(duration or 0), 0.001)
    return "\n".join([
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{max(1, math.ceil(length))}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        f"#EXTINF:{length:.3f},",
        url,
        "#EXT-X-ENDLIST",
    ]) + "\n"


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


def video_duration(video, renditions=None):
    """The video's length in seconds: the probe's, else the published master's."""
    if video.duration:
        return video.duration
    master = master_rendition(renditions if renditions is not None else renditions_by_name(video))
    return master.duration if master else None


def playback_info(page, video, *, viewer, resume=None, facts=None):
    """The player's one description of what it may load, for a viewer the policy allowed.

    Signed URLs work with or without nginx in front: without it (runserver,
    serve mode "django") ``media_access.views.signed`` checks the same token.
    ``resume`` is the viewer's own saved position and where to post it
    (``views.playback.resume_info``), None for an anonymous viewer. ``viewer``
    is the browser's viewer cookie value the token is bound to (``tokens.request_viewer``).
    ``facts``: the video's ``VideoFacts`` when the caller has them (read now otherwise)."""
    facts = facts if facts is not None else video_facts(video)
    renditions = facts.renditions
    token = VideoToken.issue(video, viewer=viewer)

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
    fallback, fallback_type = playback_fallback(video, renditions)
    if fallback_type is not None:
        sources.append({
            "type": fallback_type,
            "src": reverse("media_access:watch", args=[page.pk, video.pk, fallback]),
        })

    by_kind = {}
    for rendition in renditions.values():
        by_kind.setdefault(rendition.kind, rendition)
    storyboard = None
    if Kind.STORYBOARD in by_kind and Kind.STORYBOARD_VTT in by_kind:
        sprite_url = file_url(by_kind[Kind.STORYBOARD])
        cues = cached_storyboard_cues(by_kind[Kind.STORYBOARD_VTT])
        if sprite_url and cues:
            storyboard = {"url": sprite_url, "cues": cues}

    return {
        "allowed": True,
        "title": video.title,
        "duration": video_duration(video, renditions),
        "width": video.width,
        "height": video.height,
        "poster": poster_url(video, token, by_kind.get(Kind.POSTER)),
        "sources": sources,
        "levels": sorted(levels, key=lambda level: level["height"] or 0),
        "storyboard": storyboard,
        "captions": captions_info(video, token, facts.captions),
        "chapters": chapters_info(page, video, facts.chapters),
        "resume": resume,
        "token": token.as_json(),
        "original": fallback == ORIGINAL,
    }


def poster_url(video, token, rendition=None):
    """The editor's chosen poster when there is one, else the transcoder's."""
    if video.poster_file:
        try:
            return token.url_for(video.poster_file.name)
        except ValueError:
            pass  # left from before the original was replaced: another key's folder
    return signed_url(token, rendition) if rendition is not None else None


def captions_info(video, token, captions_list=None):
    captions = []
    for caption in captions_of(video) if captions_list is None else captions_list:
        try:
            url = token.url_for(caption.file.name)
        except ValueError:
            continue
        captions.append({
            "id": caption.pk, "srclang": caption.language, "label": caption.label, "kind": caption.kind,
            "default": caption.is_default, "src": url,
        })
    return captions


def chapters_info(page, video, chapters_list=None):
    chapters_list = chapters_of(video) if chapters_list is None else chapters_list
    items = [{"start": chapter.start, "title": chapter.title} for chapter in chapters_list]
    if not items:
        return None
    return {"src": reverse("media_access:chapters", args=[page.pk, video.pk]), "items": items}
