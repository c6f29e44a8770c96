"""The frame an editor picks as the poster: one JPEG taken from the original
at the chosen time, by ffmpeg under the same sandbox, slot limit and input
whitelists as the pipeline (the original is probed again and opened with the
demuxer the probe found). Registered as the library's ``extract_video_frame``
hook (private_video.captions.set_poster_frame calls it)."""

import shutil
import tempfile
from pathlib import Path

import ffmpeg
from django.utils.translation import gettext as _

from private_video.captions import PosterError
from private_video.probe import ProbeError, probe_video

from .backends.ffmpeg_python import _compile, decoded_input, jpeg_scale, picture_filters
from .conf import temp_dir
from .pipeline import check_source_size, local_source
from .profiles import display_dimensions, even
from .runner import FFmpegError, ffmpeg_slot, run_ffmpeg

# The poster's long side at most (the player never shows it larger).
POSTER_LONG_SIDE = 1920


class _NoReporter:
    def heartbeat(self):
        pass


def frame_command(source, info, output, seconds):
    width, height = display_dimensions(info)
    scale = min(1.0, POSTER_LONG_SIDE / max(width, height))
    size = (even(width * scale), even(height * scale))
    # -ss before the input with accurate seeking: the frame shown at that
    # time, not the keyframe before it.
    frame = (
        picture_filters(
            decoded_input(source, info, ss=f"{seconds:.3f}")[info.video_selector], info
        )
    )
    frame = jpeg_scale(frame, info, *size).filter("setsar", "1")
    stream = ffmpeg.output(frame, str(output), **{"frames:v": 1, "q:v": 2, "f": "image2", "c:v": "mjpeg",
                                                 "update": 1})
    return _compile([stream])


def extract_video_frame(video, seconds):
    """JPEG bytes of the original's frame at ``seconds``; PosterError when
    there is none (a time past the end, an unreadable original)."""
    if not video.file.name:
        raise PosterError(_("This video has no file to take a frame from."))
    workdir = Path(tempfile.mkdtemp(prefix="poster-", dir=temp_dir()))
    try:
        with local_source(video.file.name, workdir, _NoReporter()) as source:
            try:
                info = probe_video(source)
                check_source_size(info)
            except ProbeError as exc:
                raise PosterError(str(exc)) from None
            if seconds >= info.duration:
                raise PosterError(
                    _("The video ends at %(end).2f s; pick a time before its end.") % {"end": info.duration}
                )
            output = workdir / "poster.jpg"
            try:
                with ffmpeg_slot():
                    run_ffmpeg(frame_command(source, info, output, seconds), duration=None)
            except FFmpegError as exc:
                raise PosterError(_("ffmpeg could not take that frame: %(error)s") % {"error": exc}) from None
            if not output.exists() or not output.stat().st_size:
                raise PosterError(
                    _("There is no picture at %(time).2f s (the video ends at %(end).2f s).")
                    % {"time": seconds, "end": info.duration}
                )
            return output.read_bytes()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
