"""One transcode job, start to finish: probe → playable fast → ladder,
poster and storyboard → publish. Runs inside a task worker only."""

import errno
import functools
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta
from dataclasses import dataclass
from pathlib import Path

from django.db import InterfaceError, OperationalError, connection
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from private_video.probe import (
    ProbeError, finite_float, keyframe_gap, longest_plausible_seconds, opening_packets, parse_rate, probe,
    probe_video, starts_with_discarded_packets, stream_seconds,
)
from private_video.storage import private_storage

from . import backends
from .backends import POSTER_NAME, STORYBOARD_FRAMES, STORYBOARD_NAME, StoryboardPlan, get_backend
from .conf import setting, temp_dir
from .models import Rendition, TranscodeJob
from .profiles import (
    AUDIO_SAMPLE_RATES,
    FASTEST_RATE_KEY,
    display_aspect,
    display_dimensions,
    even,
    even_below,
    fastest_frame_rate,
    fit_short_side,
    hdr_transfer,
    is_interlaced,
    lowest_rung,
    picture_shortfall,
    plan_audio,
    plan_ladder,
    progressive_rung,
    source_sample_rate,
    source_video_stream,
    video_level,
)
from .publish import JobSuperseded, Output, publish
from .runner import FFmpegError, ffmpeg_slot, run_ffmpeg
from .tasks import send_job
from .workdirs import job_workdir

logger = logging.getLogger(__name__)

Status = TranscodeJob.Status
Phase = TranscodeJob.Phase
Kind = Rendition.Kind
HLS_TYPE = "application/vnd.apple.mpegurl"

# Share of the job's progress bar per stage: the ladder is the long part.
_STAGES = {"probe": (0, 2), "playable": (2, 12), "ladder": (12, 94), "finish": (94, 100)}


class Lease:
    """Keeps the job's lease (its heartbeat) fresh from a thread, whatever
    the job is doing: waiting for an ffmpeg slot, downloading, encoding,
    packaging, uploading. Notes when the job was taken away."""

    def __init__(self, job):
        self.job = job
        self.every = max(0.2, float(setting("LEASE_SECONDS")) / 4)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name=f"lease-{job.pk}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _keep(self):
        try:
            while not self._stop.wait(self.every):
                try:
                    renewed = TranscodeJob.objects.filter(
                        pk=self.job.pk, status=Status.PROCESSING, worker=self.job.worker
                    ).update(heartbeat_at=timezone.now())
                except Exception:  # noqa: BLE001 - a busy database; try again next beat
                    logger.warning("could not renew the lease of job %s", self.job.pk, exc_info=True)
                    # Django never reconnects a connection the server dropped
                    # (a database restart): a fresh one at the next beat.
                    connection.close()
                    continue
                if not renewed:
                    self.lost.set()
                    return
        finally:
            connection.close()


class JobReporter:
    """Writes progress, ETA and the heartbeat (the job's lease) to the
    database, throttled, and notices when the job was taken away."""

    def __init__(self, job, lease=None):
        self.job = job
        self.lease = lease
        self.min_interval = float(setting("PROGRESS_INTERVAL"))
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
        if self.lease is not None and self.lease.lost.is_set():
            raise JobSuperseded()
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


def claim(job_id, phase=Phase.PLAYABLE):
    """Take a queued job for ``phase``; None when another worker has it, it
    is in another phase, or it is gone. ``attempts`` becomes at least 1:
    handing over to the ladder phase is not a new attempt, a recovery is."""
    now = timezone.now()
    fields = {
        "status": Status.PROCESSING,
        "worker": worker_name(),
        "attempts": Greatest(F("attempts"), 1),
        "heartbeat_at": now,
        "eta_seconds": None,
        "error": "",
        "stderr_tail": "",
    }
    if phase == Phase.PLAYABLE:
        fields.update(started_at=now, progress=0)
    claimed = TranscodeJob.objects.filter(pk=job_id, status=Status.QUEUED, phase=phase).update(**fields)
    if not claimed:
        return None
    return TranscodeJob.objects.select_related("video").get(pk=job_id)


