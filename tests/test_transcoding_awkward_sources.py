"""Awkward sources a media sweep found handled wrongly (cover art or a still
in front of the picture, ADTS sound in MPEG-TS, an audio track with nothing
in it, Matroska/WebM written live without a duration): each now ends as the
picture and sound a viewer expects."""

import struct
import subprocess
from pathlib import Path

import pytest

from private_video.probe import probe, probe_video
from tests.helpers import make_video
from tests.test_transcoding_bad_media import assert_ready, media_streams, transcode
from tests.test_transcoding_ladder import _record_publishes
from transcoding.pipeline import reorder_delay
from transcoding.testmedia import ffprobe_json

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
PICTURE = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]
TONE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50"]
AAC = ["-c:a", "aac", "-b:a", "96k"]


def ffmpeg(*args):
    subprocess.run([*FFMPEG, *map(str, args)], check=True, capture_output=True, timeout=60)


def red_cover(folder):
    cover = folder / "cover.jpg"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=300x300", "-frames:v", "1", cover)
    return cover


def moov_children_reordered(path, first=b"udta"):
    """The same MP4 with ``first`` moved to the front of moov's boxes (box
    order inside moov is free; with faststart the chunk offsets stay right):
    some tools write the cover art's box before the tracks, so ffmpeg lists
    the cover as stream 0."""
    data = bytearray(path.read_bytes())

    def boxes(start, end):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            yield start, size, kind
            start += size

    moov_at, moov_size, _ = next(box for box in boxes(0, len(data)) if box[2] == b"moov")
    children = list(boxes(moov_at + 8, moov_at + moov_size))
    order = ([c for c in children if c[2] == b"mvhd"] + [c for c in children if c[2] == first]
             + [c for c in children if c[2] not in (b"mvhd", first)])
    data[moov_at + 8:moov_at + moov_size] = b"".join(bytes(data[p:p + s]) for p, s, _ in order)
    out = path.with_name("first-" + path.name)
    out.write_bytes(bytes(data))
    return out


def assert_the_moving_picture(video, job):
    """A 3 s 4:3 picture with sound, not the 1:1 red still."""
    assert_ready(job, ["144p", "90p"])
    streams = media_streams(video, "144p")
    picture = next(s for s in streams if s["codec_type"] == "video")
    assert (picture["width"], picture["height"]) == (192, 144), picture
    duration = float(ffprobe_json(video.renditions.get(name="hls-144p-media").file.path)["format"]["duration"])
    assert abs(duration - 3) < 0.5, duration
    assert video.renditions.filter(name="storyboard").exists()


def test_cover_art_listed_before_the_picture_in_an_mp4(media_dir):
    cover = red_cover(media_dir)
    last = media_dir / "cover-last.mp4"
    ffmpeg("-i", cover, *PICTURE, *TONE, "-map", "1", "-map", "2", "-map", "0", "-c:v:0", "libx264", "-preset",
           "veryfast", "-pix_fmt", "yuv420p", "-g", "50", "-c:v:1", "mjpeg", "-disposition:v:1", "attached_pic",
           *AAC, "-movflags", "+faststart", last)
    source = moov_children_reordered(last)
    streams = ffprobe_json(source)["streams"]
    assert streams[0]["codec_name"] == "mjpeg" and streams[0]["disposition"]["attached_pic"] == 1
    video = make_video(source, title="Cover first")
    assert (video.width, video.height) == (320, 240)
    assert_the_moving_picture(video, transcode(video))


@pytest.mark.parametrize("first", ["cover", "thumbnail"])
def test_a_still_or_thumbnail_track_before_the_picture_in_matroska(media_dir, first):
    """Matroska keeps no attached-picture flag on a cover track: it is a
    one-frame video track 0. The picture is the longest video track."""
    source = media_dir / f"{first}-first.mkv"
    if first == "cover":
        ffmpeg("-i", red_cover(media_dir), *PICTURE, *TONE, "-map", "0", "-map", "1", "-map", "2",
               "-c:v:0", "mjpeg", "-c:v:1", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", *AAC, source)
    else:
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=80x60:rate=25:duration=0.04", *PICTURE, *TONE,
               "-map", "0:v", "-map", "1:v", "-map", "2:a", *H264, *AAC, source)
    info = probe(source)
    assert (info.video_index, info.width, info.height) == (1, 320, 240)
    video = make_video(source, title=first)
    assert_the_moving_picture(video, transcode(video))


