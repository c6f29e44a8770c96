"""The default transcoder backend: ffmpeg graphs built with ffmpeg-python."""

import functools
import logging
import os
import re
import subprocess

import ffmpeg

from private_video.probe import finite_float, input_options, stream_seconds

from ..conf import setting
from ..profiles import (
    alpha_decoder,
    audio_kbps,
    audio_sample_rate,
    has_alpha,
    hdr_transfer,
    is_interlaced,
    keyframe_seconds,
    output_frame_rate,
    picture_shortfall,
    segment_seconds,
    source_video_stream,
)
from . import (
    STORYBOARD_FRAMES,
    TranscoderBackend,
    hls_playlist_name,
    mp4_name,
)

logger = logging.getLogger(__name__)

_GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-nostats", "-progress", "pipe:1")


def _global_args():
    return (*_GLOBAL_ARGS, "-stats_period", f"{float(setting('STATS_PERIOD')):g}")


def _hls_options():
    return {
        "f": "hls",
        "hls_time": segment_seconds(),
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        # One file per rung, addressed by byte ranges: few files to publish
        # and to serve, and a playlist that is the only index.
        "hls_flags": "single_file+independent_segments",
        # Each output starts where its first frame is shown, not where its
        # first frame is decoded. ffmpeg moves any output whose decode times
        # start below 0 up to 0: a rung with B-frames then showed its first
        # picture x264's reordering delay late (2 frames, 80 ms at 25 fps)
        # while its sound, a separate output, was not moved: the sound ran
        # ahead of the picture. Negative composition offsets let the first
        # picture keep time 0, and the sound's AAC priming stays before 0,
        # in an edit list that players (Chromium's MSE too) skip.
        "avoid_negative_ts": "disabled",
        "hls_segment_options": "movflags=+negative_cts_offsets:avoid_negative_ts=disabled",
    }


def _compile(outputs):
    stream = outputs[0] if len(outputs) == 1 else ffmpeg.merge_outputs(*outputs)
    return stream.global_args(*_global_args()).overwrite_output().compile(cmd="ffmpeg")


# Allow-lists for the colour tags handed to zscale: anything else falls back
# to what HDR video almost always is (BT.2020, non-constant luminance).
_ZSCALE_PRIMARIES = {"bt2020", "bt709", "smpte431", "smpte432"}
_ZSCALE_MATRICES = {"bt2020nc", "bt2020c", "bt709"}
# Colour tags for every SDR output: players must not guess.
_BT709_TAGS = {"color_primaries": "bt709", "color_trc": "bt709", "colorspace": "bt709"}
# ffprobe's matrix names → swscale's, to convert each rung's YUV to BT.709.
_SWS_MATRICES = {
    "bt709": "bt709", "smpte170m": "bt601", "bt470bg": "bt601", "fcc": "fcc", "smpte240m": "smpte240m",
    "bt2020nc": "bt2020", "bt2020c": "bt2020",
}


# swscale's matrix names → zscale's, for ``to_bt709``.
_ZSCALE_FROM_SWS = {"bt601": "470bg", "fcc": "fcc", "bt2020": "2020_ncl"}
# Pixel formats without YUV: RGB (no matrix yet), grey (no colour, so the
# same in every matrix) and palettes.
_NOT_YUV = re.compile(r"^(rgb|bgr|gbr|argb|abgr|0rgb|0bgr|x2rgb|x2bgr|gray|ya\d|pal8|monow|monob)")


def source_matrix(info):
    """The YUV matrix of the pictures entering the scaler, as swscale names
    it: BT.709 after tone mapping; else the source's tag; untagged video is
    taken the way players take it (BT.601 below 720 lines, BT.709 from there)."""
    if hdr_transfer(info):
        return "bt709"
    matrix = source_video_stream(info).get("color_space")
    if matrix in _SWS_MATRICES:
        return _SWS_MATRICES[matrix]
    return "bt709" if min(info.width or 0, info.height or 0) >= 720 else "bt601"


def to_bt709(video, info):
    """``video`` and the matrix its pictures are in afterwards: YUV in
    another matrix is converted to BT.709 here, once for every rung, by
    zscale. swscale converts between YUV matrices through a coarse RGB step:
    a BT.601 mid-grey (128, 128, 128) came out as (124, 126, 126), white as
    (251, 253, 250) and a grey source's picture turned green. Grey needs no
    conversion (it has no colour); RGB is converted by the rungs' scale."""
    matrix = source_matrix(info)
    if matrix == "bt709":
        return video, matrix
    if _NOT_YUV.match(info.pix_fmt or ""):
        return video, ("bt709" if info.pix_fmt.startswith(("gray", "ya")) else matrix)
    if matrix not in _ZSCALE_FROM_SWS or "zscale" not in ffmpeg_has("filters"):
        # An ffmpeg built without libzimg (check W002): the rungs' scale
        # converts, slightly tinted, as before.
        return video, matrix
    return video.filter("zscale", min=_ZSCALE_FROM_SWS[matrix], m="709"), "bt709"


