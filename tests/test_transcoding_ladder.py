"""The pipeline with real ffmpeg on tiny lavfi clips: ladder shape, codecs,
keyframe alignment, playlists, fast path, progress."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import override_settings
from PIL import Image

from tests.helpers import make_video
from transcoding import pipeline
from transcoding.models import TranscodeJob
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import (
    ffprobe_json,
    keyframe_times,
    make_colour_video,
    make_test_video,
    mean_luma,
    set_display_rotation,
    video_packet_hashes,
)

# Tiny rungs keep the suite fast; 240p sits above the 180p test clips.
TEST_LADDER = [Rung(240, 600), Rung(144, 300, crf=26), Rung(90, 150, crf=28)]

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("tiny_ladder"),
]


@pytest.fixture
def tiny_ladder():
    with override_settings(TRANSCODING_LADDER=TEST_LADDER, TRANSCODING_PROGRESSIVE_HEIGHT=144):
        yield


def transcode(video):
    job = enqueue_transcode(video)
    job.refresh_from_db()
    return job


def local(rendition):
    return Path(rendition.file.path)


def renditions(video):
    return {r.name: r for r in video.renditions.all()}


def video_stream(path):
    return next(s for s in ffprobe_json(path)["streams"] if s["codec_type"] == "video")


def parse_master(text):
    lines = text.strip().splitlines()
    assert lines[0] == "#EXTM3U"
    assert "#EXT-X-VERSION:7" in lines
    variants = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(
                part.split("=", 1) for part in line[18:].replace('"', "").replace(",mp4a", ";mp4a").split(",")
            )
            variants.append((attributes, lines[index + 1]))
    return variants


def test_ladder_rungs_codecs_alignment_and_playlists(sample_video):
    video = make_video(sample_video, title="Ladder")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert job.progress == 100 and job.playable
    found = renditions(video)
    expected_sizes = {"180p": (320, 180), "144p": (256, 144), "90p": (160, 90)}
    assert set(found) == {
        *(f"hls-{label}" for label in expected_sizes),
        *(f"hls-{label}-media" for label in expected_sizes),
        "hls-audio1", "hls-audio1-media",
        "hls-master", "mp4-144p", "poster", "storyboard", "storyboard-vtt",
    }
    # Never taller than the 180p source, though the ladder's top is 240p.
    assert "hls-240p" not in found

    keyframes = {}
    for label, (width, height) in expected_sizes.items():
        media = local(found[f"hls-{label}-media"])
        streams = ffprobe_json(media)["streams"]
        # Sound is not muxed into the rungs: it is one audio rendition.
        assert [s["codec_type"] for s in streams] == ["video"]
        video_info = streams[0]
        assert (video_info["codec_name"], video_info["profile"], video_info["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert (video_info["width"], video_info["height"]) == (width, height)
        assert video_info.get("color_transfer") == "bt709" and video_info.get("field_order", "progressive") == "progressive"
        assert found[f"hls-{label}"].bitrate > 0 and found[f"hls-{label}"].size > 0
        keyframes[label] = keyframe_times(media)
    # Same keyframes in every rung, every 2 s: players switch rungs cleanly.
    assert keyframes["180p"] == keyframes["144p"] == keyframes["90p"]
    gaps = {round(b - a, 2) for a, b in zip(keyframes["180p"], keyframes["180p"][1:])}
    assert gaps == {2.0}, keyframes

    audio_streams = ffprobe_json(local(found["hls-audio1-media"]))["streams"]
    assert [(s["codec_type"], s["codec_name"], s["channels"]) for s in audio_streams] == [("audio", "aac", 2)]
    master_text = local(found["hls-master"]).read_text()
    media_lines = [line for line in master_text.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert media_lines == [
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Audio 1",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="hls-audio1"'
    ]
    variants = parse_master(master_text)
    assert [uri for _, uri in variants] == ["hls-90p", "hls-144p", "hls-180p"]
    for attributes, uri in variants:
        label = uri.removeprefix("hls-")
        assert attributes["RESOLUTION"] == "%dx%d" % expected_sizes[label]
        assert int(attributes["BANDWIDTH"]) >= int(attributes["AVERAGE-BANDWIDTH"]) > found[uri].bitrate
        assert attributes["CODECS"].startswith("avc1.6400") and "mp4a.40.2" in attributes["CODECS"]
        assert attributes["AUDIO"] == "audio"
        playlist = local(found[uri]).read_text()
        media_name = f"{uri}-media"
        assert "#EXT-X-VERSION:7" in playlist and "#EXT-X-ENDLIST" in playlist
        assert f'#EXT-X-MAP:URI="{media_name}"' in playlist
        assert int(playlist.split("#EXT-X-TARGETDURATION:")[1].split()[0]) <= 6
        segment_uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
        assert segment_uris and set(segment_uris) == {media_name}
        # The byte ranges tile the file exactly: nothing missing, nothing extra.
        ranges = [line.split(":")[1] for line in playlist.splitlines() if "BYTERANGE" in line]
        ranges = [r.split('BYTERANGE="')[-1].strip('"') for r in ranges]
        end = 0
        for spec in sorted(ranges, key=lambda r: int(r.split("@")[1])):
            length, offset = (int(x) for x in spec.split("@"))
            assert offset == end
            end = offset + length
        assert end == found[media_name].size

    mp4 = local(found["mp4-144p"])
    head = mp4.read_bytes()[:200_000]
    assert head.index(b"moov") < head.index(b"mdat"), "progressive MP4 must be faststart"
    assert (video_stream(mp4)["width"], video_stream(mp4)["height"]) == (256, 144)
    # The progressive MP4 plays on its own: the default sound is muxed in.
    assert [s["codec_type"] for s in ffprobe_json(mp4)["streams"]] == ["video", "audio"]

    assert mean_luma(local(found["poster"])) > 30
    assert (found["poster"].width, found["poster"].height) == (320, 180)
    vtt = local(found["storyboard-vtt"]).read_text()
    assert vtt.startswith("WEBVTT")
    assert "00:00:00.000 --> 00:00:02.000\nstoryboard#xywh=0,0,160,90" in vtt
    assert "storyboard#xywh=160,0,160,90" in vtt
    sprite = video_stream(local(found["storyboard"]))
    assert (sprite["width"], sprite["height"]) == (found["storyboard"].width, found["storyboard"].height)

    video.refresh_from_db()
    job.refresh_from_db()
    assert (video.width, video.height, video.video_codec, video.audio_codec) == (320, 180, "h264", "aac")
    assert job.source_info["rotation"] == 0 and job.source_info["has_audio"] is True
    assert job.source_info["frame_rate"] == 25.0 and job.source_info["bit_rate"] > 0


def test_small_source_is_never_upscaled(media_dir):
    source = make_test_video(media_dir / "tiny-120.mp4", duration=2, width=212, height=120)
    video = make_video(source, title="Tiny")
    job = transcode(video)
    assert job.status == "ready", job.error
    found = renditions(video)
    # A rung at the source's own height, then the ladder's smaller ones.
    assert sorted(n for n in found if n.startswith("hls-") and n.endswith("p")) == ["hls-120p", "hls-90p"]
    assert (video_stream(local(found["hls-120p-media"]))["height"]) == 120
    # Progressive target 144p is above the source: the nearest rung below.
    assert "mp4-120p" in found


def test_rotated_phone_video_is_turned_upright(media_dir):
    source = set_display_rotation(make_test_video(media_dir / "phone.mp4", duration=2), 90)
    video = make_video(source, title="Phone")
    assert (video.width, video.height) == (180, 320)
    job = transcode(video)
    assert job.status == "ready", job.error
    found = renditions(video)
    # The ladder is on the short side: 180x320 upright is a "180p" source.
    assert sorted(n for n in found if n.startswith("hls-") and n.endswith("p")) == ["hls-144p", "hls-180p", "hls-90p"]
    for label, height in (("180p", 320), ("144p", 256), ("90p", 160)):
        stream = video_stream(local(found[f"hls-{label}-media"]))
        assert (stream["width"], stream["height"]) == (int(label[:-1]), height)
        # Turned in the pixels, not by a flag a player might ignore.
        assert not any("rotation" in side for side in stream.get("side_data_list", []))
    assert (found["poster"].width, found["poster"].height) == (180, 320)
    assert job.source_info["rotation"] == 90


def test_non_square_pixels_come_out_square(media_dir):
    # 240x180 stored, shown 320x180 (SAR 4:3), like anamorphic DV.
    source = make_test_video(media_dir / "anamorphic.mp4", duration=2, width=240, video_args=("-vf", "setsar=4/3"))
    video = make_video(source, title="Anamorphic")
    job = transcode(video)
    assert job.status == "ready", job.error
    stream = video_stream(local(video.renditions.get(name="hls-180p-media").file.path and video.renditions.get(name="hls-180p-media")))
    assert (stream["width"], stream["height"], stream.get("sample_aspect_ratio", "1:1")) == (320, 180, "1:1")


def _record_publishes(monkeypatch, tmp_path):
    published = []
    real_publish = pipeline.publish

    def spy(job, video, outputs, **kwargs):
        copies = {}
        for output in outputs:
            copy = tmp_path / f"{len(published)}-{output.path.name}"
            shutil.copy(output.path, copy)
            copies[output.name] = copy
        published.append(copies)
        return real_publish(job, video, outputs, **kwargs)

    monkeypatch.setattr(pipeline, "publish", spy)
    commands = []
    real_run = pipeline.run_ffmpeg

    def run_spy(cmd, **kwargs):
        commands.append(cmd)
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(pipeline, "run_ffmpeg", run_spy)
    return published, commands


def test_web_playable_upload_is_remuxed_first_without_reencoding(sample_video, monkeypatch, tmp_path):
    published, commands = _record_publishes(monkeypatch, tmp_path)
    video = make_video(sample_video, title="Fast")
    job = transcode(video)
    assert job.status == "ready", job.error
    first_command = commands[0]
    # Copied, not encoded: the MP4, the video rung and the audio track.
    assert "libx264" not in first_command and first_command.count("copy") == 3
    first = published[0]
    assert set(first) == {"mp4-180p", "hls-180p", "hls-180p-media", "hls-audio1", "hls-audio1-media", "hls-master"}
    source_packets = video_packet_hashes(sample_video)
    assert video_packet_hashes(first["mp4-180p"]) == source_packets
    assert video_packet_hashes(first["hls-180p-media"]) == source_packets
    assert first["mp4-180p"].read_bytes()[:200_000].index(b"moov") < first["mp4-180p"].read_bytes()[:200_000].index(b"mdat")
    assert job.playable_at is not None and job.playable_at <= job.finished_at
    # Then the full ladder replaced it.
    assert len(published) == 2 and "hls-90p" in published[1]


def test_non_standard_upload_publishes_lowest_rung_first(media_dir, monkeypatch, tmp_path):
    published, commands = _record_publishes(monkeypatch, tmp_path)
    source = make_test_video(media_dir / "422.mp4", duration=2, pix_fmt="yuv422p")
    video = make_video(source, title="4:2:2")
    job = transcode(video)
    assert job.status == "ready", job.error
    assert set(published[0]) == {"mp4-90p", "hls-90p", "hls-90p-media", "hls-audio1", "hls-audio1-media", "hls-master"}
    stream = video_stream(published[0]["hls-90p-media"])
    assert (stream["pix_fmt"], stream["profile"], stream["height"]) == ("yuv420p", "High", 90)
    assert job.source_info["web_playable"] is False


def test_each_storyboard_tile_shows_the_picture_at_its_time(media_dir):
    # Red, green, blue, two seconds each: one tile per STORYBOARD_INTERVAL (2 s).
    colours = ["red", "lime", "blue"]
    source = make_colour_video(media_dir / "rgb.mp4", colours, seconds_each=2)
    video = make_video(source, title="Tiles")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    found = renditions(video)
    vtt = local(found["storyboard-vtt"]).read_text()
    cues = re.findall(r"storyboard#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
    assert len(cues) == len(colours), vtt
    sprite = Image.open(local(found["storyboard"])).convert("RGB")
    wanted = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for (x, y, w, h), colour in zip(cues, wanted):
        x, y, w, h = (int(v) for v in (x, y, w, h))
        seen = sprite.crop((x + w // 4, y + h // 4, x + 3 * w // 4, y + 3 * h // 4)).resize((1, 1), Image.Resampling.BOX)
        pixel = seen.getpixel((0, 0))
        assert all(abs(a - b) < 40 for a, b in zip(pixel, colour)), (x, pixel, colour)


def test_progress_moves_from_0_to_100_with_an_eta(media_dir, monkeypatch):
    source = make_test_video(media_dir / "eight.mp4", duration=8)
    video = make_video(source, title="Progress")
    seen = []
    real_write = pipeline.JobReporter._write

    def record(self, fields, force=False):
        real_write(self, fields, force)
        job = TranscodeJob.objects.get(pk=self.job.pk)
        seen.append((job.progress, job.eta_seconds, job.stage))

    monkeypatch.setattr(pipeline.JobReporter, "_write", record)
    with override_settings(TRANSCODING_PROGRESS_INTERVAL=0, TRANSCODING_STATS_PERIOD=0.05):
        job = transcode(video)
    assert job.status == "ready"
    progress = [p for p, _, _ in seen]
    assert progress[0] == 0
    assert progress == sorted(progress), progress
    # The ladder reports as it goes, from early on: ffmpeg says nothing until
    # every output has its first frame, so an output that waits for the end
    # (a storyboard sprite) silenced it for the whole encode, and a long
    # video's ladder was killed as stalled.
    ladder = [p for p, _, stage in seen if stage == "ladder" and 12 < p < 94]
    assert len(set(ladder)) >= 3 and ladder[0] < 12 + (94 - 12) / 2, repr(seen)
    assert any(eta is not None and stage == "ladder" for _, eta, stage in seen)
    assert job.progress == 100 and job.eta_seconds == 0


@pytest.mark.parametrize(("stream", "codec"), [
    ({"codec_type": "video", "profile": "High", "level": 31, "width": 1280, "height": 720}, "avc1.64001f"),
    # ffprobe says -99 when the level is unknown: the level is worked out from
    # the picture (1080p at 25 fps needs 4.0), never written as a negative number.
    ({"codec_type": "video", "profile": "Main", "level": -99, "width": 1920, "height": 1080,
      "avg_frame_rate": "25/1"}, "avc1.4d4028"),
    ({"codec_type": "video", "profile": "High", "level": -99, "width": 320, "height": 240,
      "avg_frame_rate": "0/0", "r_frame_rate": "30/1"}, "avc1.64000d"),
    ({"codec_type": "video", "profile": "High", "width": 3840, "height": 2160, "avg_frame_rate": "60/1"},
     "avc1.640034"),
])
def test_codecs_attribute_names_a_real_level(stream, codec, monkeypatch):
    class Probed:
        raw = {"streams": [stream]}

    monkeypatch.setattr(pipeline, "_probe_output", lambda path: Probed)
    assert pipeline._codecs("any.mp4") == codec


def test_each_written_output_is_probed_once_until_it_changes(sample_video, tmp_path, monkeypatch):
    """The MP4's duration and codecs and an audio track's channels come from one
    ffprobe run per file (each costs ~0.1 s to start); a file written again is read again."""
    calls = []
    real = pipeline.probe

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(pipeline, "probe", counting)
    pipeline._probe_output_cached.cache_clear()
    path = tmp_path / "mp4-180p.mp4"
    shutil.copyfile(sample_video, path)
    first = pipeline._codecs(path)
    assert first.startswith("avc1.") and first.endswith(",mp4a.40.2")
    assert pipeline._probe_output(path).duration == pytest.approx(4, abs=0.1)
    assert pipeline._codecs(path) == first
    assert calls == [str(path)]
    # Written again (another size): read again, and what it is now is what counts.
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(sample_video), "-map", "0:a",
                    "-c", "copy", str(tmp_path / "audio.mp4")], check=True, timeout=60)
    shutil.copyfile(tmp_path / "audio.mp4", path)
    assert pipeline._codecs(path) == "mp4a.40.2"
    assert calls == [str(path)] * 2


def starts(path):
    """{codec_type: start_time} as ffmpeg's demuxer (and so Chromium's own MP4
    playback) reads ``path``, edit lists applied."""
    return {s["codec_type"]: float(s["start_time"]) for s in ffprobe_json(path)["streams"]}


def first_sample_time(path):
    """(decode time, composition offset) of the first sample of the first
    fragment of an fMP4: what MSE (hls.js) places, edit lists aside."""
    data = Path(path).read_bytes()[:65536]
    moof = data.index(b"moof")
    tfdt = data.index(b"tfdt", moof)
    version = data[tfdt + 4]
    decode = int.from_bytes(data[tfdt + 8:tfdt + (16 if version else 12)], "big")
    trun = data.index(b"trun", moof)
    flags = int.from_bytes(data[trun + 5:trun + 8], "big")
    at = trun + 12 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    at += sum(4 for bit in (0x100, 0x200, 0x400) if flags & bit)
    if not flags & 0x800:  # no composition offsets (sound)
        return decode, 0
    return decode, int.from_bytes(data[at:at + 4], "big", signed=data[trun + 4] == 1)


def test_sound_and_picture_start_together(media_dir):
    # x264 with B-frames decodes its first picture 2 frames before showing
    # it; the outputs must not turn that delay into the picture arriving
    # 80 ms after the sound (the AAC encoder's priming is no excuse either).
    source = make_test_video(media_dir / "sync.mp4", duration=3)
    video = make_video(source, title="Sync")
    assert transcode(video).status == "ready"
    files = renditions(video)

    mp4 = starts(local(files["mp4-144p"]))
    assert abs(mp4["video"] - mp4["audio"]) < 0.001, mp4
    assert abs(mp4["video"]) < 0.001, mp4

    # Each HLS rendition's first picture and first sound sample sit at
    # media time 0 (MSE plays them by these raw times, the sound's priming
    # is before 0 in its edit list).
    rungs = [name for name in files if name.startswith("hls-") and name.endswith("p-media")]
    assert sorted(rungs) == ["hls-144p-media", "hls-180p-media", "hls-90p-media"]
    for name in rungs:
        assert first_sample_time(local(files[name])) == (0, 0), name
    assert first_sample_time(local(files["hls-audio1-media"]))[0] == 0
    audio = ffprobe_json(local(files["hls-audio1-media"]), "-show_packets", "-read_intervals", "%+#1")
    assert float(audio["packets"][0]["pts_time"]) == pytest.approx(-1024 / 48000, abs=1e-6)
