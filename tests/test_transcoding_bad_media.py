"""Awkward and broken uploads: each ends as good renditions or as a failed
job with a reason an editor can read. The original is never lost and the
worker (the task) never raises."""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.test import override_settings

from private_video.models import Video
from tests.helpers import make_video
from transcoding.models import TranscodeJob
from transcoding.pipeline import run_job
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import ffprobe_json, keyframe_times, make_test_video

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LADDER = [Rung(144, 300), Rung(90, 150)]


def store_unchecked(name, data):
    """A Video whose file skipped the upload form's checks (as if the form
    were bypassed or the file damaged in storage afterwards)."""
    video = Video(title=name, original_filename=name, file_size=len(data))
    video.file.save(name, ContentFile(data), save=False)
    video.save()
    return video


def transcode(video):
    with override_settings(TRANSCODING_LADDER=LADDER, TRANSCODING_PROGRESSIVE_HEIGHT=144):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    # The original survives whatever happened.
    assert video.file.storage.exists(video.file.name)
    return job


def media_streams(video, label):
    rendition = video.renditions.get(name=f"hls-{label}-media")
    return ffprobe_json(rendition.file.path)["streams"]


def assert_failed(job, *phrases):
    assert job.status == TranscodeJob.Status.FAILED, job.status
    for phrase in phrases:
        assert phrase in job.error, job.error
    assert job.video.renditions.count() == 0


def assert_ready(job, labels):
    assert job.status == TranscodeJob.Status.READY, (job.error, job.stderr_tail)
    names = set(job.video.renditions.values_list("name", flat=True))
    assert {f"hls-{label}" for label in labels} | {"hls-master", "poster", "storyboard"} <= names


