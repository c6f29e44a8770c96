"""One transcode job, start to finish: probe → playable fast → ladder,
poster and storyboard → publish. Runs inside a task worker only."""

import logging
import math
import os
import socket
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from django.db.models import F
from django.utils import timezone

from cms.storage import private_storage

from . import backends
from .backends import POSTER_NAME, STORYBOARD_NAME, StoryboardPlan, get_backend
from .models import TranscodeJob
from .probe import ProbeError, probe, probe_video
from .profiles import (
    display_aspect,
    even,
    lowest_rung,
    plan_ladder,
    progressive_rung,
    setting,
)
from .publish import JobSuperseded, Output, publish
from .runner import FFmpegError, ffmpeg_slot, run_ffmpeg

logger = logging.getLogger(__name__)

Status = TranscodeJob.Status
HLS_TYPE = "application/vnd.apple.mpegurl"

# Share of the job's progress bar per stage: the ladder is the long part.
_STAGES = {"probe": (0, 2), "playable": (2, 12), "ladder": (12, 94), "finish": (94, 100)}


class JobReporter:
    """Writes progress, ETA and the heartbeat (the job's lease) to the
    database, throttled, and notices when the job was taken away."""

    def __init__(self, job):
        self.job = job
        self.min_interval = float(setting("PROGRESS_INTERVAL", 1.0))
        self.last_write = 0.0
        self.stage_name = ""
        self.stage_started = time.monotonic()

    def stage(self, name):
        self.stage_name = name
        self.stage_started = time.monotonic()
        self._write({"stage": name, "progress": _STAGES[name][0]}, force=True)

    def progress(self, fraction, speed=None):
        start, end = _STAGES[self.stage_name]
        fields = {}
        if fraction is not None:
            fields["progress"] = int(start + (end - start) * fraction)
            elapsed = time.monotonic() - self.stage_started
            if fraction > 0.02:
                remaining = elapsed * (1 - fraction) / fraction
                fields["eta_seconds"] = int(math.ceil(remaining))
        self._write(fields)

    def heartbeat(self):
        self._write({})

    def _write(self, fields, force=False):
        now = time.monotonic()
        if not force and now - self.last_write < self.min_interval:
            return
        self.last_write = now
        updated = TranscodeJob.objects.filter(
            pk=self.job.pk, status=Status.PROCESSING, worker=self.job.worker
        ).update(heartbeat_at=timezone.now(), **fields)
        if not updated:
            raise JobSuperseded()


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(job_id):
    """Take a queued job; None when another worker has it or it is gone."""
    now = timezone.now()
    worker = worker_name()
    claimed = TranscodeJob.objects.filter(pk=job_id, status=Status.QUEUED).update(
        status=Status.PROCESSING,
        worker=worker,
        attempts=F("attempts") + 1,
        heartbeat_at=now,
        started_at=now,
        progress=0,
        eta_seconds=None,
        error="",
        stderr_tail="",
    )
    if not claimed:
        return None
    return TranscodeJob.objects.select_related("video").get(pk=job_id)


def run_job(job_id):
    """The task body. Never raises for bad media: the job records why."""
    job = claim(job_id)
    if job is None:
        return "skipped"
    reporter = JobReporter(job)
    try:
        with tempfile.TemporaryDirectory(prefix=f"transcode-{job.pk}-", dir=setting("TEMP_DIR", None)) as tmp:
            transcode(job, reporter, Path(tmp))
    except JobSuperseded:
        logger.info("transcode job %s was superseded", job.pk)
        return "superseded"
    except ProbeError as exc:
        _fail(job, readable_probe_error(exc))
    except FFmpegError as exc:
        _fail(job, readable_ffmpeg_error(exc), exc.stderr_tail)
    except Exception as exc:  # noqa: BLE001 - the worker must survive anything
        logger.exception("transcode job %s crashed", job.pk)
        _fail(job, f"Processing failed unexpectedly: {exc}", traceback.format_exc()[-4000:])
    else:
        TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker).update(
            status=Status.READY, progress=100, eta_seconds=0, stage="", finished_at=timezone.now()
        )
        return "ready"
    return "failed"


