"""The transcoder backend: the one place that knows ffmpeg's command line.

A backend turns a plan (source, probe info, planned rungs, output folder)
into argument lists; ``transcoding.runner`` runs them. The default builds its
graphs with ffmpeg-python; ``TRANSCODING_BACKEND`` names another class.
"""

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


def hls_playlist_name(label):
    return f"hls-{label}.m3u8"


def hls_media_name(label):
    # ffmpeg names the single fMP4 file after its playlist.
    return f"hls-{label}.m4s"


def mp4_name(label):
    return f"mp4-{label}.mp4"


POSTER_NAME = "poster.jpg"
STORYBOARD_NAME = "storyboard.jpg"
# The ladder writes one image per storyboard tile (an image sequence, never
# the sprite itself: ffmpeg reports no progress at all until every output
# has written its first frame, and a sprite's first frame is the whole
# video). ``storyboard_command`` then tiles them into STORYBOARD_NAME.
STORYBOARD_FRAMES = "storyboard-%05d.jpg"


@dataclass(frozen=True)
class StoryboardPlan:
    interval: float
    count: int
    columns: int
    tile_width: int
    tile_height: int

    @property
    def rows(self):
        return -(-self.count // self.columns)


class TranscoderBackend:
    """What the pipeline needs from a backend. Every method returns argv;
    ffmpeg must be told to write ``-progress pipe:1`` so progress can be read.

    Every input is opened with ``private_video.probe.input_options(info.demuxer)``
    (the demuxer and protocol whitelists, and the demuxer the probe found):
    a source is hostile input, even after its probe."""

    def remux_command(self, source, info, label, outdir, *, audio=()):
        """Copy the streams unchanged: a faststart MP4 (picture and the first
        of ``audio``), a video-only HLS fMP4 rung named ``label`` and one
        audio-only HLS rendition per ``profiles.AudioTrack`` in ``audio``."""
        raise NotImplementedError

    def ladder_command(self, source, info, planned, outdir, *, storyboard=None, preset=None, audio=()):
        """Every planned rung (video only), each of ``audio`` once as an
        audio-only rendition, and the storyboard's tiles (STORYBOARD_FRAMES,
        one image per ``storyboard.interval`` from 0 s), from one decode.
        Pictures come out progressive SDR BT.709 whatever the source. Every
        output gets a frame early on, so ffmpeg reports progress as it goes."""
        raise NotImplementedError

    def storyboard_command(self, frames, output, storyboard):
        """Tile the images ``frames`` (a STORYBOARD_FRAMES pattern the ladder
        wrote) into one sprite, ``storyboard.columns`` wide, row by row."""
        raise NotImplementedError

    def progressive_command(self, rung_media, output, *, audio_media=None, reorder_delay=0.0):
        """A faststart MP4 from an already encoded rung (and the default
        audio rendition's file), without re-encoding. ``reorder_delay``:
        how late ffmpeg's demuxer reads the rung's pictures
        (``pipeline.reorder_delay``), taken back so sound and picture meet."""
        raise NotImplementedError

    def poster_command(self, source, info, output, *, seek, width, height):
        raise NotImplementedError

    def timeline_command(self, source, info):
        """Read the picture's packets (copied, nothing decoded, nothing
        written) as the ladder's ffmpeg reads them: with its corrections of
        timestamps that restart or jump. Its last progress report's
        ``out_time_us`` is how long the renditions will play."""
        raise NotImplementedError

    def field_order_command(self, source, info, output, *, frames):
        """Run interlace detection on the first ``frames`` frames and write
        ffmpeg's ``lavfi.idet.multiple.current_frame`` verdicts (tff, bff,
        progressive, undetermined) as ``key=value`` lines to ``output``."""
        raise NotImplementedError


def get_backend():
    from ..conf import setting

    path = setting("BACKEND")
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"TRANSCODING_BACKEND {path!r} cannot be imported: {exc}") from None
    return backend_class()