def run_job(job_id, phase=Phase.PLAYABLE):
    """The task body for one phase of a job. Never raises for bad media: the
    job records why. After the playable phase the job goes back to the
    queue for its ladder, behind every other video's playable phase."""
    job = claim(job_id, phase)
    if job is None:
        return "skipped"
    outcome = "failed"
    with Lease(job) as lease:
        reporter = JobReporter(job, lease)
        try:
            with job_workdir(job.pk) as tmp:
                transcode(job, reporter, tmp)
        except JobSuperseded:
            logger.info("transcode job %s was superseded", job.pk)
            outcome = "superseded"
        except (OperationalError, InterfaceError):
            # The database went away mid-job (a restart, a failover): not the
            # file's fault, and no reason to fail the job.
            logger.warning("transcode job %s lost its database connection", job.pk, exc_info=True)
            outcome = "interrupted"
        except ProbeError as exc:
            _fail(job, readable_probe_error(exc))
        except FFmpegError as exc:
            _fail(job, readable_ffmpeg_error(exc), exc.stderr_tail)
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything
            logger.exception("transcode job %s crashed", job.pk)
            _fail(job, readable_crash(exc), traceback.format_exc()[-4000:])
        else:
            outcome = "playable" if job.phase == Phase.PLAYABLE else "ready"
    if outcome == "interrupted":
        return _requeue_interrupted(job)
    mine = TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker)
    if outcome == "playable":
        if mine.update(status=Status.QUEUED, phase=Phase.LADDER, worker="", task_id="",
                       queued_at=timezone.now(), eta_seconds=None):
            send_job(job.pk)
        else:
            outcome = "superseded"
    elif outcome == "ready":
        if not mine.update(status=Status.READY, progress=100, eta_seconds=0, stage="",
                           finished_at=timezone.now()):
            outcome = "superseded"
    return outcome


def _requeue_interrupted(job):
    """Put a job the database dropped back in the queue in its current
    phase, without counting an attempt. The broken connection is closed
    first (Django would keep using it); if the database is still down, the
    job's lease runs out and ``recover_stale_jobs`` re-queues it instead."""
    connection.close()
    try:
        if TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker).update(
            status=Status.QUEUED, worker="", stage="requeued", eta_seconds=None, task_id="",
            queued_at=timezone.now(),
        ):
            send_job(job.pk)
    except (OperationalError, InterfaceError):
        connection.close()
        logger.warning("transcode job %s waits for its lease to run out", job.pk, exc_info=True)
    return "interrupted"


def _fail(job, message, stderr_tail=""):
    TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker).update(
        status=Status.FAILED,
        error=message[:2000],
        stderr_tail=stderr_tail[-8000:],
        eta_seconds=None,
        finished_at=timezone.now(),
    )


DISK_FULL = gettext_lazy("The server ran out of disk space while processing.")

_KNOWN_FAILURES = (
    ("moov atom not found", gettext_lazy("The file is incomplete (was the upload cut short?) and cannot be read.")),
    ("Invalid data found when processing input",
     gettext_lazy("The file is damaged or is not a video ffmpeg can read.")),
    ("does not contain any stream", gettext_lazy("The file contains no audio or video stream.")),
    ("Output file #0 does not contain any stream", gettext_lazy("The file contains no usable video stream.")),
    ("No space left on device", DISK_FULL),
)


