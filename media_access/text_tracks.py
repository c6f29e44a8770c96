"""Text media_access writes itself from the library's rows: the chapters
WebVTT track and the transcript's cue list.

Chapters live in the database (``private_video.tracks.Chapter``), not in a
file, so their track is written per request (a few lines). A transcript
reads the caption's stored WebVTT through the library's ``caption_cues``; a
caption file's name never changes content (a replaced caption gets a new
version folder), so its cues are kept by that name in ``published``.
"""

from private_video.captions import caption_cues

from . import published


def vtt_timestamp(seconds):
    """``hh:mm:ss.ttt``, as WebVTT cue timings are written."""
    millis = max(0, round(float(seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_escape(text):
    """Cue text that stays one plain line of text: no markup, no '-->', no blank line ending the cue."""
    one_line = " ".join(str(text).split())
    return one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chapters_vtt(chapters, duration):
    """A WebVTT chapters track: each chapter runs until the next one starts,
    the last until the end of the video. A cue's end is always after its
    start (WebVTT drops any other), even for a chapter at the very end."""
    chapters = sorted(chapters, key=lambda chapter: chapter.start)
    lines = ["WEBVTT", ""]
    for index, chapter in enumerate(chapters):
        start = max(0.0, float(chapter.start))
        following = chapters[index + 1].start if index + 1 < len(chapters) else duration
        end = max(float(following or 0), start + 0.001)
        lines += [
            f"chapter-{index + 1}",
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}",
            vtt_escape(chapter.title),
            "",
        ]
    return "\n".join(lines)


def transcript_cues(caption):
    """``[(start, end, text), ...]`` of a caption, parsed once per stored file."""
    return published.cached("caption-cues", caption.file.name, lambda: list(caption_cues(caption)))


def clock(seconds):
    """``m:ss``, or ``h:mm:ss`` past an hour, for a transcript's timestamps."""
    total = int(max(0, seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
