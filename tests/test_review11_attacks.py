"""Hostile review 11: inputs crafted against the day's changes (mono tracks
joined as stereo, frame spacing, joined MPEG-TS, grants naming nobody, the
sign-in link). Media is made here with ffmpeg's lavfi sources, tiny and short."""

import subprocess
from pathlib import Path

import pytest

from tests.helpers import make_video
from tests.test_transcoding_bad_media import assert_ready, transcode
from transcoding.testmedia import ffprobe_json

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50"]


def ffmpeg(*args):
    subprocess.run([*FFMPEG, *map(str, args)], check=True, capture_output=True, timeout=60)


def channel_rms(path, *, start=None, end=None):
    """The RMS level (dB) of the left and right channels of ``path``'s first
    audio stream between ``start`` and ``end`` seconds."""
    trim = ":".join(part for part in (f"start={start}" if start is not None else "",
                                      f"end={end}" if end is not None else "") if part)
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:a:0",
         "-af", f"atrim={trim},astats=measure_overall=none:measure_perchannel=RMS_level", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    ).stderr
    levels = [line.rsplit(":", 1)[1].strip() for line in out.splitlines() if "RMS level dB" in line]
    return [float("-inf") if level in ("-inf", "-nan", "nan") else float(level) for level in levels]


# ---- a camera's mono tracks: one shorter, one starting late ------------------------------------

@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_mono_tracks_of_different_lengths_and_starts_keep_all_their_sound(media_dir):
    """Uploader: a recorder's left track lasts the whole 4 s; its right
    track starts at 2 s and lasts 1 s. amerge stopped at the shorter input
    and paired samples as they came: the sound lasted 1 s (3 s of the left
    channel lost) and the right channel played 2 s early."""
    source = media_dir / "recorder.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
           "-itsoffset", "2", "-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000:duration=1",
           "-map", "0:v", "-map", "1:a", "-map", "2:a", *H264, "-c:a", "pcm_s16le", "-ac", "1", source)
    streams = ffprobe_json(source)["streams"]
    assert [s.get("channels") for s in streams] == [None, 1, 1]
    video = make_video(source, title="Recorder")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert not video.renditions.filter(name__startswith="hls-audio2").exists()
    for name in ("hls-audio1-media", "mp4-144p"):
        path = video.renditions.get(name=name).file.path
        sound = next(s for s in ffprobe_json(path, "-show_streams")["streams"] if s["codec_type"] == "audio")
        assert sound["channels"] == 2, (name, sound)
        left, right = channel_rms(path, start=0.2, end=1.8)
        assert left > -40 and right < -80, (name, "before the right track starts", left, right)
        left, right = channel_rms(path, start=2.2, end=2.8)
        assert left > -40 and right > -40, (name, "both tracks", left, right)
        left, right = channel_rms(path, start=3.3, end=3.9)
        assert left > -40 and right < -80, (name, "after the right track ends", left, right)


# ---- nginx: Wagtail's documents under WAGTAILDOCS_SERVE_METHOD = "redirect" -----------------------

@pytest.mark.parametrize("method, folders", [(None, ["documents"]), ("serve_view", ["documents"]),
                                             ("redirect", []), ("direct", [])])
def test_documents_a_site_redirects_to_are_still_published(settings, method, folders):
    """Visitor of a site that set WAGTAILDOCS_SERVE_METHOD = "redirect":
    Wagtail's view checks the collection's privacy, then redirects to the
    file's own URL, /media/documents/<name>. The bundled config answered
    that URL with a 404 unless the method was "direct": every document of
    such a site was a 404 after its privacy check passed. Under "redirect"
    (as under "direct") the file's URL is public by Wagtail's design."""
    from media_access.nginx import nginx_context, private_media_folders

    if method is None:
        del settings.WAGTAILDOCS_SERVE_METHOD
    else:
        settings.WAGTAILDOCS_SERVE_METHOD = method
    assert private_media_folders() == folders
    assert nginx_context()["private_media_folders"] == folders


# ---- retention: "keep for ever" ------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("command", ["delete_playback_log", "delete_watch_analytics"])
@pytest.mark.parametrize("days", [10**6, 999_999_999, 10**12])
def test_a_retention_of_thousands_of_years_deletes_nothing_not_a_traceback(settings, command, days):
    """Ops: MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS = 1_000_000 ("keep for
    ever") passes the check (at least 1, no most), but now minus that many
    days is before year 1: the housekeeping timer's command and the task
    raised OverflowError every day. Nothing is that old: nothing is deleted."""
    from io import StringIO

    from django.core.management import call_command

    from media_access.tasks import delete_playback_log_task, delete_watch_analytics_task

    out = StringIO()
    call_command(command, days=days, stdout=out)
    assert out.getvalue().startswith("Deleted 0 "), out.getvalue()
    settings.MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS = days
    settings.MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS = days
    assert call_command("check", "--fail-level", "ERROR") is None
    out = StringIO()
    call_command(command, stdout=out)
    assert out.getvalue().startswith("Deleted 0 "), out.getvalue()
    task = delete_playback_log_task if command == "delete_playback_log" else delete_watch_analytics_task
    assert task.call() == 0