def readable_crash(exc):
    """The job's error for an unexpected exception; a full disk (the temp
    folder or the storage, written by Python rather than ffmpeg) says so."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return str(DISK_FULL)
    return _("Processing failed unexpectedly: %(error)s") % {"error": exc}


def readable_probe_error(exc):
    detail = getattr(exc, "detail", "") or str(exc)
    for needle, readable in _KNOWN_FAILURES:
        if needle in detail:
            return str(readable)
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
            raise ProbeError(_("This file is not a video; its content is not a format ffmpeg knows.")) from None
        raise


def check_source_size(info):
    """Refuse pictures no rung needs and ffmpeg may not have memory for."""
    limit = int(setting("MAX_SOURCE_PIXELS"))
    if info.width * info.height > limit:
        raise ProbeError(
            _("The video is %(width)s×%(height)s pixels; the largest this site processes "
              "is %(limit)s pixels per frame.") % {"width": info.width, "height": info.height, "limit": f"{limit:,}"}
        )


def readable_ffmpeg_error(exc):
    text = exc.stderr_tail or ""
    for needle, message in _KNOWN_FAILURES:
        if needle in text:
            return str(message)
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
    if not target.exists():  # the playable phase may have fetched it already
        partial = target.with_name(target.name + ".part")
        with storage.open(name, "rb") as source, partial.open("wb") as out:
            while chunk := source.read(4 * 1024 * 1024):
                out.write(chunk)
                reporter.heartbeat()
        partial.rename(target)
    yield target


def fast_path_refusal(info, source=None):
    """Why the original cannot be streamed as it is (remuxed, not encoded),
    or "" when browsers play it well: H.264 8-bit 4:2:0 up to 1080p (short
    side) at a sane level and bit rate, keyframes at most a few seconds
    apart, SDR, progressive, upright square pixels, AAC or no sound.
    ``source`` is read for the keyframe spacing; without it that is not checked."""
    stream = source_video_stream(info)
    width, height = info.width or 0, info.height or 0
    level = video_level(info)
    max_kbps = int(setting("FAST_PATH_MAX_KBPS"))
    audio = plan_audio(info)
    checks = (
        (info.video_codec == "h264", "not H.264"),
        (info.pix_fmt in ("yuv420p", "yuvj420p"), f"pixel format {info.pix_fmt}"),
        (info.profile in ("Constrained Baseline", "Baseline", "Main", "High"), f"profile {info.profile}"),
        (all(track.codec == "aac" for track in audio), "sound is not AAC"),
        (not any(track.merge for track in audio), "mono tracks to join as stereo"),
        # 96 kHz AAC does not play on Windows' decoder (``AUDIO_SAMPLE_RATES``).
        (all(source_sample_rate(info, track) in (None, *AUDIO_SAMPLE_RATES) for track in audio),
         "sound at an unusual sample rate"),
        (min(width, height) <= int(setting("FAST_PATH_MAX_SHORT_SIDE"))
         and max(width, height) <= 2 * int(setting("FAST_PATH_MAX_SHORT_SIDE")), f"{width}x{height}"),
        (level is None or level <= int(setting("FAST_PATH_MAX_LEVEL")), f"level {level}"),
        (not info.bit_rate or info.bit_rate <= max_kbps * 1000, f"{info.bit_rate} bit/s"),
        (not hdr_transfer(info) and stream.get("color_primaries") != "bt2020", "HDR or wide gamut"),
        (not is_interlaced(info), "interlaced"),
        (info.rotation == 0, f"rotated {info.rotation}°"),
        (stream.get("sample_aspect_ratio") in (None, "", "0:1", "1:1", "N/A"), "non-square pixels"),
        ((info.frame_rate or 0) <= 60, f"{info.frame_rate} fps"),
        # A player waits for pictures that never come (the ladder holds the last one).
        (not picture_shortfall(info), "the sound outlasts the picture"),
    )
    for passed, reason in checks:
        if not passed:
            return reason
    if source is not None:
        # One read of the picture's opening packets serves both checks.
        packets = opening_packets(source, stream=info.video_selector, seconds=30)
        gap = keyframe_gap(packets, seconds=30, duration=info.duration)
        limit = float(setting("FAST_PATH_MAX_KEYFRAME_SECONDS"))
        if gap is None or gap > limit:
            return f"keyframes {gap} s apart"
        if starts_with_discarded_packets(packets):
            return "an edit list cuts its start"
    return ""


def _source_label(info):
    """The label of a rung at the source's own size: its short side."""
    return f"{even_below(min(info.display_size))}p"


def transcode(job, reporter, workdir):
    """Run the job's current phase. After the playable phase the worker goes
    on with the ladder itself (same folder, no second download) unless
    another video waits for its playable version; then the job goes back to
    the queue (``job.phase`` stays "playable", see ``run_job``)."""
    if job.phase == Phase.PLAYABLE:
        transcode_playable(job, reporter, workdir)
        if TranscodeJob.objects.filter(status=Status.QUEUED, phase=Phase.PLAYABLE).exists():
            return
        if not TranscodeJob.objects.filter(pk=job.pk, status=Status.PROCESSING, worker=job.worker).update(
            phase=Phase.LADDER
        ):
            raise JobSuperseded()
        job.phase = Phase.LADDER
    transcode_ladder(job, reporter, workdir)


def _mark_playable(job):
    TranscodeJob.objects.filter(pk=job.pk, playable_at__isnull=True).update(
        playable=True, playable_at=timezone.now()
    )


def transcode_playable(job, reporter, workdir):
    """Probe, then publish a quick playable version unless the video has a
    published set already (a re-run or a recovered job): that one stays
    until the full ladder replaces it."""
    video = job.video
    backend = get_backend()
    reporter.stage("probe")
    with local_source(job.source_name, workdir, reporter) as source:
        info = _probe_source(source)
        # Before anything decodes a frame (the idet check in _record_probe).
        check_source_size(info)
        note_frame_spacing(source, info)
        _record_probe(job, video, info, source)

        reporter.stage("playable")
        if Rendition.objects.filter(video=video).exists():
            _mark_playable(job)
            return
        fast_dir = workdir / "playable"
        fast_dir.mkdir()
        audio = plan_audio(info)
        if job.source_info["web_playable"]:
            label = _source_label(info)
            cmd = backend.remux_command(source, info, label, fast_dir, audio=audio)
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
            preset = setting("FAST_X264_PRESET")
            cmd = backend.ladder_command(source, info, [rung], fast_dir, preset=preset, audio=audio)
            _run(cmd, info, reporter)
            _progressive(backend, fast_dir, rung.label, audio)
            fast = _rung_outputs(fast_dir, rung.label, info, size=(rung.width, rung.height))
        if fast:
            mp4, media, playlist = fast
            settle_duration(video, info, playlist.duration)
            sound = _audio_renditions(fast_dir, audio, info)
            publish(job, video, [mp4, media, playlist, *_audio_files(sound), _master([playlist], fast_dir, sound)],
                    complete=False, on_upload=reporter.heartbeat)
            _mark_playable(job)