def _fail(job, message, stderr_tail=""):
    TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker).update(
        status=Status.FAILED,
        error=message[:2000],
        stderr_tail=stderr_tail[-8000:],
        eta_seconds=None,
        finished_at=timezone.now(),
    )


_KNOWN_FAILURES = (
    ("moov atom not found", "The file is incomplete (was the upload cut short?) and cannot be read."),
    ("Invalid data found when processing input", "The file is damaged or is not a video ffmpeg can read."),
    ("does not contain any stream", "The file contains no audio or video stream."),
    ("Output file #0 does not contain any stream", "The file contains no usable video stream."),
    ("No space left on device", "The server ran out of disk space while processing."),
)


def readable_probe_error(exc):
    detail = getattr(exc, "detail", "") or str(exc)
    for needle, readable in _KNOWN_FAILURES:
        if needle in detail:
            return readable
    return str(exc)


_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot", b"uuid"}


def _probe_source(source):
    try:
        return probe_video(source)
    except ProbeError as exc:
        # ffprobe picks the demuxer by the name: a text file called .mp4 and
        # an MP4 cut short both say "moov atom not found". The first box tells.
        with open(source, "rb") as handle:
            head = handle.read(8)
        if "moov atom not found" in exc.detail and head[4:8] not in _MP4_BOXES:
            raise ProbeError("This file is not a video; its content is not a format ffmpeg knows.") from None
        raise


def check_source_size(info):
    """Refuse pictures no rung needs and ffmpeg may not have memory for."""
    limit = int(setting("MAX_SOURCE_PIXELS", 8192 * 8192))
    if info.width * info.height > limit:
        raise ProbeError(
            f"The video is {info.width}×{info.height} pixels; the largest this site processes "
            f"is {limit:,} pixels per frame."
        )


def readable_ffmpeg_error(exc):
    text = exc.stderr_tail or ""
    for needle, message in _KNOWN_FAILURES:
        if needle in text:
            return message
    return str(exc)


@contextmanager
def local_source(name, workdir, reporter):
    """A local path to the original: the storage's own when it has one,
    else a streamed download (S3 and friends)."""
    storage = private_storage()
    try:
        path = storage.path(name)
    except NotImplementedError:
        path = None
    if path and os.path.exists(path):
        yield Path(path)
        return
    target = workdir / ("source" + os.path.splitext(name)[1])
    with storage.open(name, "rb") as source, target.open("wb") as out:
        while chunk := source.read(4 * 1024 * 1024):
            out.write(chunk)
            reporter.heartbeat()
    yield target


def is_web_playable(info):
    """Browsers play it as is: H.264 8-bit 4:2:0 with AAC or no sound."""
    return (
        info.video_codec == "h264"
        and info.pix_fmt in ("yuv420p", "yuvj420p")
        and info.profile in ("Constrained Baseline", "Baseline", "Main", "High")
        and (not info.has_audio or info.audio_codec == "aac")
    )


