"""Published playlists and storyboard cues, read from storage once per process.

A published rendition file never changes: a new publish writes a new version
folder (``<job id>-<random>/``, see ``transcoding.publish``) and switches the
rows to it, and a replaced file is deleted, never rewritten in place. So a
file's storage name is an immutable identity, like Wagtail's rendition cache
keys, and what was read (or derived) from it may be kept by that name alone.
A bounded LRU per process (``MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_SIZE`` entries
and ``MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_CHARS`` characters in all: a rung
playlist of a ten-hour film is ~400 KB) keeps playlists and cue lists: a player's playlist and
playback JSON requests then read nothing from storage after the first.
Only text this module is asked to read goes in; media bytes never do.
"""

import threading
from collections import OrderedDict

from .conf import setting

_entries = OrderedDict()  # key -> (value, weight)
_weight = 0
_lock = threading.Lock()
_MISSING = object()


def _weigh(value):
    """About how many characters ``value`` keeps in memory."""
    return len(value) if isinstance(value, str) else len(repr(value))


def cached(kind, name, compute):
    """``compute()``, kept under (``kind``, storage ``name``) until evicted."""
    global _weight
    key = (kind, name)
    with _lock:
        entry = _entries.get(key, _MISSING)
        if entry is not _MISSING:
            _entries.move_to_end(key)
            return entry[0]
    value = compute()
    size, chars = int(setting("PUBLISHED_TEXT_CACHE_SIZE")), int(setting("PUBLISHED_TEXT_CACHE_CHARS"))
    weight = _weigh(value)
    if size > 0 and weight <= chars:
        with _lock:
            previous = _entries.pop(key, _MISSING)
            if previous is not _MISSING:
                _weight -= previous[1]
            _entries[key] = (value, weight)
            _weight += weight
            while len(_entries) > size or _weight > chars:
                _weight -= _entries.popitem(last=False)[1][1]
    return value


def read_text(field_file):
    """A published text file (a playlist, a cue index) by its storage name."""

    def read():
        # A few kilobytes of text, never media bytes.
        with field_file.storage.open(field_file.name, "rb") as handle:
            return handle.read().decode("utf-8")

    return cached("text", field_file.name, read)


def forget():
    """Tests: start from an empty cache."""
    global _weight
    with _lock:
        _entries.clear()
        _weight = 0
