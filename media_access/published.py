"""Published playlists and storyboard cues, read from storage once per process.

A published rendition file never changes: a new publish writes a new version
folder (``<job id>-<random>/``, see ``transcoding.publish``) and switches the
rows to it, and a replaced file is deleted, never rewritten in place. So a
file's storage name is an immutable identity, like Wagtail's rendition cache
keys, and what was read (or derived) from it may be kept by that name alone.
A bounded LRU per process (``MEDIA_ACCESS_PUBLISHED_TEXT_CACHE_SIZE`` entries)
keeps playlists and cue lists, a few kilobytes each: a player's playlist and
playback JSON requests then read nothing from storage after the first.
Only text this module is asked to read goes in; media bytes never do.
"""

import threading
from collections import OrderedDict

from .conf import setting

_entries = OrderedDict()
_lock = threading.Lock()
_MISSING = object()


def cached(kind, name, compute):
    """``compute()``, kept under (``kind``, storage ``name``) until evicted."""
    key = (kind, name)
    with _lock:
        value = _entries.get(key, _MISSING)
        if value is not _MISSING:
            _entries.move_to_end(key)
            return value
    value = compute()
    size = int(setting("PUBLISHED_TEXT_CACHE_SIZE"))
    if size > 0:
        with _lock:
            _entries[key] = value
            _entries.move_to_end(key)
            while len(_entries) > size:
                _entries.popitem(last=False)
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
    with _lock:
        _entries.clear()