# ---- frame spacing of MPEG-TS joined byte for byte ----------------------------------------------

@pytest.mark.parametrize("offset", ["1.02", "0.5"])
def test_a_joined_mpeg_ts_whose_clocks_overlap_keeps_its_frame_rate(tmp_path, offset):
    """Uploader: two 25 fps MPEG-TS recordings put end to end byte for byte
    (a camera's files one after the other), the second's clock starting
    inside the first's, half a frame off its grid. The frame-spacing read
    sorted the timestamps of both parts together: 50 a second, so the
    "fastest parts" were 50 fps and the ladder encoded every frame twice
    (twice the frames, twice the CPU). ffmpeg plays the parts one after
    the other, each at 25 fps."""
    from private_video.probe import probe
    from transcoding.pipeline import note_frame_spacing
    from transcoding.profiles import output_frame_rate

    parts = []
    for index, start in enumerate(("0", offset)):
        part = tmp_path / f"part{index}.ts"
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=3", *H264, "-bf", "2",
               "-output_ts_offset", start, part)
        parts.append(part.read_bytes())
    source = tmp_path / "joined.ts"
    source.write_bytes(b"".join(parts))
    info = probe(source)
    assert note_frame_spacing(source, info) in ("", "25/1")
    assert output_frame_rate(info) == 25


# ---- an MP4 whose movie header claims less than its tracks last ---------------------------------

def _set_movie_duration(path, seconds, box=b"mvhd"):
    """Overwrite the duration in ``path``'s first ``box`` (version 0): the
    movie header (mvhd) or a track's media header (mdhd), which share the layout."""
    import struct

    data = bytearray(path.read_bytes())
    at = data.index(box)
    assert data[at + 4] == 0, f"version 0 {box.decode()}"
    timescale_at = at + 4 + 4 + 4 + 4  # version and flags, creation time, modification time
    timescale = struct.unpack(">I", data[timescale_at:timescale_at + 4])[0]
    data[timescale_at + 4:timescale_at + 8] = struct.pack(">I", int(timescale * seconds))
    path.write_bytes(bytes(data))


def test_a_tiny_mp4_whose_header_claims_one_second_but_plays_an_hour_is_refused(tmp_path):
    """Uploader: a 3 KB MP4 of two frames an hour apart (refused as far too
    small for an hour), its movie header's duration rewritten to 1 s. ffprobe
    takes the file's duration from that header while the track still lasts
    3601 s: the refusal passed, and the ladder (which plays the track) made
    an hour of video; the job then settled the video at 3601 s. The claimed
    duration is the longest of the header's and the tracks' own."""
    from private_video.probe import ProbeError, probe_video

    source = tmp_path / "gap.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=1:duration=2", "-vf", "setpts=N*3600/TB",
           "-fps_mode", "passthrough", "-c:v", "libx264", "-video_track_timescale", "1000", source)
    with pytest.raises(ProbeError, match="too small"):
        probe_video(source)
    _set_movie_duration(source, 1)
    assert float(ffprobe_json(source)["format"]["duration"]) == 1.0
    assert float(ffprobe_json(source)["streams"][0]["duration"]) > 3600
    with pytest.raises(ProbeError, match="too small"):
        probe_video(source)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_file_whose_every_header_claims_one_second_is_stopped_where_its_size_runs_out(tmp_path, settings):
    """Uploader: two frames an hour apart with the movie's and the track's
    durations both rewritten to 1 s: every duration ffprobe shows says 1 s, so
    the size check passes, and ffmpeg (which follows the timestamps) would
    encode an hour. The transcoder stops ffmpeg once its output passes what a
    file of that size may play (PRIVATE_VIDEO_MIN_BYTES_PER_SECOND, raised
    here so the test stops after seconds, not minutes): a readable failed job,
    the original kept, no rendition."""
    from private_video.probe import probe_video
    from tests.test_transcoding_bad_media import assert_failed, store_unchecked

    source = tmp_path / "forged.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=1:duration=2", "-vf", "setpts=N*3600/TB",
           "-fps_mode", "passthrough", "-c:v", "libx264", "-video_track_timescale", "1000", source)
    _set_movie_duration(source, 1)
    _set_movie_duration(source, 1, box=b"mdhd")
    shown = ffprobe_json(source)
    assert float(shown["format"]["duration"]) <= 1.0 and float(shown["streams"][0]["duration"]) <= 1.0, shown
    size = source.stat().st_size
    settings.PRIVATE_VIDEO_MIN_BYTES_PER_SECOND = size // 4  # this file may play 4 s
    probe_video(source)  # the forgery passes every check that reads headers
    video = store_unchecked("forged.mp4", source.read_bytes())
    job = transcode(video)
    assert_failed(job, "longer than a file of its size can")
    assert "plays past 14 s" in job.error, job.error