# Demuxers of files that are joined byte for byte (a recording cut in two and
# put back, a camera's or a DVD's files one after the other): timestamps may
# start again or jump where the parts meet. ffprobe then reads the first
# part's duration, or the span between the two parts' clocks, while ffmpeg
# corrects the jumps and plays every part.
_JOINABLE_DEMUXERS = frozenset({"mpegts", "mpeg"})


def measure_played_duration(backend, source, info):
    """For a source that may be joined (``_JOINABLE_DEMUXERS``), how long its
    picture plays as the ladder's ffmpeg reads it (a copy of its packets,
    nothing decoded). When the probe was far off, ``info.duration`` becomes
    that (plus any sound after the picture), so the storyboard, the progress
    and the video's duration are planned on what plays; ``settle_duration``
    still sets the exact figure from the renditions. Returns the figure, or
    None."""
    if info.demuxer not in _JOINABLE_DEMUXERS or not info.duration:
        return None
    reports = []
    try:
        _run(backend.timeline_command(source, info), None, None, on_block=reports.append)
        # The last packet's decode time: the picture ends a frame later.
        played = int(reports[-1]["out_time_us"]) / 1_000_000 + 1 / (info.frame_rate or 25)
    except (FFmpegError, IndexError, KeyError, ValueError):
        logger.warning("could not measure how long the picture plays; keeping the probed duration",
                       exc_info=True)
        return None
    if played <= 0:
        return None
    picture = stream_seconds(source_video_stream(info)) or info.duration
    if abs(played - picture) > max(0.5, 0.05 * played):
        logger.info("the picture plays %.3f s, not the probed %.3f s", played, picture)
        info.duration = played + max(0.0, info.duration - picture)
    return played


# Packets read to see how a variable frame rate varies: 11 minutes at 30 fps.
_FRAME_SPACING_PACKETS = 20_000


def note_frame_spacing(source, info, known=None):
    """Note in the probe result (``profiles.FASTEST_RATE_KEY``) the rate that
    keeps every frame of the picture's fastest parts, from the spacing of its
    first packets (the packet index only, nothing decoded), for
    ``profiles.output_frame_rate``. ``known``: the figure of an earlier phase
    of the same job. Returns it ("30/1"), or "" when it cannot be told."""
    stream = source_video_stream(info)
    if known is None:
        packets = opening_packets(source, stream=info.video_selector, count=_FRAME_SPACING_PACKETS,
                                  fields="pts_time,dts_time") or []
        times, decoded = [], None
        for packet in packets:
            if info.demuxer in _JOINABLE_DEMUXERS:
                # Parts joined byte for byte: where the decode clock goes back,
                # the next part starts. Its times, sorted in among the first
                # part's, would read as frames twice as close (ffmpeg plays
                # the parts one after the other).
                dts = finite_float(packet.get("dts_time"))
                if dts is not None and decoded is not None and dts < decoded:
                    break
                decoded = dts if dts is not None else decoded
            pts = finite_float(packet.get("pts_time"))
            if pts is not None:
                times.append(pts)
        rate = fastest_frame_rate(times, parse_rate(stream.get("r_frame_rate")))
        known = f"{rate.numerator}/{rate.denominator}" if rate else ""
    stream[FASTEST_RATE_KEY] = known
    return known


def settle_duration(video, info, played):
    """The video lasts what its renditions play when the probe was far off:
    MPEG-TS joined byte for byte (a recording cut in two and put back) has
    timestamps that start again, and ffprobe reads the first part's only.
    The player, the storyboard's cues and the analytics beacons (which
    must match ``Video.duration``) then agree with what plays.

    Otherwise the probe's figure stands, and is written back if an earlier
    settling changed it: the quick version's picture playlist counts from
    its first picture, so a picture that starts after the sound settled the
    video shorter than the ladder, which holds the first picture from 0."""
    if played and info.duration and abs(played - info.duration) > max(0.5, 0.05 * played):
        logger.info("video %s plays %.3f s, not the probed %.3f s", video.pk, played, info.duration)
        info.duration = played
    if info.duration and video.duration != info.duration:
        video.duration = info.duration
        type(video).objects.filter(pk=video.pk).update(duration=info.duration)