def test_truncated_upload_without_index_fails_readably(media_dir):
    whole = make_test_video(media_dir / "whole.mp4", duration=3, faststart=False).read_bytes()
    # Not faststart: the index (moov) is at the end, and it is gone.
    video = store_unchecked("cut.mp4", whole[: len(whole) * 6 // 10])
    assert_failed(transcode(video), "incomplete")


def test_truncated_faststart_upload_gives_what_is_there(media_dir):
    whole = make_test_video(media_dir / "whole-fast.mp4", duration=4).read_bytes()
    video = store_unchecked("cut-fast.mp4", whole[: len(whole) // 2])
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    duration = float(ffprobe_json(video.renditions.get(name="mp4-144p").file.path)["format"]["duration"])
    assert 0.5 < duration < 3.5


def test_corrupted_bytes_in_the_middle_still_transcode(media_dir):
    data = bytearray(make_test_video(media_dir / "corrupt.mp4", duration=4).read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4000] = bytes(4000)
    job = transcode(store_unchecked("corrupt.mp4", bytes(data)))
    assert_ready(job, ["144p", "90p"])


def test_audio_only_fails_readably(media_dir):
    source = make_test_video(media_dir / "sound.m4a", duration=2, video=False)
    job = transcode(store_unchecked("sound.mp4", source.read_bytes()))
    assert_failed(job, "sound but no picture")


def test_video_without_audio_gets_silent_renditions(media_dir):
    source = make_test_video(media_dir / "silent.mp4", duration=2, audio=False)
    video = make_video(source, title="Silent")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert [s["codec_type"] for s in media_streams(video, "144p")] == ["video"]
    master = Path(video.renditions.get(name="hls-master").file.path).read_text()
    assert "mp4a" not in master and 'CODECS="avc1.' in master
    assert job.source_info["has_audio"] is False


def test_odd_dimensions_become_even(media_dir):
    # 4:4:4 allows odd sizes; it is also not web-playable (lowest rung first).
    source = make_test_video(media_dir / "odd.mp4", duration=2, width=321, height=181, pix_fmt="yuv444p")
    video = make_video(source, title="Odd")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    for label in ("144p", "90p"):
        stream = next(s for s in media_streams(video, label) if s["codec_type"] == "video")
        assert stream["width"] % 2 == 0 and stream["height"] % 2 == 0
        assert stream["pix_fmt"] == "yuv420p"
    # 181 px is above the top rung: no source-height rung, no odd one.
    assert sorted(video.renditions.filter(name__endswith="p").values_list("name", flat=True)) == [
        "hls-144p", "hls-90p", "mp4-144p"]


def test_variable_frame_rate_becomes_constant_with_aligned_keyframes(media_dir):
    source = make_test_video(
        media_dir / "vfr.mp4", duration=4,
        video_args=("-vf", r"select=not(mod(n\,3))+lt(mod(n\,7)\,2)", "-fps_mode", "vfr"),
    )
    video = make_video(source, title="VFR")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    streams = [next(s for s in media_streams(video, label) if s["codec_type"] == "video") for label in ("144p", "90p")]
    for stream in streams:
        assert stream["r_frame_rate"] == stream["avg_frame_rate"] or abs(
            eval(stream["r_frame_rate"]) - eval(stream["avg_frame_rate"])  # noqa: S307 - ffprobe fractions
        ) < 0.05
    times = [keyframe_times(video.renditions.get(name=f"hls-{label}-media").file.path) for label in ("144p", "90p")]
    assert times[0] == times[1] and len(times[0]) >= 2


@pytest.mark.parametrize("pix_fmt,profile", [("yuv420p10le", "High 10"), ("yuv422p", "High 4:2:2")])
def test_ten_bit_and_422_sources_become_8_bit_420(media_dir, pix_fmt, profile):
    source = make_test_video(media_dir / f"{pix_fmt}.mp4", duration=2, pix_fmt=pix_fmt)
    video = make_video(source, title=pix_fmt)
    job = transcode(video)
    assert job.source_info["profile"] == profile
    assert_ready(job, ["144p", "90p"])
    stream = next(s for s in media_streams(video, "144p") if s["codec_type"] == "video")
    assert (stream["pix_fmt"], stream["profile"]) == ("yuv420p", "High")


def test_very_large_resolution_is_scaled_down(media_dir):
    source = make_test_video(media_dir / "huge.mp4", duration=1, fps=5, width=4096, height=2304,
                             audio=False, preset="ultrafast")
    video = make_video(source, title="Huge")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    stream = next(s for s in media_streams(video, "144p") if s["codec_type"] == "video")
    assert (stream["width"], stream["height"]) == (256, 144)


def test_resolution_above_the_limit_fails_readably(sample_video):
    video = make_video(sample_video, title="Limit")
    with override_settings(TRANSCODING_MAX_SOURCE_PIXELS=320 * 100):
        job = transcode(video)
    assert_failed(job, "320×180 pixels", "largest")


def test_zero_length_file_fails_readably():
    job = transcode(store_unchecked("empty.mp4", b""))
    assert_failed(job)
    assert job.error and "ffprobe" not in job.error.lower()


def test_text_disguised_as_video_fails_readably():
    job = transcode(store_unchecked("notes.mp4", b"these are meeting notes, not a video\n" * 200))
    assert_failed(job, "not a video")


def test_failed_ffmpeg_keeps_its_stderr_tail(sample_video, monkeypatch):
    from transcoding.backends import ffmpeg_python

    video = make_video(sample_video, title="Bad preset")
    monkeypatch.setattr(ffmpeg_python, "_hls_options", lambda: {"f": "hls", "hls_time": 6, "hls_segment_type": "bogus"})
    job = transcode(video)
    assert_failed(job)
    assert "bogus" in job.stderr_tail or "hls_segment_type" in job.stderr_tail, job.stderr_tail
    assert job.error


def test_run_job_never_raises_for_a_missing_original(sample_video):
    video = make_video(sample_video, title="Gone")
    job = TranscodeJob.objects.create(video=video, source_name=video.file.name)
    video.file.storage.delete(video.file.name)
    assert run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and job.error