def jpeg_scale(video, info, width, height):
    """Scale a picture that ends as a JPEG (poster, storyboard, a chosen
    frame): from the source's YUV matrix to JPEG's (BT.601, full range), as
    browsers decode it. Left to itself swscale takes BT.709 video for BT.601
    (a red turns orange-red, green 17 levels low)."""
    return video.filter(
        "scale", width, height, in_color_matrix=source_matrix(info), out_color_matrix="bt601", out_range="full"
    )


@functools.lru_cache(maxsize=None)
def ffmpeg_has(kind):
    """The names ffmpeg on PATH lists with ``-<kind>`` ("decoders", "encoders",
    "filters"): what this build can do, asked once per process. Empty when
    ffmpeg cannot be run (check E003 says so)."""
    try:
        listing = subprocess.run(
            ["ffmpeg", "-hide_banner", f"-{kind}"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.split()[1] for line in listing.splitlines() if len(line.split()) > 1)


def decoded_input(source, info, **options):
    """ffmpeg's input for a source whose pictures are decoded: the upload's
    whitelists and demuxer, and for WebM VP8/VP9 with transparency the
    libvpx decoder, which reads it (``profiles.alpha_decoder``)."""
    decoder = alpha_decoder(info)
    if decoder:
        if decoder in ffmpeg_has("decoders"):
            options[f"c:{info.video_selector}"] = decoder
        else:
            logger.warning("ffmpeg has no %s decoder: the picture's transparency is not read", decoder)
    return ffmpeg.input(str(source), **options, **input_options(info.demuxer))


def picture_filters(video, info):
    """Progressive SDR from any source: interlaced pictures are deinterlaced
    (bwdif, one frame per frame), HDR (PQ or HLG) is tone-mapped to BT.709.
    Every picture output (rungs, storyboard, poster) goes through this."""
    if info.pix_fmt == "pal8":
        # A palette goes to RGB first: swscale converts palette entries with
        # BT.601 whatever out_color_matrix asks, and the rungs are tagged
        # BT.709 (a red came out with green 14 levels high).
        video = video.filter("format", "rgb24")
    if has_alpha(info):
        # Transparency (a title or an overlay exported with alpha) is shown
        # over black, as on the player's black background: each pixel times
        # its opacity. Dropping the alpha plane instead showed whatever
        # colour the transparent parts hold (white, garbage) and
        # half-transparent parts at full strength.
        video = video.filter("premultiply", inplace=1)
    if is_interlaced(info):
        video = video.filter("bwdif", mode="send_frame", parity="auto", deint="all")
    transfer = hdr_transfer(info)
    if transfer:
        stream = source_video_stream(info)
        primaries = stream.get("color_primaries")
        matrix = stream.get("color_space")
        video = (
            video.filter(
                "zscale",
                tin=transfer,
                pin=primaries if primaries in _ZSCALE_PRIMARIES else "bt2020",
                min=matrix if matrix in _ZSCALE_MATRICES else "bt2020nc",
                rin="full" if stream.get("color_range") == "pc" else "limited",
                t="linear",
                # SDR reference white at 100 nits: SDR-range content keeps
                # its brightness, highlights above it are compressed.
                npl=100,
            )
            .filter("format", "gbrpf32le")
            .filter("zscale", p="bt709")
            # Mobius keeps the picture below reference white as it is and
            # rolls highlights off smoothly (hable darkens everything).
            .filter("tonemap", tonemap="mobius", desat=0)
            .filter("zscale", t="bt709", m="bt709", r="limited")
            .filter("format", "yuv420p")
        )
    return video


def _merged_end(info, indexes):
    """Where the latest of the source's audio streams ``indexes`` (their
    a:<index>) ends, on the clock ffmpeg plays the file by (from its first
    timestamp), at most the file's duration; None when nothing says."""
    if info is None:
        return None
    sound = [s for s in info.raw.get("streams", []) if s.get("codec_type") == "audio"]
    begin = finite_float((info.raw.get("format") or {}).get("start_time")) or 0.0
    ends = []
    for index in indexes:
        stream = sound[index] if index < len(sound) else {}
        length = stream_seconds(stream)
        if length is not None:
            # A Matroska DURATION tag counts the start already: overshooting
            # is silence, cut at the file's end below.
            ends.append(max(0.0, (finite_float(stream.get("start_time")) or begin) - begin) + length)
    end = max(ends, default=None)
    if info.duration and (end is None or end > info.duration):
        end = info.duration
    return end if end and end > 0 else None


def _on_the_clock(sound, until):
    """A mono input of amerge from the file's time 0 (silence before its
    first sample, any gap filled) to ``until`` seconds (silence after its last)."""
    sound = sound.filter("aresample", **{"async": 1, "first_pts": 0}).filter("aformat", channel_layouts="mono")
    return sound.filter("apad", whole_dur=f"{until:.6f}") if until else sound


def _aac_in_mp4(tracks):
    """Copied AAC from MPEG-TS (or any ADTS stream) must lose its ADTS
    headers to go into MP4: the filter passes other AAC through as it is."""
    return {"bsf:a": "aac_adtstoasc"} if any(track.codec == "aac" for track in tracks) else {}


class FFmpegPythonBackend(TranscoderBackend):
    def remux_command(self, source, info, label, outdir, *, audio=()):
        source_input = ffmpeg.input(str(source), **input_options(info.demuxer))
        video = source_input[info.video_selector]
        copy = {"c": "copy", "dn": None, "sn": None}
        # The MP4 plays on its own: the picture and the default sound.
        mp4_streams = [video] + [source_input[f"a:{track.index}"] for track in audio[:1]]
        mp4_copy = {**copy, **_aac_in_mp4(audio[:1])}
        outputs = [
            ffmpeg.output(*mp4_streams, str(outdir / mp4_name(label)), movflags="+faststart", **mp4_copy),
            ffmpeg.output(video, str(outdir / hls_playlist_name(label)), an=None, **copy, **_hls_options()),
        ]
        outputs += self._audio_outputs(source_input, audio, outdir, copy=True)
        return _compile(outputs)

    def _audio_outputs(self, source_input, audio, outdir, *, copy=False, info=None):
        """Each audio track once, as an audio-only HLS rendition."""
        outputs = []
        for track in audio:
            if copy:
                options = {"c:a": "copy", **_aac_in_mp4([track])}
            else:
                options = {"c:a": "aac", "b:a": f"{audio_kbps()}k", "ac": 2}
                if info is not None:
                    options["ar"] = audio_sample_rate(info, track)
            sound = source_input[f"a:{track.index}"]
            if track.merge:
                # A camera's mono tracks: the first is the left channel, the next the right.
                # amerge pairs samples as they come and stops at the shortest
                # input: a track that starts late was moved to the start, and
                # the other's sound after a shorter track ends was lost. Each
                # is put on the file's clock (silence before a late start)
                # and padded with silence to the longest one's end.
                until = _merged_end(info, (track.index, *track.merge))
                sound = ffmpeg.filter(
                    [_on_the_clock(source_input[f"a:{index}"], until) for index in (track.index, *track.merge)],
                    "amerge", inputs=1 + len(track.merge),
                )
            outputs.append(ffmpeg.output(
                sound, str(outdir / hls_playlist_name(track.label)),
                vn=None, dn=None, sn=None, map_metadata=-1, **options, **_hls_options(),
            ))
        return outputs

    def ladder_command(self, source, info, planned, outdir, *, storyboard=None, preset=None, audio=()):
        preset = preset or setting("X264_PRESET")
        rate = output_frame_rate(info)
        gop = max(1, round(rate * keyframe_seconds()))
        source_input = decoded_input(source, info)
        # Decode once, deinterlace and tone-map once, make the rate constant
        # once (VFR phone video), then split: every rung sees the same
        # frames, so keyframes line up.
        video = picture_filters(source_input[info.video_selector], info)
        hold = picture_shortfall(info) if audio else 0
        if hold:
            # Sound that goes on after the last picture (a still with a
            # soundtrack, one frame and a talk): the last picture is held, or
            # an HLS player waits for video that never comes.
            video = video.filter("tpad", stop_mode="clone", stop_duration=f"{hold:.3f}")
        video = video.filter("fps", fps=f"{rate.numerator}/{rate.denominator}")
        if storyboard:
            # The storyboard's JPEGs are converted from the source's matrix
            # straight to JPEG's; the rungs share one conversion to BT.709.
            halves = video.filter_multi_output("split", 2)
            video, board = halves.stream(0), halves.stream(1)
        video, matrix = to_bt709(video, info)
        branches = video.filter_multi_output("split", len(planned))
        outputs = []
        for index, rung in enumerate(planned):
            scaled = (
                branches.stream(index)
                # Tagged BT.709 below, so converted to BT.709 here.
                .filter("scale", rung.width, rung.height, in_color_matrix=matrix, out_color_matrix="bt709")
                .filter("setsar", "1")
                .filter("format", "yuv420p")
            )
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
                **_BT709_TAGS,
            }
            # Sound is its own rendition (``audio``), shared by every rung.
            outputs.append(ffmpeg.output(
                scaled, str(outdir / hls_playlist_name(rung.label)), an=None, **options, **_hls_options()
            ))
        outputs += self._audio_outputs(source_input, audio, outdir, info=info)
        if storyboard:
            tiles = (
                board
                # start_time and eof_action: a clip shorter than one interval
                # (even a single frame) still gives its first tile.
                .filter("fps", fps=f"1/{storyboard.interval:g}", start_time=0, eof_action="pass")
            )
            tiles = jpeg_scale(tiles, info, storyboard.tile_width, storyboard.tile_height).filter("setsar", "1")
            # At most the planned tiles: timestamps that jump far past the
            # probed duration must not fill the work folder with images.
            outputs.append(ffmpeg.output(
                tiles, str(outdir / STORYBOARD_FRAMES), f="image2", **{"frames:v": storyboard.count, "q:v": 4}
            ))
        return _compile(outputs)

    def storyboard_command(self, frames, output, storyboard):
        # Our own JPEGs from the ladder, read by the image sequence demuxer
        # only; nothing of the upload's reaches this command.
        tiles = ffmpeg.input(
            str(frames), f="image2", pattern_type="sequence", framerate=1,
            format_whitelist="image2", protocol_whitelist="file",
        )
        sprite = tiles["v:0"].filter("tile", f"{storyboard.columns}x{storyboard.rows}")
        stream = ffmpeg.output(sprite, str(output), **{"frames:v": 1, "q:v": 4, "update": 1})
        return _compile([stream])

    def progressive_command(self, rung_media, output, *, audio_media=None, reorder_delay=0.0):
        # Both inputs are the ladder's own fMP4 files: the MP4 demuxer only.
        # ffmpeg reads a rung written with negative composition offsets with
        # every picture ``reorder_delay`` late (it keeps pts >= dts by
        # moving the pts): taken back here, or the MP4's sound runs ahead.
        shift = {"itsoffset": f"{-reorder_delay:.6f}"} if reorder_delay else {}
        video = ffmpeg.input(str(rung_media), **shift, **input_options("mov"))
        streams = [video["v:0"]]
        if audio_media:
            streams.append(ffmpeg.input(str(audio_media), **input_options("mov"))["a:0"])
        # copyts: each input keeps its own timeline. Without it ffmpeg starts
        # every input at 0, and sound that starts after the picture (an
        # itsoffset, a late first packet) was moved to the picture's start.
        stream = ffmpeg.output(*streams, str(output), c="copy", movflags="+faststart", f="mp4", copyts=None)
        return _compile([stream])

    def poster_command(self, source, info, output, *, seek, width, height):
        # No seek at all for 0: a file whose index is broken (a Matroska
        # cover track holding the only cues) gives no frame after any seek,
        # even to 0, and the pipeline's last try is from the start.
        seeking = {"ss": f"{seek:.3f}"} if seek else {}
        frame = (
            picture_filters(
                decoded_input(source, info, **seeking)[info.video_selector], info
            )
            # The most representative of the next frames, not the first one
            # after the seek, which may be a fade or a black frame.
            .filter("thumbnail", 25)
        )
        frame = jpeg_scale(frame, info, width, height).filter("setsar", "1")
        stream = ffmpeg.output(frame, str(output), **{"frames:v": 1, "q:v": 3, "update": 1})
        return _compile([stream])

    def timeline_command(self, source, info):
        picture = ffmpeg.input(str(source), **input_options(info.demuxer))[info.video_selector]
        stream = ffmpeg.output(picture, os.devnull, c="copy", f="null")
        return _compile([stream])

    def field_order_command(self, source, info, output, *, frames):
        # idet's verdict per frame (over the frames seen so far) as text:
        # ffmpeg logs its summary only at the info level, which we silence.
        verdicts = (
            ffmpeg.input(str(source), **input_options(info.demuxer))[info.video_selector]
            .filter("idet")
            .filter("metadata", mode="print", key="lavfi.idet.multiple.current_frame", file=str(output))
        )
        stream = ffmpeg.output(verdicts, os.devnull, f="null", **{"frames:v": frames})
        return _compile([stream])