def transcode_ladder(job, reporter, workdir):
    """The full ladder, MP4, poster and storyboard, published as one set that
    replaces the quick version (or a previous ladder)."""
    video = job.video
    backend = get_backend()
    reporter.stage("ladder")
    playable_first(job, reporter)
    TranscodeJob.objects.filter(pk=job.pk).update(ladder_started_at=timezone.now())
    with local_source(job.source_name, workdir, reporter) as source:
        info = _probe_source(source)
        detect_field_order(backend, source, info, known=job.source_info.get("field_order"))
        # Here, not before the quick version: it reads the whole file, and
        # the quick version's own duration settles the video meanwhile.
        measure_played_duration(backend, source, info)
        note_frame_spacing(source, info, known=job.source_info.get(FASTEST_RATE_KEY))
        planned = plan_ladder(info)
        audio = plan_audio(info)
        out = workdir / "ladder"
        out.mkdir()
        storyboard = plan_storyboard(info)
        _run(backend.ladder_command(source, info, planned, out, storyboard=storyboard, audio=audio),
             info, reporter)

        reporter.stage("finish")
        outputs, hls_outputs = [], []
        for rung in planned:
            _, media, playlist = _rung_outputs(out, rung.label, info, size=(rung.width, rung.height))
            outputs += [media, playlist]
            hls_outputs.append(playlist)
        sound = _audio_renditions(out, audio, info)
        outputs += _audio_files(sound)
        outputs.append(_master(hls_outputs, out, sound))
        settle_duration(video, info, max(playlist.duration or 0 for playlist in hls_outputs))
        mp4_rung = progressive_rung(planned)
        _progressive(backend, out, mp4_rung.label, audio)
        outputs.append(_mp4_output(out, mp4_rung.label, info, (mp4_rung.width, mp4_rung.height)))
        outputs.append(_poster(backend, source, info, out))
        outputs += _storyboard_outputs(backend, out, storyboard, info)
        publish(job, video, outputs, complete=True, on_upload=reporter.heartbeat)
    _mark_playable(job)


def playable_first(job, reporter):
    """Before a full ladder starts: no video waits for its playable version.
    Quick phases still queued are run here, first (their own tasks then find
    them taken), and those other workers are running are waited for, up to
    ``TRANSCODING_PLAYABLE_FIRST_WAIT_SECONDS``. Queue priorities do this
    already; this closes the gaps (uploads arriving meanwhile, one worker,
    a worker reading its queues in another order)."""
    deadline = time.monotonic() + float(setting("PLAYABLE_FIRST_WAIT_SECONDS"))
    lease = timedelta(seconds=float(setting("LEASE_SECONDS")))
    while time.monotonic() < deadline:
        waiting = (
            TranscodeJob.objects.filter(status=Status.QUEUED, phase=Phase.PLAYABLE)
            .order_by("queued_at", "pk").values_list("pk", flat=True).first()
        )
        if waiting is not None:
            run_job(waiting, Phase.PLAYABLE)
            continue
        running = TranscodeJob.objects.filter(
            status=Status.PROCESSING, phase=Phase.PLAYABLE, heartbeat_at__gte=timezone.now() - lease
        ).exclude(pk=job.pk)
        if not running.exists():
            return
        reporter.heartbeat()
        time.sleep(0.2)


# Seconds of output past a source's longest plausible length before ffmpeg
# is stopped (a held last picture, rounding).
_PLAUSIBLE_SLACK = 10


def _run(cmd, info, reporter, on_block=None):
    """Run ``cmd`` in an ffmpeg slot. With the source's ``info``: its progress
    is reported, and the output may not run past what a file of the source's
    size may play (``longest_plausible_seconds``), whatever its headers say.
    ``on_block``: as ``run_ffmpeg``'s."""
    duration = info.duration if info else None
    wait = reporter.heartbeat if reporter else None
    longest = longest_plausible_seconds(info.size) if info else None
    with ffmpeg_slot(wait_callback=wait):
        return run_ffmpeg(cmd, duration=duration, on_progress=reporter.progress if reporter else None,
                          max_seconds=longest + _PLAUSIBLE_SLACK if longest else None, on_block=on_block)


def detect_field_order(backend, source, info, known=None):
    """When the container does not say whether the picture is interlaced
    (AVI, some MPEG-4 Part 2 and MPEG-2 files), ask ffmpeg's idet filter over
    the first frames and note the verdict in the probe result as ffprobe
    would ("tt", "bb" or "progressive"), so ``profiles.is_interlaced`` and
    the fast path see it. Sources that state an order are trusted: running
    idet on every upload would cost a decode of each. ``known``: a verdict
    from an earlier phase of the same job (a fresh probe does not have it)."""
    import tempfile

    stream = source_video_stream(info)
    if stream.get("field_order") not in (None, "", "unknown"):
        return stream.get("field_order")
    if known and known != "unknown":
        stream["field_order"] = known
        return known
    frames = int(setting("IDET_FRAMES"))
    with tempfile.TemporaryDirectory(prefix="idet-", dir=temp_dir()) as tmp:
        output = Path(tmp) / "idet.txt"
        try:
            _run(backend.field_order_command(source, info, output, frames=frames), None, None)
            verdicts = [line.partition("=")[2].strip() for line in output.read_text().splitlines()
                        if line.startswith("lavfi.idet.multiple.current_frame=")]
        except (FFmpegError, OSError):
            logger.warning("interlace detection failed; treating the source as progressive", exc_info=True)
            return stream.get("field_order")
    tff, bff, progressive = (verdicts.count(kind) for kind in ("tff", "bff", "progressive"))
    # Interlaced when most decided frames show combing in both directions of time.
    if tff + bff > 2 * progressive and tff + bff >= 5:
        stream["field_order"] = "tt" if tff >= bff else "bb"
    else:
        stream["field_order"] = "progressive"
    return stream["field_order"]


