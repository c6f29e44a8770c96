"""The default transcoder backend: ffmpeg graphs built with ffmpeg-python."""

import ffmpeg

from ..profiles import keyframe_seconds, output_frame_rate, segment_seconds, setting
from . import (
    STORYBOARD_NAME,
    TranscoderBackend,
    hls_playlist_name,
    mp4_name,
)

_GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1")


def _global_args():
    return (*_GLOBAL_ARGS, "-stats_period", f"{float(setting('STATS_PERIOD', 0.5)):g}")


def _hls_options():
    return {
        "f": "hls",
        "hls_time": segment_seconds(),
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        # One file per rung, addressed by byte ranges: few files to publish
        # and to serve, and a playlist that is the only index.
        "hls_flags": "single_file+independent_segments",
    }


def _compile(outputs):
    stream = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return stream.global_args(*_global_args()).overwrite_output().compile(cmd="ffmpeg")


class FFmpegPythonBackend(TranscoderBackend):
    def remux_command(self, source, info, label, outdir):
        source_input = ffmpeg.input(str(source))
        streams = [source_input["v:0"]]
        if info.has_audio:
            streams.append(source_input["a:0"])
        copy = {"c": "copy", "dn": None, "sn": None}
        outputs = [
            ffmpeg.output(*streams, str(outdir / mp4_name(label)), movflags="+faststart", **copy),
            ffmpeg.output(*streams, str(outdir / hls_playlist_name(label)), **copy, **_hls_options()),
        ]
        return _compile(outputs)

    def ladder_command(self, source, info, planned, outdir, *, storyboard=None, preset=None):
        preset = preset or setting("X264_PRESET", "veryfast")
        rate = output_frame_rate(info)
        gop = max(1, round(rate * keyframe_seconds()))
        source_input = ffmpeg.input(str(source))
        # Decode once, make the rate constant once (VFR phone video), then
        # split: every rung sees the same frames, so keyframes line up.
        video = source_input["v:0"].filter("fps", fps=f"{rate.numerator}/{rate.denominator}")
        branches = video.filter_multi_output("split", len(planned) + (1 if storyboard else 0))
        outputs = []
        for index, rung in enumerate(planned):
            scaled = (
                branches.stream(index)
                .filter("scale", rung.width, rung.height)
                .filter("setsar", "1")
                .filter("format", "yuv420p")
            )
            streams = [scaled]
            options = {
                "c:v": "libx264",
                "profile:v": "high",
                "preset": preset,
                "crf": rung.rung.crf,
                "maxrate": f"{rung.rung.maxrate_kbps}k",
                "bufsize": f"{rung.rung.bufsize_kbps}k",
                "g": gop,
                "keyint_min": gop,
                "sc_threshold": 0,
                "flags": "+cgop",
                "force_key_frames": f"expr:gte(t,n_forced*{keyframe_seconds()})",
                "map_metadata": -1,
            }
            if info.has_audio:
                streams.append(source_input["a:0"])
                options.update({"c:a": "aac", "b:a": f"{rung.rung.audio_kbps}k", "ac": 2})
            outputs.append(
                ffmpeg.output(*streams, str(outdir / hls_playlist_name(rung.label)), **options, **_hls_options())
            )
        if storyboard:
            sprite = (
                branches.stream(len(planned))
                .filter("fps", fps=f"1/{storyboard.interval:g}")
                .filter("scale", storyboard.tile_width, storyboard.tile_height)
                .filter("setsar", "1")
                .filter("tile", f"{storyboard.columns}x{storyboard.rows}")
            )
            outputs.append(
                ffmpeg.output(sprite, str(outdir / STORYBOARD_NAME), **{"frames:v": 1, "q:v": 4, "update": 1})
            )
        return _compile(outputs)

    def progressive_command(self, rung_media, output):
        stream = ffmpeg.input(str(rung_media)).output(
            str(output), c="copy", movflags="+faststart", f="mp4"
        )
        return _compile([stream])

    def poster_command(self, source, info, output, *, seek, width, height):
        frame = (
            ffmpeg.input(str(source), ss=f"{seek:.3f}")["v:0"]
            # The most representative of the next frames, not the first one
            # after the seek, which may be a fade or a black frame.
            .filter("thumbnail", 25)
            .filter("scale", width, height)
            .filter("setsar", "1")
        )
        stream = ffmpeg.output(frame, str(output), **{"frames:v": 1, "q:v": 3, "update": 1})
        return _compile([stream])