def test_h264_and_aac_in_mpeg_ts_are_remuxed_for_the_first_playable_version(media_dir, monkeypatch, tmp_path):
    """ADTS-framed AAC cannot be copied into MP4 as it is (the remux used to
    fail, and viewers waited for the whole ladder)."""
    published, commands = _record_publishes(monkeypatch, tmp_path)
    source = media_dir / "broadcast.ts"
    ffmpeg(*PICTURE, *TONE, *H264, *AAC, source)
    video = make_video(source, title="Broadcast")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert "libx264" not in commands[0] and "aac_adtstoasc" in commands[0]
    first = published[0]
    assert {"mp4-240p", "hls-240p-media", "hls-audio1-media"} <= set(first), set(first)
    copied = ffprobe_json(first["mp4-240p"])
    assert [s["codec_name"] for s in copied["streams"]] == ["h264", "aac"]
    assert abs(float(copied["format"]["duration"]) - 3) < 0.5


def test_an_audio_track_with_no_sound_in_it_is_left_out(media_dir):
    """Announced, but without one packet: an HLS audio rendition of nothing
    never starts playing. The video is treated as silent."""
    source = media_dir / "no-packets.mkv"
    ffmpeg(*PICTURE, *TONE, "-map", "0:v", "-map", "1:a", *H264, "-c:a", "aac", "-frames:a", "0", source)
    assert [s["codec_type"] for s in ffprobe_json(source)["streams"]] == ["video", "audio"]
    video = make_video(source, title="Empty track")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert not video.renditions.filter(name__startswith="hls-audio").exists()
    master = Path(video.renditions.get(name="hls-master").file.path).read_text()
    assert "mp4a" not in master and "TYPE=AUDIO" not in master
    assert job.source_info["has_audio"] is False


@pytest.mark.parametrize("container,codecs", [
    ("webm", ["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus"]),
    ("matroska", [*H264, *AAC]),
])
def test_a_file_written_live_without_a_duration_is_measured_from_its_packets(media_dir, container, codecs):
    """What a browser's MediaRecorder writes: no Duration element at all."""
    source = media_dir / f"live.{'webm' if container == 'webm' else 'mkv'}"
    with source.open("wb") as out:
        subprocess.run([*FFMPEG, *PICTURE, *TONE, *codecs, "-f", container, "pipe:1"], stdout=out, check=True,
                       timeout=60)
    assert "duration" not in ffprobe_json(source)["format"]
    info = probe_video(source)
    assert abs(info.duration - 3) < 0.2, info.duration
    video = make_video(source, title="Recorded")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    duration = float(ffprobe_json(video.renditions.get(name="hls-144p-media").file.path)["format"]["duration"])
    assert abs(duration - 3) < 0.5


def test_sound_that_starts_after_the_picture_stays_where_it_is_in_the_mp4(media_dir):
    """The progressive MP4 is muxed from the ladder's picture and sound: the
    sound used to be moved to the picture's start (here 1 s early)."""
    source = media_dir / "late-sound.mkv"
    ffmpeg(*PICTURE, "-itsoffset", "1", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
           "-map", "0:v", "-map", "1:a", *H264, *AAC, source)
    video = make_video(source, title="Late sound")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])

    def starts(name):
        streams = ffprobe_json(video.renditions.get(name=name).file.path)["streams"]
        return {s["codec_type"]: float(s["start_time"]) for s in streams}

    rung = video.renditions.get(name="hls-144p-media").file.path
    # ffmpeg reads the rung's pictures late by its reordering delay (the
    # file itself shows its first picture at 0, as MSE plays it).
    hls_sound, hls_picture = starts("hls-audio1-media")["audio"], starts("hls-144p-media")["video"]
    hls_picture -= reorder_delay(rung)
    mp4 = starts("mp4-144p")
    # The MP4 on the HLS renditions' timeline (it used to put the sound at 0)...
    assert abs(mp4["audio"] - hls_sound) < 0.01 and abs(mp4["video"] - hls_picture) < 0.01, (mp4, hls_sound)
    # ... which is the source's, but for AAC's priming (twice ~21 ms: the
    # source's sound is itself AAC), left as it is.
    assert abs((mp4["audio"] - mp4["video"]) - 1) < 0.05, mp4


