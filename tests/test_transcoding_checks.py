"""Transcoding's misconfigurations are system-check messages, not tracebacks
(no ffmpeg: E003; a ladder that is not one: E004, naming the entry), and
every published rendition says what it is (Rendition.kind), which is checked
here against the published bytes, not against the names."""

import os
import subprocess
import sys
import textwrap

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from private_video.layout import renditions_prefix
from private_video.probe import probe
from tests.helpers import make_video
from tests.stack import REPO
from transcoding import pipeline
from transcoding.models import Rendition, TranscodeJob
from transcoding.profiles import Rung, get_ladder
from transcoding.publish import Output, publish

Kind = Rendition.Kind
LADDER = [Rung(144, 300), Rung(90, 150)]
DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
}


def messages(prefix="private_video_transcoding."):
    return {message.id: message for message in run_checks() if message.id.startswith(prefix)}


# ---- E003: ffmpeg missing ------------------------------------------------


def test_no_ffmpeg_on_path_is_E003(tmp_path, monkeypatch):
    assert "private_video_transcoding.E003" not in messages()
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    found = messages()
    assert "private_video_transcoding.E003" in found
    assert found["private_video_transcoding.E003"].is_serious()
    assert "ffmpeg" in found["private_video_transcoding.E003"].msg
    assert "PATH" in found["private_video_transcoding.E003"].hint
    # A non-executable file called ffmpeg is not ffmpeg either.
    (empty / "ffmpeg").write_text("#!/bin/sh\n")
    assert "private_video_transcoding.E003" in messages()
    (empty / "ffmpeg").chmod(0o755)
    assert "private_video_transcoding.E003" not in messages()


# ---- E006 / W002: an ffmpeg built without what the renditions need ----------


def fake_ffmpeg(folder, listing):
    """An ``ffmpeg`` on PATH that lists only ``listing``'s names (for -encoders,
    -decoders and -filters alike), as a build without them would."""
    folder.mkdir(exist_ok=True)
    lines = "\n".join(f" V..... {name}  {name}" for name in listing)
    script = folder / "ffmpeg"
    script.write_text(f"#!/bin/sh\n/bin/cat <<'EOF'\n{lines}\nEOF\n")
    script.chmod(0o755)
    return folder


def test_an_ffmpeg_without_libx264_is_E006_and_without_zscale_W002(tmp_path, monkeypatch):
    from transcoding.backends.ffmpeg_python import ffmpeg_has

    ffmpeg_has.cache_clear()
    found = messages()
    assert "private_video_transcoding.E006" not in found and "private_video_transcoding.W002" not in found

    monkeypatch.setenv("PATH", str(fake_ffmpeg(tmp_path / "bare", ["aac", "scale", "h264"])))
    ffmpeg_has.cache_clear()
    found = messages()
    assert found["private_video_transcoding.E006"].is_serious()
    assert "libx264" in found["private_video_transcoding.E006"].msg
    assert "aac" not in found["private_video_transcoding.E006"].msg
    assert not found["private_video_transcoding.W002"].is_serious()
    assert "zscale" in found["private_video_transcoding.W002"].msg

    monkeypatch.setenv("PATH", str(fake_ffmpeg(tmp_path / "full", ["aac", "libx264", "zscale"])))
    ffmpeg_has.cache_clear()
    found = messages()
    assert "private_video_transcoding.E006" not in found and "private_video_transcoding.W002" not in found
    ffmpeg_has.cache_clear()


def test_without_zscale_an_sd_source_is_converted_by_the_scaler_as_before(tmp_path, monkeypatch):
    """SD (BT.601) pictures go to BT.709 through zscale, once for every rung;
    an ffmpeg without it still transcodes them (W002 says they are tinted)."""
    import ffmpeg

    from transcoding.backends.ffmpeg_python import ffmpeg_has, to_bt709

    class Info:
        pix_fmt = "yuv420p"
        width, height = 640, 360
        hdr = None

    def graph():
        video, matrix = to_bt709(ffmpeg.input("in.mp4").video, info)
        return matrix, " ".join(video.output("out.mp4").get_args())

    info = Info()
    ffmpeg_has.cache_clear()
    monkeypatch.setattr("transcoding.backends.ffmpeg_python.source_matrix", lambda info: "bt601")
    matrix, args = graph()
    assert matrix == "bt709" and "zscale=m=709:min=470bg" in args
    monkeypatch.setenv("PATH", str(fake_ffmpeg(tmp_path / "bare", ["aac", "libx264", "scale"])))
    ffmpeg_has.cache_clear()
    matrix, args = graph()
    assert matrix == "bt601" and "zscale" not in args
    ffmpeg_has.cache_clear()


