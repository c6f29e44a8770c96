"""Captions, chapters and the editor's poster: the library's API (the admin
views, media_access and tests call these; nothing else writes the models).

Captions: pysubs2 reads SRT or WebVTT and writes the normalised WebVTT that is
stored. pysubs2 is lenient (it skips a line it cannot read without a word), so
a line check runs first and names the first line that is not a cue, a timing
or a header: an editor learns which line to fix instead of losing cues. Cue
text is reduced to plain text plus WebVTT's own <b> <i> <u> tags, and "<", ">"
and "&" are escaped: a cue cannot put markup into a page or the player.

Every change is logged on the video (its history shows it) and a replaced or
deleted file is removed after the transaction commits (names never change
content: a new file gets a new version folder)."""

import html
import io
import math
import re
import secrets

import pysubs2
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from pysubs2.formats.subrip import SubripFormat
from pysubs2.formats.webvtt import WebVTTFormat
from wagtail import hooks
from wagtail.log_actions import log

from .conf import setting
from .layout import poster_name
from .tracks import Caption, Chapter


class CaptionError(ValueError):
    """A caption file, chapter list or poster that cannot be used; the message
    is for the editor (it names the line when there is one)."""


class PosterError(CaptionError):
    """A poster image or frame that cannot be used."""


# --- reading a caption file ------------------------------------------------------

_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# WebVTT's own styling tags survive; everything else is text.
_WRITTEN_TAG = re.compile(r"<(/?)([biu])>")
# A WebVTT cue's inline timestamp (karaoke timing): <mm:ss.ttt> or <hh:mm:ss.ttt>.
_TIMESTAMP_TAG = re.compile(r"<(?:\d{2,}:)?[0-5]\d:[0-5]\d\.\d{3}>")
# Stands for ":" in cue text while pysubs2 reads it: pysubs2 takes any line
# holding two times for a timing line ("from 00:00:01,000 to 00:00:02,000").
_COLON = "\ue002"
_VTT_BLOCKS = ("NOTE", "STYLE", "REGION")
_MAX_CUE_TEXT = 1000
_MAX_CUE_TAGS = 40