def _record_probe(job, video, info, source=None):
    video.apply_probe(info)
    fields = ["duration", "width", "height", "video_codec", "audio_codec", "container", "probe_data"]
    type(video).objects.filter(pk=video.pk).update(**{name: getattr(video, name) for name in fields})
    if source is not None:
        detect_field_order(get_backend(), source, info)
    refusal = fast_path_refusal(info, source)
    job.source_info = {
        "rotation": info.rotation,
        "frame_rate": info.frame_rate,
        "bit_rate": info.bit_rate,
        "pix_fmt": info.pix_fmt,
        "profile": info.profile,
        "has_audio": info.has_audio,
        "audio_channels": info.audio_channels,
        "web_playable": not refusal,
        "fast_path_refusal": refusal,
        FASTEST_RATE_KEY: source_video_stream(info).get(FASTEST_RATE_KEY),
        "interlaced": is_interlaced(info),
        "field_order": source_video_stream(info).get("field_order", ""),
        "hdr": hdr_transfer(info) or "",
        "audio_tracks": [
            {"language": track.language, "name": track.name, "codec": track.codec} for track in plan_audio(info)
        ],
    }
    TranscodeJob.objects.filter(pk=job.pk).update(source_info=job.source_info)


_AVC_PROFILE_IDC = {"High": "6400", "Main": "4d40", "Baseline": "4200", "Constrained Baseline": "42e0"}
# MPEG-4 audio object types of the AAC profiles ffprobe names.
_AAC_OBJECT_TYPE = {"LC": 2, "HE-AAC": 5, "HE-AACv2": 29, "Main": 1, "LTP": 4}


# H.264 Annex A: (level_idc, most macroblocks per frame, most macroblocks per second).
_AVC_LEVELS = (
    (10, 99, 1485), (11, 396, 3000), (12, 396, 6000), (13, 396, 11880), (21, 792, 19800),
    (22, 1620, 20250), (30, 1620, 40500), (31, 3600, 108000), (32, 5120, 216000), (40, 8192, 245760),
    (42, 8704, 522240), (50, 22080, 589824), (51, 36864, 983040), (52, 36864, 2073600),
    (60, 139264, 4177920), (61, 139264, 8355840), (62, 139264, 16711680),
)


