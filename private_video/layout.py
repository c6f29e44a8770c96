"""Where a video's files live in the private storage: the one place the
layout is spelled. Models, publishing, tokens, the signed-file view, its URL
pattern and the nginx template all take names and patterns from here.

    videos/<first two hex digits of the key>/<key hex>/original<.ext>
    videos/<..>/<key hex>/renditions/<job id>-<random>/<file>

The two-level fan-out keeps any one folder (or S3 prefix listing) small.
"""

import posixpath

# Regular expressions (no anchors) for the parts of a stored name; used in
# url patterns and rendered into the nginx config.
VIDEO_FOLDER_PATTERN = r"videos/[0-9a-f]{2}/[0-9a-f]{32}/"
RENDITIONS_PREFIX_PATTERN = VIDEO_FOLDER_PATTERN + r"renditions/"


def video_folder(key):
    """``videos/ab/abcdef…/`` for a video's UUID key."""
    hex_key = key.hex
    return f"videos/{hex_key[:2]}/{hex_key}/"


def original_name(key, extension=""):
    return f"{video_folder(key)}original{extension}"


def renditions_prefix(key):
    """The prefix every rendition of the video lives under; tokens sign it."""
    return f"{video_folder(key)}renditions/"


def rendition_name(key, filename):
    """A single rendition file kept directly under the prefix (legacy uploads of renditions)."""
    return f"{renditions_prefix(key)}{posixpath.basename(filename)}"


# A published rendition file: ``<version folder>/<file>`` under the renditions
# prefix (transcoding.publish names them); the only files signed URLs reach.
RENDITION_FILE_PATTERN = r"[A-Za-z0-9_-]{1,64}/[A-Za-z0-9_-]{1,200}\.(?:m4s|mp4|jpg|vtt)"


def text_track_name(key, kind, version):
    """A caption or chapters WebVTT file: ``<renditions prefix><kind>-<version>/<kind>.vtt``.
    Under the renditions prefix so the same signed URLs reach it; a new file
    gets a new version folder (names never change content)."""
    return f"{renditions_prefix(key)}{kind}-{version}/{kind}.vtt"


def poster_name(key, version):
    """An editor's chosen poster (an uploaded image or a picked frame), re-encoded as JPEG."""
    return f"{renditions_prefix(key)}poster-{version}/poster.jpg"