def _format_time(seconds):
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _decode(data):
    """The file as text: UTF-8 (with or without a BOM), UTF-16 with a BOM, or
    Windows-1252 when every byte outside ASCII is a Latin letter or common
    punctuation there (old SRT files); anything else names the line."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise CaptionError(_("This file says it is UTF-16 but is not; save it as UTF-8.")) from None
    if b"\x00" in data:
        raise CaptionError(_("This is not a text file; upload an SRT or WebVTT file."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(
        ord(c) < 128 or c.isalpha() or c in "\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0\u00ab\u00bb\u00bf\u00a1"
        for c in text
    ):
        return text
    raise CaptionError(
        _("Line %(line)s: this file is not UTF-8 text; save it as UTF-8 and upload it again.") % {"line": line}
    )


def _timing(line, fmt, lineno):
    """(start ms, end ms) of a timing line, checked; CaptionError naming the line."""
    stamp = fmt.TIMESTAMP.pattern
    settings_part = r"(?:[ \t]+\S.*)?" if fmt is WebVTTFormat else r"(?:[ \t]+[XY]\d.*)?"
    match = re.fullmatch(rf"[ \t]*({stamp})[ \t]+-->[ \t]+({stamp}){settings_part}[ \t]*", line)
    if not match:
        example = "00:00:01.000 --> 00:00:02.500" if fmt is WebVTTFormat else "00:00:01,000 --> 00:00:02,500"
        raise CaptionError(
            _("Line %(line)s: this timing cannot be read (it should look like %(example)s).")
            % {"line": lineno, "example": example}
        )
    groups = match.groups()
    width = fmt.TIMESTAMP.groups  # each stamp's own groups follow its outer group
    start_groups = groups[1 : 1 + width]
    end_groups = groups[2 + width : 2 + 2 * width]
    for minutes, secs in ((start_groups[-3], start_groups[-2]), (end_groups[-3], end_groups[-2])):
        if int(minutes) > 59 or int(secs) > 59:
            raise CaptionError(_("Line %(line)s: minutes and seconds go up to 59.") % {"line": lineno})
    try:
        start, end = fmt.timestamp_to_ms(start_groups), fmt.timestamp_to_ms(end_groups)
    except ValueError:
        # pysubs2's WebVTT pattern lets an hours field be empty (":00:01.000"),
        # which its own conversion then cannot read.
        raise CaptionError(
            _("Line %(line)s: this timing cannot be read (each time needs its digits).") % {"line": lineno}
        ) from None
    if end <= start:
        raise CaptionError(
            _("Line %(line)s: the cue ends (%(end)s) before it starts (%(start)s).")
            % {"line": lineno, "start": _format_time(start / 1000), "end": _format_time(end / 1000)}
        )
    return start, end


def _checked_text(text):
    """The file, its format ("srt" or "vtt") and a copy pysubs2 reads right:
    every block is a cue (an optional identifier, a timing line, its text) or,
    in WebVTT, the header, a NOTE, STYLE or REGION block, which are left out
    with the identifiers and cue settings pysubs2 would take for cue text.

    Returns (copy, format, cues): cues is [(line of the cue's timing in the
    file, the cue's lines in the copy)], to name the line pysubs2 fails on."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    is_vtt = text.lstrip("\ufeff \t\n").startswith("WEBVTT")
    fmt = WebVTTFormat if is_vtt else SubripFormat
    if not is_vtt and not any("-->" in line for line in lines):
        raise CaptionError(_("Line 1: this is neither an SRT nor a WebVTT file (no cue timings found)."))
    out = ["WEBVTT", ""] if is_vtt else []
    cue_lines = []
    index = 0
    if is_vtt:
        first = lines[0].lstrip("\ufeff")
        if not re.fullmatch(r"WEBVTT(?:[ \t].*)?", first):
            raise CaptionError(_("Line 1: a WebVTT file starts with the word WEBVTT alone on its line."))
        while index < len(lines) and lines[index].strip():  # the header block
            index += 1
    cues = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        block_start = index
        block = []
        while index < len(lines) and lines[index].strip():
            block.append(lines[index])
            index += 1
        if is_vtt and block[0].split(" ", 1)[0].split("\t", 1)[0] in _VTT_BLOCKS and "-->" not in block[0]:
            continue
        timing_at = 0 if "-->" in block[0] else 1
        if timing_at >= len(block) or "-->" not in block[timing_at]:
            raise CaptionError(
                _("Line %(line)s: a cue needs a timing line such as 00:00:01,000 --> 00:00:02,500.")
                % {"line": block_start + 1 + min(timing_at, len(block) - 1)}
            )
        if timing_at == 1 and not is_vtt and not block[0].strip().isdigit():
            raise CaptionError(
                _("Line %(line)s: an SRT cue starts with its number, then its timing line.")
                % {"line": block_start + 1}
            )
        start, end = _timing(block[timing_at], fmt, block_start + 1 + timing_at)
        body = block[timing_at + 1 :]
        length = sum(len(line) for line in body)
        tags = sum(line.count("<") + line.count("{") for line in body)
        if tags > _MAX_CUE_TAGS:
            raise CaptionError(
                _("Line %(line)s: this cue has %(count)s “<” and “{”; a cue may have %(limit)s.")
                % {"line": block_start + 2 + timing_at, "count": tags, "limit": _MAX_CUE_TAGS}
            )
        if length > _MAX_CUE_TEXT:
            # Real cues are a line or two; pysubs2's tag handling takes time
            # quadratic in a cue's length, so a long one is refused first.
            raise CaptionError(
                _("Line %(line)s: this cue has %(length)s characters of text; a cue may have %(limit)s.")
                % {"line": block_start + 2 + timing_at, "length": f"{length:,}", "limit": f"{_MAX_CUE_TEXT:,}"}
            )
        for offset, line in enumerate(body):
            if "-->" in line:
                raise CaptionError(
                    _("Line %(line)s: cue text cannot contain \"-->\" (is a blank line missing before this timing?).")
                    % {"line": block_start + 2 + timing_at + offset}
                )
        cues += 1
        stamp = fmt.ms_to_timestamp
        cue = [f"{stamp(start)} --> {stamp(end)}", *(_text_for_pysubs2(line, is_vtt) for line in body), ""]
        if not is_vtt:
            cue.insert(0, str(cues))
        out += cue
        cue_lines.append((block_start + 1 + timing_at, cue))
    if not cues:
        raise CaptionError(_("Line %(line)s: the file has no cues.") % {"line": len(lines)})
    return "\n".join(out) + "\n", "vtt" if is_vtt else "srt", cue_lines


def _text_for_pysubs2(line, is_vtt):
    """A cue text line as pysubs2 must see it: WebVTT's inline timestamps
    (karaoke timing, which the stored track and the transcript leave out: the
    cue shows whole) dropped, and every ":" set aside, so no text line looks
    like a timing line to pysubs2 (it would become a cue of its own, or fail)."""
    line = line.replace(_COLON, "")
    if is_vtt:
        line = _TIMESTAMP_TAG.sub("", line)
    return line.replace(":", _COLON)


def _escape_cue_line(line):
    # pysubs2 turned the file's <i>/<u> into WebVTT tags and dropped the
    # other tags it recognised (<s> is not WebVTT's: it goes too); whatever
    # "<", ">" or "&" is left is text.
    # The tags pysubs2 wrote are set aside first, so a "&lt;b&gt;" the file
    # spelled as text stays text.
    line = re.sub(r"</?s>", "", line.replace("\ue000", "").replace("\ue001", ""))
    line = _WRITTEN_TAG.sub(lambda m: f"\ue000{m.group(1)}{m.group(2)}\ue001", line)
    escaped = html.escape(html.unescape(line), quote=False)
    return escaped.replace("\ue000", "<").replace("\ue001", ">")


# What pysubs2 raises on text it cannot read (its own int() and friends):
# never a 500, always the editor's error.
_PYSUBS2_ERRORS = (ValueError, LookupError, TypeError, ArithmeticError, pysubs2.Pysubs2Error)


class _CueCountMismatch(ValueError):
    """pysubs2 read a different number of cues than the line check found."""


def _read_with_pysubs2(checked, fmt, cue_count):
    """(SSAFile, its events with text, their WebVTT) of the checked copy."""
    subs = pysubs2.SSAFile.from_string(checked, format_=fmt)
    if len(subs.events) != cue_count:
        raise _CueCountMismatch(len(subs.events))
    events = [event for event in subs if event.plaintext.strip()]
    subs.events = events
    return subs, events, subs.to_string("vtt") if events else ""


def _pysubs2_error(fmt, cues):
    """CaptionError naming the first cue pysubs2 cannot read on its own (each
    cue is read alone; only when the whole file failed)."""
    head = ["WEBVTT", ""] if fmt == "vtt" else []
    for lineno, cue in cues:
        try:
            _read_with_pysubs2("\n".join(head + cue) + "\n", fmt, 1)
        except _PYSUBS2_ERRORS:
            return CaptionError(
                _("Line %(line)s: this cue cannot be read; check its timing and text.") % {"line": lineno}
            )
    return CaptionError(_("This caption file cannot be read; check its timings and cue text."))


def parse_caption(data):
    """(normalised WebVTT text, plain text of the cues) from an uploaded
    file's bytes; CaptionError naming the line of the first problem."""
    limit = int(setting("MAX_CAPTION_SIZE"))
    if len(data) > limit:
        raise CaptionError(
            _("This file is %(size)s bytes; the largest caption file is %(limit)s bytes.")
            % {"size": f"{len(data):,}", "limit": f"{limit:,}"}
        )
    text = _decode(data).replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(text):
        bad = _CONTROL.search(text)
        raise CaptionError(
            _("Line %(line)s: this file holds control characters; is it really an SRT or WebVTT file?")
            % {"line": text[: bad.start()].count("\n") + 1}
        )
    checked, fmt, cues = _checked_text(text)
    try:
        subs, events, raw = _read_with_pysubs2(checked, fmt, len(cues))
    except _PYSUBS2_ERRORS:
        raise _pysubs2_error(fmt, cues) from None
    if not events:
        raise CaptionError(_("The file's cues have no text."))
    lines = []
    for line in raw.split("\n"):
        if line == "WEBVTT" or not line or "-->" in line or line.isdigit():
            lines.append(line)
        else:
            lines.append(_escape_cue_line(line).replace(_COLON, ":"))
    plain = "\n".join(html.unescape(event.plaintext).replace(_COLON, ":") for event in events)
    return "\n".join(lines).rstrip("\n") + "\n", plain


def caption_cues(caption):
    """[(start seconds, end seconds, plain text)] of a stored caption, in order."""
    with caption.file.open("rb") as handle:
        text = handle.read().decode("utf-8")
    # Its text lines' ":" set aside, as when it was parsed: a line such as
    # "the 01:00.000 to 02:00.000 slot" is text, not a timing.
    text = "\n".join(
        line if "-->" in line or line.startswith("WEBVTT") else line.replace(":", _COLON)
        for line in text.split("\n")
    )
    subs = pysubs2.SSAFile.from_string(text, format_="vtt")
    return [
        (event.start / 1000, event.end / 1000, html.unescape(event.plaintext).replace(_COLON, ":"))
        for event in sorted(subs, key=lambda e: (e.start, e.end))
    ]


def _check_track_fields(language, kind, label):
    language = (language or "").strip()
    if len(language) > 35 or not _LANGUAGE.match(language):
        raise CaptionError(_("“%(language)s” is not a language tag such as en, fr-CA or zh-Hant.") % {"language": language[:40]})
    if kind not in Caption.Kind.values:
        raise CaptionError(_("Unknown kind of text track: %(kind)s.") % {"kind": str(kind)[:40]})
    label = (label or "").strip()
    if not label or len(label) > 100 or _CONTROL.search(label) or '"' in label or "\n" in label:
        raise CaptionError(_("Give the track a label of up to 100 characters, without quotes or line breaks."))
    return language, label


def _delete_on_commit(storage, name):
    from .signal_handlers import delete_with_empty_folder

    if name:
        transaction.on_commit(lambda: delete_with_empty_folder(storage, name))


def _reindex_on_commit(video):
    # The video's search entry holds its captions' text (search_fields).
    from wagtail.search.index import insert_or_update_object

    transaction.on_commit(lambda: insert_or_update_object(video))


def _clashing(video, language, kind, exclude=None):
    others = video.captions.filter(language__iexact=language, kind=kind)
    if exclude is not None:
        others = others.exclude(pk=exclude.pk)
    if others.exists():
        raise CaptionError(
            _("This video already has a %(kind)s track in %(language)s; replace that one instead.")
            % {"kind": Caption.Kind(kind).label, "language": language}
        )


def _unset_other_defaults(caption):
    """At most one default track per video."""
    if caption.is_default:
        Caption.objects.filter(video_id=caption.video_id, is_default=True).exclude(pk=caption.pk).update(is_default=False)


def import_caption(video, data, filename, *, language, kind, label, is_default=False, user=None, replace=None):
    """Store an SRT or WebVTT file as the video's caption track (a new one, or
    ``replace``'s new file); nothing is saved when it raises CaptionError."""
    language, label = _check_track_fields(language, kind, label)
    if replace is not None and replace.video_id != video.pk:
        raise CaptionError(_("This caption track belongs to another video."))
    vtt, plain = parse_caption(data)
    _clashing(video, language, kind, exclude=replace)
    caption = replace or Caption(video=video)
    old_name = caption.file.name if replace is not None else ""
    caption.video = video
    caption.language, caption.kind, caption.label = language, kind, label
    caption.text = plain
    caption.is_default = bool(is_default)
    caption.file.save("captions.vtt", ContentFile(vtt.encode("utf-8")), save=False)
    new_name = caption.file.name
    try:
        with transaction.atomic():
            caption.save()
            _unset_other_defaults(caption)
            log(video, "private_video.caption_change" if replace is not None else "private_video.caption_add",
                user=user, data={"language": language, "kind": kind, "label": label,
                                 "filename": (filename or "")[:200]})
            _delete_on_commit(caption.file.storage, old_name)
            _reindex_on_commit(video)
    except BaseException as exc:
        caption.file.storage.delete(new_name)
        if replace is not None:
            caption.file.name = old_name
        if isinstance(exc, IntegrityError):
            # Another editor saved the same language and kind at the same moment.
            _clashing(video, language, kind, exclude=replace)
        raise
    return caption


def update_caption(caption, *, language, kind, label, is_default=False, user=None):
    """Change a track's language, kind, label or default flag, keeping its file."""
    language, label = _check_track_fields(language, kind, label)
    _clashing(caption.video, language, kind, exclude=caption)
    with transaction.atomic():
        caption.language, caption.kind, caption.label = language, kind, label
        caption.is_default = bool(is_default)
        caption.save()
        _unset_other_defaults(caption)
        log(caption.video, "private_video.caption_change", user=user,
            data={"language": language, "kind": kind, "label": label, "filename": ""})
    return caption


def delete_caption(caption, user=None):
    with transaction.atomic():
        video = caption.video
        log(video, "private_video.caption_delete", user=user,
            data={"language": caption.language, "kind": caption.kind, "label": caption.label})
        caption.delete()  # its file goes after commit (signal_handlers)
        _reindex_on_commit(video)


# --- chapters --------------------------------------------------------------------------

# Matched against a stripped line, with no lazy part: a long line costs linear time.
_CHAPTER_LINE = re.compile(r"(\d{1,3}(?::\d{1,2}){1,2}(?:\.\d{1,3})?)(?=[\s\-–—|])\s*(?:[-–—|]\s*)?(\S.*)")
_CHAPTER_LINE_MAX = 300


def parse_time(value):
    """Seconds from "75", "1:15", "1:02:03" or "1:15.5"; ValueError otherwise."""
    value = str(value).strip()
    if not re.fullmatch(r"\d{1,6}(?:\.\d{1,3})?|\d{1,3}(?::\d{1,2}){1,2}(?:\.\d{1,3})?", value):
        raise ValueError(value)
    parts = value.split(":")
    seconds = float(parts[-1])
    if len(parts) > 1 and seconds >= 60:
        raise ValueError(value)
    minutes = int(parts[-2]) if len(parts) > 1 else 0
    if len(parts) > 2 and minutes > 59:
        raise ValueError(value)
    hours = int(parts[0]) if len(parts) > 2 else 0
    return hours * 3600 + minutes * 60 + seconds


# Whatever the form: the rows' formset and pasted lines alike (every viewer
# gets them all in chapters.vtt and the playback data).
MAX_CHAPTERS = 500


def parse_chapter_lines(text):
    """[(start seconds, title)] from pasted "00:00 Title" / "1:02:03 Title"
    lines (blank lines skipped); ValidationError naming the first bad line."""
    chapters = []
    for number, line in enumerate((text or "").replace("\r\n", "\n").split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        match = _CHAPTER_LINE.fullmatch(line) if len(line) <= _CHAPTER_LINE_MAX else None
        try:
            if not match:
                raise ValueError(line)
            start = parse_time(match.group(1))
        except ValueError:
            raise ValidationError(
                _("Line %(line)s: write a time then a title, like “1:05 Introduction”.") % {"line": number},
                code="chapter_line",
            ) from None
        chapters.append((start, match.group(2)))
    return chapters


def _check_chapters(video, chapters):
    chapters = list(chapters)
    if len(chapters) > MAX_CHAPTERS:
        raise CaptionError(
            _("A video can have up to %(max)s chapters, not %(count)s.") % {"max": MAX_CHAPTERS, "count": len(chapters)}
        )
    cleaned, seen = [], set()
    for start, title in chapters:
        try:
            start = float(start)
        except (TypeError, ValueError):
            raise CaptionError(_("A chapter's start is not a time.")) from None
        title = " ".join(str(title or "").split())
        if not math.isfinite(start) or start < 0:
            raise CaptionError(_("A chapter cannot start before the video does."))
        if video.duration and start >= video.duration:
            raise CaptionError(
                _("Chapter “%(title)s” starts at %(start)s, after the video's end (%(end)s).")
                % {"title": title[:60], "start": _format_time(start), "end": video.duration_display}
            )
        if not title or len(title) > 255 or _CONTROL.search(title) or "-->" in title:
            raise CaptionError(_("Every chapter needs a title of up to 255 characters (without “-->”)."))
        if round(start, 3) in seen:
            raise CaptionError(_("Two chapters start at %(start)s.") % {"start": _format_time(start)})
        seen.add(round(start, 3))
        cleaned.append((round(start, 3), title))
    return sorted(cleaned)


def set_chapters(video, chapters, user=None):
    """Replace the video's chapters with ``[(start seconds, title)]``."""
    cleaned = _check_chapters(video, chapters)
    with transaction.atomic():
        Chapter.objects.filter(video=video).delete()
        Chapter.objects.bulk_create(
            Chapter(video=video, start=start, title=title, sort_order=index)
            for index, (start, title) in enumerate(cleaned)
        )
        log(video, "private_video.chapters_change", user=user, data={"count": len(cleaned)})
    return cleaned


# --- poster ---------------------------------------------------------------------------

_MAX_POSTER_PIXELS = 50_000_000
_POSTER_LONG_SIDE = 3840


def _jpeg_from_image(data):
    """Re-encoded JPEG bytes (upright, RGB, no metadata) of an image; PosterError otherwise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in ("JPEG", "PNG", "WEBP", "GIF"):
                raise PosterError(_("Upload a JPEG, PNG or WebP image."))
            if probe.width * probe.height > _MAX_POSTER_PIXELS:
                raise PosterError(_("This image is too large (%(w)s×%(h)s pixels).") % {"w": probe.width, "h": probe.height})
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "P", "PA"):
                image = image.convert("RGBA")
                background = Image.new("RGB", image.size, (0, 0, 0))
                background.paste(image, mask=image.getchannel("A"))
                image = background
            else:
                image = image.convert("RGB")
            image.thumbnail((_POSTER_LONG_SIDE, _POSTER_LONG_SIDE))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=88, optimize=True)
            return out.getvalue()
    except PosterError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise PosterError(_("This file is not an image that can be read.")) from None


def _store_poster(video, jpeg, poster_time, action, user):
    storage = video.poster_file.storage
    name = storage.save(poster_name(video.key, secrets.token_hex(6)), ContentFile(jpeg))
    old_name = video.poster_file.name
    try:
        with transaction.atomic():
            type(video).objects.filter(pk=video.pk).update(poster_file=name, poster_time=poster_time)
            log(video, action, user=user, data={"time": poster_time})
            _delete_on_commit(storage, old_name)
    except BaseException:
        storage.delete(name)
        raise
    video.poster_file.name, video.poster_time = name, poster_time
    return name


def set_poster_image(video, uploaded_file, user=None):
    """Make an uploaded image the video's poster (validated, re-encoded as JPEG)."""
    limit = int(setting("MAX_POSTER_SIZE"))
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise PosterError(_("This image is %(size)s bytes; the largest poster is %(limit)s bytes.")
                          % {"size": f"{size:,}", "limit": f"{limit:,}"})
    uploaded_file.seek(0)
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise PosterError(_("This image is larger than %(limit)s bytes.") % {"limit": f"{limit:,}"})
    return _store_poster(video, _jpeg_from_image(data), None, "private_video.poster_change", user)


def set_poster_frame(video, seconds, user=None):
    """Make the frame at ``seconds`` the poster: the ``extract_video_frame``
    hook (transcoding registers it) takes it from the original."""
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        raise PosterError(_("The poster time is not a number of seconds.")) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise PosterError(_("The poster time cannot be before the start of the video."))
    if video.duration is not None and seconds >= video.duration:
        raise PosterError(
            _("The video is %(end)s long; pick a time before its end.") % {"end": video.duration_display}
        )
    extractors = hooks.get_hooks("extract_video_frame")
    if not extractors:
        raise PosterError(_("This site cannot take frames from videos (no extract_video_frame hook)."))
    jpeg = extractors[-1](video, seconds)
    # ffmpeg's own JPEG is kept as it is (a second encoding would blur it),
    # once Pillow has read it as one.
    from PIL import Image

    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            image.verify()
            if image.format != "JPEG":
                raise ValueError(image.format)
    except Exception:  # noqa: BLE001 - whatever Pillow says, it is not a usable JPEG
        raise PosterError(_("The frame taken from the video is not a JPEG image.")) from None
    return _store_poster(video, jpeg, seconds, "private_video.poster_change", user)


def clear_poster(video, user=None):
    """Back to the transcoder's own poster."""
    old_name = video.poster_file.name
    if not old_name:
        return
    with transaction.atomic():
        type(video).objects.filter(pk=video.pk).update(poster_file="", poster_time=None)
        log(video, "private_video.poster_clear", user=user)
        _delete_on_commit(video.poster_file.storage, old_name)
    video.poster_file.name, video.poster_time = "", None