# ---- E004: invalid ladder ------------------------------------------------


@pytest.mark.parametrize(
    "ladder, names",
    [
        ([{"height": 720}], ["{'height': 720}", "maxrate_kbps"]),
        ([{"height": 720, "maxrate_kbps": 3000, "fps": 30}], ["'fps'"]),
        ([{"height": 720, "maxrate_kbps": 3000}, {"height": 0, "maxrate_kbps": 800}], ["height=0", "height"]),
        ([{"height": 720, "maxrate_kbps": "3000"}], ["maxrate_kbps='3000'", "maxrate_kbps"]),
        ([{"height": 720, "maxrate_kbps": 3000, "crf": 60}], ["crf=60", "crf"]),
        ([Rung(720, 3000), "360p"], ["'360p'"]),
        ([], ["empty"]),
        ("720p", ["'720p'"]),
        (720, ["720"]),
    ],
)
def test_an_invalid_ladder_is_E004_naming_the_entry(ladder, names):
    with override_settings(TRANSCODING_LADDER=ladder):
        found = messages()
    assert "private_video_transcoding.E004" in found, found
    error = found["private_video_transcoding.E004"]
    assert error.is_serious() and "TRANSCODING_LADDER" in error.msg
    for name in names:
        assert name in error.msg, (name, error.msg)
    assert "maxrate_kbps" in error.hint


def test_a_valid_ladder_has_no_E004():
    assert "private_video_transcoding.E004" not in messages()
    custom = [{"height": 480, "maxrate_kbps": 1200}, Rung(240, 400, crf=0, audio_kbps=96)]
    with override_settings(TRANSCODING_LADDER=custom):
        assert "private_video_transcoding.E004" not in messages()
        assert [rung.height for rung in get_ladder()] == [480, 240]
    with override_settings(TRANSCODING_LADDER=None):  # None: the default ladder
        assert "private_video_transcoding.E004" not in messages()
        assert [rung.height for rung in get_ladder()] == [1080, 720, 540, 360]


def test_manage_py_check_prints_the_messages_without_a_traceback(tmp_path):
    """A bad ladder and no ffmpeg: importing models, urls, hooks and views
    must not raise; ``manage.py check`` names both errors and exits 1."""
    (tmp_path / "bad_transcoding_settings.py").write_text(textwrap.dedent("""\
        from cms.settings.test import *  # noqa: F403

        TRANSCODING_LADDER = [{"height": 720, "maxrate_kbps": 3000}, {"height": 360}]
    """))
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        **os.environ,
        "PATH": str(empty),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "DJANGO_SETTINGS_MODULE": "bad_transcoding_settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert "private_video_transcoding.E003" in output
    assert "private_video_transcoding.E004" in output and "{'height': 360}" in output


# ---- W001 / E005: the grace period of replaced files ----------------------


def test_the_grace_period_follows_the_signed_url_lifetime_of_the_serving_app():
    """media_access tells transcoding (through a hook) how long its signed
    URLs live: replaced files stay that long plus a segment and a minute."""
    from transcoding.publish import retired_file_grace_seconds

    with override_settings(MEDIA_ACCESS_TOKEN_LIFETIME=1000, TRANSCODING_SEGMENT_SECONDS=4):
        assert retired_file_grace_seconds() == 1000 + 4 + 60
        assert "private_video_transcoding.W001" not in messages()
        with override_settings(TRANSCODING_RETIRED_FILE_GRACE_SECONDS=1003):
            warning = messages()["private_video_transcoding.W001"]
        assert not warning.is_serious() and "1003" in warning.msg and "1004" in warning.msg
        with override_settings(TRANSCODING_RETIRED_FILE_GRACE_SECONDS=1004):
            assert "private_video_transcoding.W001" not in messages()


def test_a_grace_period_that_is_not_a_number_is_E005():
    with override_settings(TRANSCODING_RETIRED_FILE_GRACE_SECONDS="ten minutes"):
        found = messages()
    assert found["private_video_transcoding.E005"].is_serious()
    assert "TRANSCODING_RETIRED_FILE_GRACE_SECONDS" in found["private_video_transcoding.E005"].msg


# ---- Rendition.kind --------------------------------------------------------


def _boxes(data):
    """The top-level ISO BMFF box types of ``data``."""
    types, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        kind = data[offset + 4:offset + 8]
        if size == 1:
            size = int.from_bytes(data[offset + 8:offset + 16], "big")
        if size < 8:
            break
        types.append(kind)
        offset += size
    return types