def test_one_picture_and_a_long_soundtrack_hold_the_picture(media_dir):
    """One frame and 6 s of sound: the rungs used to hold one frame, and an
    HLS player stalled at 0 waiting for video."""
    source = media_dir / "one-frame-talk.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=0.04",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=6", *H264, *AAC,
           "-movflags", "+faststart", source)
    video = make_video(source, title="Talk")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    for name in ("hls-144p-media", "hls-90p-media", "mp4-144p"):
        streams = ffprobe_json(video.renditions.get(name=name).file.path, "-count_frames", "-show_streams")["streams"]
        picture = next(s for s in streams if s["codec_type"] == "video")
        assert int(picture["nb_read_frames"]) > 100, (name, picture["nb_read_frames"])  # ~6 s at 25 fps


def test_a_start_cut_by_an_edit_list_is_encoded_not_copied(media_dir, monkeypatch, tmp_path):
    """A trim made by copying keeps the packets before the cut, marked for
    the player to drop (an MP4 edit list). Copied into HLS they were shown:
    1.3 s the editor had cut. Such a source skips the quick remux."""
    published, commands = _record_publishes(monkeypatch, tmp_path)
    long = media_dir / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=5",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5", *H264, *AAC,
           "-movflags", "+faststart", long)
    source = media_dir / "trimmed.mp4"
    ffmpeg("-ss", "1.3", "-i", long, "-c", "copy", "-movflags", "+faststart", source)
    video = make_video(source, title="Trimmed")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert "libx264" in commands[0]  # the first playable version was encoded
    durations = {
        name: float(ffprobe_json(path)["format"]["duration"])
        for name, path in published[0].items() if name.endswith("-media") or name.startswith("mp4-")
    }
    assert len(durations) >= 3, published[0]
    assert all(abs(seconds - 3.7) < 0.3 for seconds in durations.values()), durations  # never the whole 5 s


# ---- media sweep 2 ---------------------------------------------------------------------

RED = "0xC02020"


def mean_rgb(path, *, crop=None):
    """The mean colour of ``path``'s first picture as a browser shows it: to
    RGB by its own colour tags (ffmpeg's automatic conversion reads them;
    JPEGs are BT.601 full range), then averaged."""
    filters = [f"crop={crop or '16:16'}"]  # the middle (swscale's 1-pixel area average of a whole frame drifts)
    data = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1",
         "-vf", ",".join([*filters, "format=rgb24", "scale=1:1:flags=area", "format=rgb24"]), "-f", "rawvideo", "-"],
        check=True, capture_output=True, timeout=60,
    ).stdout
    return tuple(data[:3])


def assert_close(seen, expected, within=8):
    assert all(abs(a - b) <= within for a, b in zip(seen, expected)), (seen, expected)


def test_posters_and_storyboards_keep_the_colours_of_a_bt709_source(media_dir):
    """A BT.709 source's poster and storyboard were converted as if BT.601:
    a red (189, 32, 29) became (176, 15, 31); the rungs were right."""
    source = media_dir / "red-709.mp4"
    ffmpeg("-f", "lavfi", "-i", f"color=c={RED}:size=1280x720:rate=25:duration=2", *TONE[:3],
           "sine=frequency=440:sample_rate=48000:duration=2",
           "-vf", "scale=out_color_matrix=bt709,format=yuv420p", *H264, *AAC,
           "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", source)
    expected = mean_rgb(source)
    video = make_video(source, title="Red")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    files = {r.name: r.file.path for r in video.renditions.all()}
    assert_close(mean_rgb(files["hls-144p-media"]), expected)
    assert_close(mean_rgb(files["poster"]), expected)
    assert_close(mean_rgb(files["storyboard"], crop="16:8:8:8"), expected)