def transcode(job, reporter, workdir):
    video = job.video
    backend = get_backend()
    reporter.stage("probe")
    with local_source(job.source_name, workdir, reporter) as source:
        info = _probe_source(source)
        _record_probe(job, video, info)
        check_source_size(info)

        reporter.stage("playable")
        fast_dir = workdir / "playable"
        fast_dir.mkdir()
        planned = plan_ladder(info)
        if is_web_playable(info):
            label = f"{even(info.display_size[1])}p"
            cmd = backend.remux_command(source, info, label, fast_dir)
            try:
                _run(cmd, info, reporter)
                fast = _rung_outputs(fast_dir, label, info)
            except FFmpegError:
                # A remux that fails will fail the ladder too, with a
                # better message; let the ladder decide.
                logger.warning("remux of job %s failed; going straight to the ladder", job.pk)
                fast = None
        else:
            rung = lowest_rung(info)
            preset = setting("FAST_X264_PRESET", "veryfast")
            cmd = backend.ladder_command(source, info, [rung], fast_dir, preset=preset)
            _run(cmd, info, reporter)
            _run(backend.progressive_command(fast_dir / backends.hls_media_name(rung.label),
                                             fast_dir / backends.mp4_name(rung.label)), None, None)
            fast = _rung_outputs(fast_dir, rung.label, info, size=(rung.width, rung.height))
        if fast:
            mp4, media, playlist = fast
            publish(job, video, [mp4, media, playlist, _master([playlist], fast_dir)],
                    replace_all=True, on_upload=reporter.heartbeat)
            now = timezone.now()
            TranscodeJob.objects.filter(pk=job.pk).update(playable=True, playable_at=now)

        reporter.stage("ladder")
        out = workdir / "ladder"
        out.mkdir()
        storyboard = plan_storyboard(info)
        _run(backend.ladder_command(source, info, planned, out, storyboard=storyboard), info, reporter)

        reporter.stage("finish")
        outputs, hls_outputs = [], []
        for rung in planned:
            _, media, playlist = _rung_outputs(out, rung.label, info, size=(rung.width, rung.height))
            outputs += [media, playlist]
            hls_outputs.append(playlist)
        outputs.append(_master(hls_outputs, out))
        mp4_rung = progressive_rung(planned)
        _run(backend.progressive_command(out / backends.hls_media_name(mp4_rung.label),
                                         out / backends.mp4_name(mp4_rung.label)), None, None)
        outputs.append(_mp4_output(out, mp4_rung.label, info, (mp4_rung.width, mp4_rung.height)))
        outputs.append(_poster(backend, source, info, out))
        outputs += _storyboard_outputs(out, storyboard, info)
        publish(job, video, outputs, replace_all=True, on_upload=reporter.heartbeat)


def _run(cmd, info, reporter):
    duration = info.duration if info else None
    wait = reporter.heartbeat if reporter else None
    with ffmpeg_slot(wait_callback=wait):
        return run_ffmpeg(cmd, duration=duration, on_progress=reporter.progress if reporter else None)


def _record_probe(job, video, info):
    video.apply_probe(info)
    fields = ["duration", "width", "height", "video_codec", "audio_codec", "container", "probe_data"]
    type(video).objects.filter(pk=video.pk).update(**{name: getattr(video, name) for name in fields})
    job.source_info = {
        "rotation": info.rotation,
        "frame_rate": info.frame_rate,
        "bit_rate": info.bit_rate,
        "pix_fmt": info.pix_fmt,
        "profile": info.profile,
        "has_audio": info.has_audio,
        "audio_channels": info.audio_channels,
        "web_playable": is_web_playable(info),
    }
    TranscodeJob.objects.filter(pk=job.pk).update(source_info=job.source_info)


def _codecs(path, has_audio):
    """RFC 6381 codecs of an H.264/AAC file, for the master playlist."""
    info = probe(path)
    stream = next(s for s in info.raw["streams"] if s.get("codec_type") == "video")
    profile_idc = {"High": "6400", "Main": "4d40", "Baseline": "4200", "Constrained Baseline": "42e0"}
    video = "avc1.%s%02x" % (profile_idc.get(stream.get("profile"), "6400"), int(stream.get("level") or 40))
    return f"{video},mp4a.40.2" if has_audio else video


def _segments(playlist):
    """(duration, bytes) per segment of a single-file byte-range playlist."""
    segments, duration = [], None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-BYTERANGE:") and duration is not None:
            segments.append((duration, int(line[17:].split("@")[0])))
            duration = None
    return segments