def _media_playlist_target(text):
    """The rendition a media playlist's EXT-X-MAP (and byte ranges) point into."""
    for line in text.splitlines():
        if line.startswith("#EXT-X-MAP:"):
            return line.split('URI="', 1)[1].split('"', 1)[0]
    raise AssertionError(f"not a single-file media playlist:\n{text}")


def kinds_from_bytes(video):
    """{rendition name: kind} worked out from the published files only."""
    renditions = {r.name: r for r in video.renditions.all()}
    data = {name: r.file.open("rb").read() for name, r in renditions.items()}
    for r in renditions.values():
        r.file.close()
    found = {}
    for name, content in data.items():
        if content.startswith(b"#EXTM3U"):
            text = content.decode()
            if "#EXT-X-STREAM-INF" in text:
                found[name] = Kind.HLS_MASTER
                continue
            target = _media_playlist_target(text)
            assert target in renditions, (name, target)
            streams = {s["codec_type"] for s in probe(renditions[target].file.path).raw["streams"]}
            found[name] = Kind.HLS_VIDEO if "video" in streams else Kind.HLS_AUDIO
            found[target] = Kind.HLS_MEDIA
            assert b"moof" in _boxes(data[target]), target
        elif content.startswith(b"WEBVTT"):
            text = content.decode()
            found[name] = Kind.STORYBOARD_VTT if "#xywh=" in text else Kind.CAPTIONS
            for line in text.splitlines():
                if "#xywh=" in line:
                    found[line.split("#", 1)[0]] = Kind.STORYBOARD
    for name, content in data.items():
        if name in found:
            continue
        if content[:3] == b"\xff\xd8\xff":
            found[name] = Kind.POSTER  # a JPEG no cue points into
        elif _boxes(content)[:1] == [b"ftyp"] and b"moof" not in _boxes(content):
            streams = {s["codec_type"] for s in probe(renditions[name].file.path).raw["streams"]}
            assert streams == {"video", "audio"}, (name, streams)
            found[name] = Kind.MP4  # progressive: one moov, picture and sound
    assert set(found) == set(renditions), set(renditions) - set(found)
    return found


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_published_rendition_has_the_kind_its_bytes_show(sample_video, media_dir):
    """The quick playable set and then the full ladder: each rendition's kind
    matches what the file is, and each set has every kind it should."""
    with override_settings(
        TRANSCODING_AUTO_ENQUEUE=True, TRANSCODING_LADDER=LADDER, TRANSCODING_PROGRESSIVE_HEIGHT=144,
        TASKS=DB_TASKS,
    ):
        video = make_video(sample_video, title="Kinds")
        # Another upload waits for its playable version: the worker stops
        # after this video's quick set instead of going on with its ladder.
        make_video(sample_video, title="Waiting")
        job = video.transcode_jobs.get()
        assert pipeline.run_job(job.pk, TranscodeJob.Phase.PLAYABLE) == "playable"

        quick = {r.name: r.kind for r in video.renditions.all()}
        assert quick == kinds_from_bytes(video)
        assert set(quick.values()) == {Kind.MP4, Kind.HLS_MASTER, Kind.HLS_VIDEO, Kind.HLS_AUDIO, Kind.HLS_MEDIA}

        TranscodeJob.objects.exclude(pk=job.pk).update(status=TranscodeJob.Status.SUPERSEDED)
        assert pipeline.run_job(job.pk, TranscodeJob.Phase.LADDER) == "ready"

    full = {r.name: r.kind for r in video.renditions.all()}
    assert full == kinds_from_bytes(video)
    assert set(full.values()) == set(Kind) - {Kind.CAPTIONS}
    assert list(full.values()).count(Kind.HLS_VIDEO) == 2  # one per rung of LADDER
    assert list(full.values()).count(Kind.MP4) == 1
    # The names stay what they were (media_access and players use them in URLs).
    assert {"hls-master", "poster", "storyboard", "storyboard-vtt", "mp4-144p", "hls-144p", "hls-144p-media",
            "hls-90p", "hls-audio1", "hls-audio1-media"} <= set(full)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_output_without_a_valid_kind_is_refused_before_anything_is_stored(sample_video, tmp_path):
    video = make_video(sample_video, title="No kind")
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(b"\xff\xd8\xff\xe0 not much of a picture")
    with pytest.raises(TypeError):
        Output("poster", poster, "image/jpeg")  # kind is required
    folder = video.file.storage.path(renditions_prefix(video.key))
    before = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    with pytest.raises(ValueError):
        publish(None, video, [Output("poster", poster, "image/jpeg", kind="picture")], complete=True)
    assert (sorted(os.listdir(folder)) if os.path.isdir(folder) else []) == before
    assert not video.renditions.exists()