def _avc_level(stream):
    """The stream's level_idc; when ffprobe does not know it (it says -99),
    the lowest level whose limits hold the picture size and frame rate, so
    the CODECS attribute is never a negative number a player rejects."""
    level = int(stream.get("level") or 0)
    if level > 0:
        return level
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    frames = parse_rate(stream.get("avg_frame_rate")) or parse_rate(stream.get("r_frame_rate")) or 30
    per_frame = -(-width // 16) * -(-height // 16)
    for level, most_per_frame, most_per_second in _AVC_LEVELS:
        if per_frame <= most_per_frame and per_frame * frames <= most_per_second:
            return level
    return _AVC_LEVELS[-1][0]


def _probe_output(path):
    """``probe(path)`` of a file this job wrote, read once: the codecs, the
    MP4's duration and an audio track's channels all come from the same
    ffprobe run (each run costs ~0.1 s to start). Keyed by the file's
    identity, size and modification time, so a file written again is read again."""
    stat = os.stat(path)
    return _probe_output_cached(str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _probe_output_cached(path, inode, size, mtime_ns):
    return probe(path)


def _codecs(path, has_audio=None):
    """RFC 6381 codecs of an H.264 and/or AAC file, for the master playlist."""
    codecs = []
    for stream in _probe_output(path).raw["streams"]:
        if stream.get("codec_type") == "video":
            codecs.append("avc1.%s%02x" % (_AVC_PROFILE_IDC.get(stream.get("profile"), "6400"), _avc_level(stream)))
        elif stream.get("codec_type") == "audio":
            codecs.append("mp4a.40.%d" % _AAC_OBJECT_TYPE.get(stream.get("profile"), 2))
    return ",".join(codecs)


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


_BYTERANGES = re.compile(r"BYTERANGE[:=]\"?(\d+)@(\d+)")


def check_hls_complete(playlist, media):
    """Raise FFmpegError unless ``playlist`` is whole and every byte range it
    names lies inside ``media``. ffmpeg's HLS muxer exits 0 when a write
    fails (a full temp folder): it leaves an empty or cut playlist and a
    short media file, which must fail the job, never be published, and not
    be blamed on the upload (probing the cut file says "damaged")."""
    text = playlist.read_text(errors="replace") if playlist.exists() else ""
    ends = [int(length) + int(offset) for length, offset in _BYTERANGES.findall(text)]
    size = media.stat().st_size if media.exists() else 0
    if "#EXT-X-ENDLIST" in text and ends and max(ends) <= size:
        return
    free = shutil.disk_usage(playlist.parent).free
    detail = f"{playlist.name} is incomplete ({len(text)} characters, {size} bytes of media)"
    if free < _DISK_FULL_BYTES:
        # The words readable_ffmpeg_error maps to the disk-space message.
        raise FFmpegError(str(DISK_FULL), f"{detail}; No space left on device ({free} bytes free)")
    raise FFmpegError(_("ffmpeg wrote an incomplete file (%(name)s).") % {"name": playlist.name}, detail)


# Free space below this after an incomplete write: the disk was full (ffmpeg
# writes in blocks of up to a few hundred KiB).
_DISK_FULL_BYTES = 1024 * 1024


def _rung_outputs(folder, label, info, *, size=None, audio=False):
    """(mp4 or None, hls media, hls playlist) for one rung, or for one audio
    track when ``audio``."""
    playlist = folder / backends.hls_playlist_name(label)
    media = folder / backends.hls_media_name(label)
    media_name, playlist_name = f"hls-{label}-media", f"hls-{label}"
    check_hls_complete(playlist, media)
    segments = _segments(playlist)
    duration = sum(d for d, _ in segments) or info.duration
    average = int(media.stat().st_size * 8 / duration) if duration else None
    peak = max((int(b * 8 / d) for d, b in segments if d > 0), default=average)
    width, height = size or info.display_size
    codecs = _codecs(media)
    common = {"width": width, "height": height, "codecs": codecs, "duration": duration}
    mp4 = None
    if (folder / backends.mp4_name(label)).exists():
        mp4 = _mp4_output(folder, label, info, (width, height))
    media_output = Output(media_name, media, "video/mp4", kind=Kind.HLS_MEDIA, bitrate=average, **common)
    playlist_output = Output(
        playlist_name, playlist, HLS_TYPE, kind=Kind.HLS_AUDIO if audio else Kind.HLS_VIDEO,
        bitrate=average, peak_bitrate=peak,
        references={media.name: media_name}, **common,
    )
    return mp4, media_output, playlist_output


def reorder_delay(media):
    """How late ffmpeg's MP4 demuxer reads the pictures of a rung written
    with negative composition offsets (``_hls_options``): it keeps each pts
    at or above its dts by moving every pts up by the stream's reordering
    delay. The rung's first picture is shown at its decode time, so its pts
    minus its dts, as read, is that shift (0 without B-frames)."""
    packets = opening_packets(media, stream="v:0", count=1, fields="pts_time,dts_time") or []
    try:
        return max(0.0, float(packets[0]["pts_time"]) - float(packets[0]["dts_time"]))
    except (IndexError, KeyError, TypeError, ValueError):
        return 0.0


def _progressive(backend, folder, label, audio):
    media = folder / backends.hls_media_name(label)
    _run(backend.progressive_command(
        media, folder / backends.mp4_name(label), audio_media=_default_audio_media(folder, audio),
        reorder_delay=reorder_delay(media),
    ), None, None)


def _mp4_output(folder, label, info, size):
    path = folder / backends.mp4_name(label)
    duration = _probe_output(path).duration or info.duration
    return Output(
        f"mp4-{label}", path, "video/mp4", kind=Kind.MP4, width=size[0], height=size[1],
        bitrate=int(path.stat().st_size * 8 / duration) if duration else None,
        codecs=_codecs(path), duration=duration,
    )


AUDIO_GROUP = "audio"


@dataclass(frozen=True)
class AudioRendition:
    """One packaged audio track: its plan, its files, what it holds."""

    track: object  # profiles.AudioTrack
    media: Output
    playlist: Output
    channels: int | None


def _audio_renditions(folder, audio, info):
    renditions = []
    for track in audio:
        _, media, playlist = _rung_outputs(folder, track.label, info, size=(None, None), audio=True)
        stream = next(s for s in _probe_output(media.path).raw["streams"] if s.get("codec_type") == "audio")
        renditions.append(AudioRendition(track, media, playlist, stream.get("channels")))
    return renditions


def _audio_files(sound):
    return [output for rendition in sound for output in (rendition.media, rendition.playlist)]


def _default_audio_media(folder, audio):
    """The file of the first audio track, for the progressive MP4."""
    return folder / backends.hls_media_name(audio[0].label) if audio else None


def _master(playlists, folder, sound=()):
    """The master playlist, lowest rung first so playback starts quickly.
    Each audio track is an alternate rendition (EXT-X-MEDIA) of one group
    that every video rung names; the first is the default."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for rendition in sound:
        track = rendition.track
        attributes = ["TYPE=AUDIO", f'GROUP-ID="{AUDIO_GROUP}"', f'NAME="{track.name}"']
        if track.language:
            attributes.append(f'LANGUAGE="{track.language}"')
        attributes += [f"DEFAULT={'YES' if track.default else 'NO'}", "AUTOSELECT=YES"]
        if rendition.channels:
            attributes.append(f'CHANNELS="{rendition.channels}"')
        attributes.append(f'URI="{rendition.playlist.name}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attributes))
    # A variant's bandwidth counts the sound it plays with: the largest track.
    audio_peak = max((max(r.playlist.peak_bitrate or 0, r.playlist.bitrate or 0) for r in sound), default=0)
    audio_average = max((r.playlist.bitrate or 0 for r in sound), default=0)
    audio_codecs = sound[0].playlist.codecs if sound else ""
    for playlist in sorted(playlists, key=lambda output: min(output.width, output.height)):
        codecs = ",".join(c for c in (playlist.codecs, audio_codecs) if c)
        attributes = [
            f"BANDWIDTH={max(playlist.peak_bitrate or 0, playlist.bitrate or 0) + audio_peak}",
            f"AVERAGE-BANDWIDTH={(playlist.bitrate or 0) + audio_average}",
            f"RESOLUTION={playlist.width}x{playlist.height}",
            f'CODECS="{codecs}"',
        ]
        if sound:
            attributes.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attributes), playlist.name]
    path = folder / "master.m3u8"
    path.write_text("\n".join(lines) + "\n")
    duration = max((p.duration or 0 for p in playlists), default=None)
    return Output("hls-master", path, HLS_TYPE, kind=Kind.HLS_MASTER, duration=duration)


def _poster(backend, source, info, folder):
    # Skip the opening seconds: fades and slates start black. A clip under
    # a second is taken from its start: a seek could pass its only frame.
    seek = min(info.duration * 0.25, float(setting("POSTER_SEEK_SECONDS"))) if info.duration >= 1 else 0
    short_side = min(even(setting("POSTER_HEIGHT")), even_below(min(display_dimensions(info))))
    width, height = fit_short_side(info, short_side)
    path = folder / POSTER_NAME
    _run(backend.poster_command(source, info, path, seek=seek, width=width, height=height), None, None)
    if not path.exists() and seek:
        # The seek landed past the last decodable frame (a damaged tail).
        _run(backend.poster_command(source, info, path, seek=0, width=width, height=height), None, None)
    if not path.exists():
        raise FFmpegError(_("ffmpeg could not take a picture for the poster."))
    return Output("poster", path, "image/jpeg", kind=Kind.POSTER, width=width, height=height)


def plan_storyboard(info):
    max_tiles = setting("STORYBOARD_MAX_TILES")
    interval = max(float(setting("STORYBOARD_INTERVAL")), info.duration / max_tiles)
    count = max(1, math.ceil(info.duration / interval))
    # The tile's long side is STORYBOARD_TILE_WIDTH, portrait or landscape.
    longest = setting("STORYBOARD_TILE_WIDTH")
    aspect = display_aspect(info)
    if aspect >= 1:
        tile_width, tile_height = even(longest), even(longest / aspect)
    else:
        tile_width, tile_height = even(longest * aspect), even(longest)
    return StoryboardPlan(interval, count, min(10, count), tile_width, tile_height)


def _vtt_time(seconds):
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}"


def _storyboard_outputs(backend, folder, plan, info):
    sprite = folder / STORYBOARD_NAME
    frames = folder / STORYBOARD_FRAMES
    if (folder / (STORYBOARD_FRAMES % 1)).exists():
        _run(backend.storyboard_command(frames, sprite, plan), None, None)
    if not sprite.exists():
        # Documented skip, not a failure: the video plays without scrub
        # previews (the player shows times only). The storyboard filter
        # writes a tile for any clip with a frame, so this is a rarity.
        logger.warning("ffmpeg wrote no storyboard image; publishing without one")
        return []
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
        Output("storyboard", sprite, "image/jpeg", kind=Kind.STORYBOARD, width=width, height=height),
        Output("storyboard-vtt", vtt, "text/vtt", kind=Kind.STORYBOARD_VTT, duration=info.duration),
    ]