def _rung_outputs(folder, label, info, *, size=None):
    """(mp4 or None, hls media, hls playlist) for one rung."""
    playlist = folder / backends.hls_playlist_name(label)
    media = folder / backends.hls_media_name(label)
    media_name, playlist_name = f"hls-{label}-media", f"hls-{label}"
    segments = _segments(playlist)
    duration = sum(d for d, _ in segments) or info.duration
    average = int(media.stat().st_size * 8 / duration) if duration else None
    peak = max((int(b * 8 / d) for d, b in segments if d > 0), default=average)
    width, height = size or info.display_size
    codecs = _codecs(media, info.has_audio)
    common = {"width": width, "height": height, "codecs": codecs, "duration": duration}
    mp4 = None
    if (folder / backends.mp4_name(label)).exists():
        mp4 = _mp4_output(folder, label, info, (width, height))
    media_output = Output(media_name, media, "video/mp4", bitrate=average, **common)
    playlist_output = Output(
        playlist_name, playlist, HLS_TYPE, bitrate=average, peak_bitrate=peak,
        references={media.name: media_name}, **common,
    )
    return mp4, media_output, playlist_output


def _mp4_output(folder, label, info, size):
    path = folder / backends.mp4_name(label)
    duration = probe(path).duration or info.duration
    return Output(
        f"mp4-{label}", path, "video/mp4", width=size[0], height=size[1],
        bitrate=int(path.stat().st_size * 8 / duration) if duration else None,
        codecs=_codecs(path, info.has_audio), duration=duration,
    )


def _master(playlists, folder):
    """The master playlist, lowest rung first so playback starts quickly."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for playlist in sorted(playlists, key=lambda output: output.height):
        attributes = [
            f"BANDWIDTH={max(playlist.peak_bitrate or 0, playlist.bitrate or 0)}",
            f"AVERAGE-BANDWIDTH={playlist.bitrate}",
            f"RESOLUTION={playlist.width}x{playlist.height}",
            f'CODECS="{playlist.codecs}"',
        ]
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), playlist.name]
    path = folder / "master.m3u8"
    path.write_text("\n".join(lines) + "\n")
    duration = max((p.duration or 0 for p in playlists), default=None)
    return Output("hls-master", path, HLS_TYPE, duration=duration)


def _display_size_for_height(info, height):
    height = even(min(height, info.display_size[1]))
    return even(height * display_aspect(info)), height


def _poster(backend, source, info, folder):
    # Skip the opening seconds: fades and slates start black.
    seek = min(info.duration * 0.25, float(setting("POSTER_SEEK_SECONDS", 5)))
    width, height = _display_size_for_height(info, setting("POSTER_HEIGHT", 720))
    path = folder / POSTER_NAME
    _run(backend.poster_command(source, info, path, seek=seek, width=width, height=height), None, None)
    return Output("poster", path, "image/jpeg", width=width, height=height)


def plan_storyboard(info):
    max_tiles = setting("STORYBOARD_MAX_TILES", 100)
    interval = max(float(setting("STORYBOARD_INTERVAL", 2)), info.duration / max_tiles)
    count = max(1, math.ceil(info.duration / interval))
    tile_width = setting("STORYBOARD_TILE_WIDTH", 160)
    tile_height = even(tile_width / display_aspect(info))
    return StoryboardPlan(interval, count, min(10, count), tile_width, tile_height)


def _vtt_time(seconds):
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"


def _storyboard_outputs(folder, plan, info):
    sprite = folder / STORYBOARD_NAME
    if not sprite.exists():
        raise FFmpegError("ffmpeg wrote no storyboard image.")
    lines = ["WEBVTT", ""]
    for index in range(plan.count):
        start = index * plan.interval
        end = min((index + 1) * plan.interval, info.duration)
        x = (index % plan.columns) * plan.tile_width
        y = (index // plan.columns) * plan.tile_height
        lines += [
            f"{_vtt_time(start)} --> {_vtt_time(end)}",
            f"storyboard#xywh={x},{y},{plan.tile_width},{plan.tile_height}",
            "",
        ]
    vtt = folder / "storyboard.vtt"
    vtt.write_text("\n".join(lines))
    width, height = plan.columns * plan.tile_width, plan.rows * plan.tile_height
    return [
        Output("storyboard", sprite, "image/jpeg", width=width, height=height),
        Output("storyboard-vtt", vtt, "text/vtt", duration=info.duration),
    ]