def test_a_palette_source_keeps_its_colours(media_dir):
    """PNG frames with a palette (pal8): the rungs came out with green 14
    levels high (the palette was read as BT.601, the rung tagged BT.709)."""
    source = media_dir / "palette.mov"
    ffmpeg("-f", "lavfi", "-i", f"color=c={RED}:size=320x180:rate=25:duration=2", "-c:v", "png", "-pix_fmt", "pal8",
           source)
    expected = mean_rgb(source)
    video = make_video(source, title="Palette")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    rung = video.renditions.get(name="hls-144p-media").file.path
    assert_close(mean_rgb(rung), expected)


def test_a_matroska_file_whose_timestamps_start_late_lasts_as_long_as_it_plays(media_dir):
    """Timestamps from 1 h: Matroska's duration is where the last frame ends,
    and a 2 s clip was recorded as lasting 3602 s (its storyboard cues 36 s each)."""
    source = media_dir / "late-start.mkv"
    ffmpeg(*PICTURE[:3], "testsrc2=size=320x240:rate=25:duration=2", *H264, "-output_ts_offset", "3600", source)
    assert probe(source).duration == pytest.approx(2.0, abs=0.05)
    video = make_video(source, title="Late start")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    video.refresh_from_db()
    assert video.duration == pytest.approx(2.0, abs=0.05)


def test_sound_longer_than_the_picture_is_not_remuxed_as_it_is(media_dir):
    """The quick version is a remux for a web-playable file: its picture
    stopped at 2 s of 3 s of sound (an HLS player then waits for video);
    the ladder holds the last picture, so the quick version is encoded too."""
    from transcoding.pipeline import fast_path_refusal

    source = media_dir / "short-picture.mp4"
    ffmpeg(*PICTURE[:3], "testsrc2=size=320x240:rate=25:duration=2", *TONE[:3],
           "sine=frequency=440:sample_rate=48000:duration=3", *H264, *AAC, "-movflags", "+faststart", source)
    assert fast_path_refusal(probe_video(source), source) == "the sound outlasts the picture"


@pytest.mark.parametrize(("rate", "expected"), [("100", "50/1"), ("144", "48/1"), ("120", "60/1")])
def test_rates_above_60_are_divided_evenly(media_dir, rate, expected):
    """100 fps came out at 30 (every 3.33rd frame); 50 keeps every other one."""
    source = media_dir / f"fast-{rate}.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}:duration=1", *H264, source)
    video = make_video(source, title=f"{rate} fps")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    rung = ffprobe_json(video.renditions.get(name="hls-90p-media").file.path)["streams"][0]
    assert rung["r_frame_rate"] == expected


def test_a_fragmented_recording_keeps_its_frame_rate(media_dir):
    """A browser's or OBS's fragmented MP4 at 25 fps: ffprobe estimates its
    average as 24.74, and the rungs were made at that rate (a frame dropped
    now and then)."""
    source = media_dir / "recording.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "25", *AAC,
           "-movflags", "frag_keyframe+empty_moov+default_base_moof", source)
    assert ffprobe_json(source)["streams"][0]["avg_frame_rate"] != "25/1"  # the estimate
    video = make_video(source, title="Recording")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    rung = ffprobe_json(video.renditions.get(name="hls-90p-media").file.path)["streams"][0]
    assert rung["r_frame_rate"] == "25/1"


def test_mpeg_ts_joined_byte_for_byte_lasts_as_long_as_it_plays(media_dir):
    """Two recordings' MPEG-TS files put end to end: the timestamps start
    again, ffprobe reads 1.5 s, the renditions play 3 s. The video said
    1.5 s, and the player's beacons (3 s) were refused as another video's."""
    parts = []
    for index in range(2):
        part = media_dir / f"part{index}.ts"
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=1.5",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1.5", *H264, *AAC, part)
        parts.append(part.read_bytes())
    source = media_dir / "joined.ts"
    source.write_bytes(b"".join(parts))
    assert probe(source).duration < 2
    video = make_video(source, title="Joined")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    video.refresh_from_db()
    assert video.duration == pytest.approx(3.0, abs=0.2)
    played = ffprobe_json(video.renditions.get(name="mp4-144p").file.path)["format"]["duration"]
    assert float(played) == pytest.approx(video.duration, abs=0.2)
