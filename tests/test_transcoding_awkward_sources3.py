"""Media sweep 3: awkward sources the earlier sweeps handled wrongly. Each
clip is made here with ffmpeg's lavfi sources (nothing is downloaded), tiny
and short, and each ends as the pictures and sound a viewer expects."""

import subprocess
from pathlib import Path

import pytest

from private_video.probe import probe
from tests.helpers import make_video
from tests.test_transcoding_awkward_sources import assert_close, mean_rgb
from tests.test_transcoding_bad_media import assert_ready, transcode
from transcoding.testmedia import ffprobe_json

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50"]
AAC = ["-c:a", "aac", "-b:a", "96k"]


def ffmpeg(*args):
    subprocess.run([*FFMPEG, *map(str, args)], check=True, capture_output=True, timeout=60)


def storyboard_cues(video):
    """(start, end) of each storyboard cue, in seconds."""
    def seconds(text):
        hours, minutes, secs = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(secs)

    text = Path(video.renditions.get(name="storyboard-vtt").file.path).read_text()
    return [tuple(seconds(part.strip()) for part in line.split("-->")) for line in text.splitlines() if "-->" in line]


def rung_video(video, name="hls-90p-media", *args):
    path = video.renditions.get(name=name).file.path
    return next(s for s in ffprobe_json(path, *(args or ("-show_streams",)))["streams"] if s["codec_type"] == "video")


# ---- joined MPEG-TS: the storyboard spans what plays ---------------------------------------

def joined_ts(media_dir, name, colours, *, offsets=(0, 0)):
    """Two 3 s MPEG-TS recordings of one colour each, put end to end byte for
    byte; the second's timestamps start again (offset 0) or jump (3600)."""
    parts = []
    for index, (colour, offset) in enumerate(zip(colours, offsets)):
        part = media_dir / f"{name}-part{index}.ts"
        ffmpeg("-f", "lavfi", "-i", f"color=c={colour}:size=320x240:rate=25:duration=3",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3", *H264, *AAC,
               "-output_ts_offset", offset, part)
        parts.append(part.read_bytes())
    source = media_dir / f"{name}.ts"
    source.write_bytes(b"".join(parts))
    return source


@pytest.mark.parametrize("jump", [0, 3600], ids=["restarting", "jumping"])
def test_the_storyboard_of_joined_mpeg_ts_spans_what_plays(media_dir, jump):
    """ffprobe reads the first part's duration (3 s of 6 s), or the span
    between the two parts' clocks (3603 s); the storyboard was planned on it:
    one or two tiles of the first part, or 100 cues of 36 s for 6 s of video."""
    source = joined_ts(media_dir, f"joined-{jump}", ["red", "blue"], offsets=(0, jump))
    assert abs(probe(source).duration - 6) > 1
    video = make_video(source, title="Joined")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    video.refresh_from_db()
    assert video.duration == pytest.approx(6.0, abs=0.2)
    cues = storyboard_cues(video)
    assert [start for start, _ in cues] == [0, 2, 4], cues
    assert cues[-1][1] == pytest.approx(6.0, abs=0.2)
    assert all(end > start for start, end in cues), cues
    sprite = video.renditions.get(name="storyboard")
    # Tiles are 160x120, three to a row: the third shows the second part.
    assert (sprite.width, sprite.height) == (480, 120)
    assert_close(mean_rgb(sprite.file.path, crop="16:16:72:52"), (254, 0, 0), within=24)
    assert_close(mean_rgb(sprite.file.path, crop="16:16:392:52"), (0, 0, 254), within=24)


# ---- variable frame rate: every frame is kept --------------------------------------------------

def mixed_rate(path, rates=(10, 30, 10), seconds=2):
    """A clip whose frame rate changes: ``seconds`` at each of ``rates``."""
    inputs, labels = [], ""
    for index, rate in enumerate(rates):
        inputs += ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}:duration={seconds}"]
        labels += f"[{index}:v]"
    ffmpeg(*inputs, "-filter_complex", f"{labels}concat=n={len(rates)}:v=1:a=0,settb=1/90000[v]", "-map", "[v]",
           "-fps_mode", "vfr", *H264, path)
    return path


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_a_frame_rate_that_changes_keeps_the_frames_of_its_fast_parts(media_dir, container):
    """10 fps, then 30, then 10: the rungs were made at the ~17 fps average,
    dropping almost every other frame of the 30 fps part (judder). Matroska
    states no base rate (its r_frame_rate is the average too): the packets'
    spacing tells."""
    source = mixed_rate(media_dir / "mixed-rate.mp4")
    if container == "mkv":
        # Copied into Matroska, whose muxer writes the average as each
        # frame's default duration: r_frame_rate reads ~17 too.
        source, copied = media_dir / "mixed-rate.mkv", source
        ffmpeg("-i", copied, "-c", "copy", source)
        assert ffprobe_json(source)["streams"][0]["r_frame_rate"] == "1000/59"
    video = make_video(source, title="Mixed rate")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    for name in ("hls-144p-media", "hls-90p-media", "mp4-144p"):
        stream = rung_video(video, name, "-count_frames", "-show_streams")
        assert stream["r_frame_rate"] == "30/1", (name, stream["r_frame_rate"])
        # 5.9 s (the last frame's own duration is not kept) at 30 fps, not ~100 frames at ~17.
        assert 172 <= int(stream["nb_read_frames"]) <= 181, (name, stream["nb_read_frames"])


@pytest.mark.parametrize("rate", ["25", "30000/1001"])
def test_a_steady_rate_with_jittery_timestamps_stays_as_it_is(media_dir, rate):
    """Millisecond timestamps (Matroska, WebM) round each frame's time: a
    29.97 fps clip has frames 33 and 34 ms apart. Its rate is kept."""
    source = media_dir / f"steady-{rate.replace('/', '-')}.mkv"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}:duration=2", *H264, source)
    video = make_video(source, title="Steady")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert rung_video(video)["r_frame_rate"] == (rate if "/" in rate else f"{rate}/1")


def test_the_fastest_rate_reads_past_jitter_and_bunched_frames():
    import random

    from transcoding.profiles import fastest_frame_rate

    jitter = random.Random(3)
    steady = [n / 30 + jitter.uniform(-0.004, 0.004) for n in range(300)]  # a camera's capture times
    assert fastest_frame_rate(steady) == 30
    # A recorder that writes a late frame's queue at once: a few frames 1 ms apart.
    bunched = sorted([n / 25 for n in range(250)] + [2 + n / 1000 for n in range(1, 6)])
    assert fastest_frame_rate(bunched) == 25
    ntsc_ms = [round(n * 1001 / 30000, 3) for n in range(300)]  # Matroska's milliseconds
    assert fastest_frame_rate(ntsc_ms, base=30000 / 1001) * 1001 == 30000
    assert fastest_frame_rate([0, 1, 2]) is None


# ---- sound that starts before the picture -------------------------------------------------

def test_sound_before_the_picture_leaves_the_video_as_long_as_it_plays(media_dir):
    """Matroska, sound from 0 s, picture from 1 s to 3 s: the quick remux's
    picture playlist counts 2 s, the duration was settled at that, and the
    ladder (which plays 3 s, the first picture held until the picture
    starts) agreed with the probe and left the 2 s in place: the player's
    beacons then disagree with the video."""
    source = media_dir / "sound-first.mkv"
    ffmpeg("-itsoffset", "1", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2", *H264, *AAC, source)
    video = make_video(source, title="Sound first")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert job.source_info["web_playable"]  # the quick version was a remux
    video.refresh_from_db()
    played = float(ffprobe_json(video.renditions.get(name="mp4-144p").file.path)["format"]["duration"])
    assert played == pytest.approx(3.0, abs=0.1)
    assert video.duration == pytest.approx(played, abs=0.1)


# ---- MP4 whose timestamps start at hours ---------------------------------------------------

@pytest.mark.parametrize("how", ["offset", "copied clock"])
def test_an_mp4_whose_timestamps_start_late_lasts_as_long_as_it_plays(media_dir, how):
    """An MP4's duration counts from 0 whatever its first timestamp: a 2 s
    broadcast recording copied with its clock (4557 s) "lasted" 4559 s (a
    storyboard of 100 cues of 45 s, most ending before they start), one
    starting at 100000 s was refused as far too small for 27 hours."""
    source = media_dir / f"late-{how.replace(' ', '-')}.mp4"
    picture = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2", *H264, *AAC]
    if how == "offset":
        ffmpeg(*picture, "-output_ts_offset", "100000", source)
    else:
        recording = media_dir / "late-recording.ts"
        ffmpeg(*picture, "-output_ts_offset", "4557", recording)
        ffmpeg("-copyts", "-i", recording, "-c", "copy", source)
    assert float(ffprobe_json(source)["format"]["start_time"]) > 4000
    assert probe(source).duration == pytest.approx(2.0, abs=0.1)
    video = make_video(source, title="Late clock")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    video.refresh_from_db()
    assert video.duration == pytest.approx(2.0, abs=0.1)
    cues = storyboard_cues(video)
    assert cues[0][0] == 0 and cues[-1][1] == pytest.approx(video.duration, abs=0.05), cues
    assert all(end > start for start, end in cues), cues


# ---- a camera's mono tracks ------------------------------------------------------------------

def channel_volumes(path):
    """The mean volume (dB) of each channel of ``path``'s first audio stream."""
    volumes = []
    for channel in ("FL", "FR"):
        out = subprocess.run(
            ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:a:0", "-af", f"pan=mono|c0={channel},volumedetect",
             "-f", "null", "-"], capture_output=True, text=True, timeout=60,
        ).stderr
        volumes.append(float(next(line for line in out.splitlines() if "mean_volume" in line).split(":")[1].split()[0]))
    return volumes


def test_two_untitled_mono_tracks_are_one_stereo_sound(media_dir):
    """Professional cameras and recorders write each channel as a track of
    its own (PCM, mono, no name, no language): left and right became two
    alternatives, "Audio 1" and "Audio 2", and viewers heard the left one
    only, in the middle. They are one stereo sound."""
    source = media_dir / "camera.mov"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2",
           "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
           "-f", "lavfi", "-i", "anullsrc=channel_layout=mono:sample_rate=48000",
           "-map", "0:v", "-map", "1:a", "-map", "2:a", "-t", "2", *H264, "-c:a", "pcm_s24le", source)
    assert [s.get("channels") for s in ffprobe_json(source)["streams"]] == [None, 1, 1]
    video = make_video(source, title="Camera")
    job = transcode(video)
    assert_ready(job, ["144p", "90p"])
    assert not video.renditions.filter(name__startswith="hls-audio2").exists()
    master = Path(video.renditions.get(name="hls-master").file.path).read_text()
    assert master.count("TYPE=AUDIO") == 1, master
    for name in ("hls-audio1-media", "mp4-144p"):
        left, right = channel_volumes(video.renditions.get(name=name).file.path)
        assert left > -40 and right < -80, (name, left, right)  # the tone on the left only, as recorded


def test_mono_tracks_with_their_own_languages_stay_alternatives():
    from private_video.probe import MediaInfo
    from transcoding.profiles import plan_audio

    def info(*languages):
        streams = [{"codec_type": "video"}] + [
            {"codec_type": "audio", "codec_name": "pcm_s24le", "channels": 1, "sample_rate": "48000",
             "tags": {"language": language} if language else {}} for language in languages
        ]
        return MediaInfo(format_name="mov", duration=1, size=1, bit_rate=1, raw={"streams": streams})

    assert [(t.index, t.merge, t.channels) for t in plan_audio(info(None, None))] == [(0, (1,), 2)]
    assert [(t.index, t.merge) for t in plan_audio(info("eng", "eng", "eng"))] == [(0, (1,)), (2, ())]
    assert [(t.index, t.merge) for t in plan_audio(info("eng", "fra"))] == [(0, ()), (1, ())]


def test_an_interlaced_source_keeps_its_frame_rate_whatever_its_packets_say():
    """Field pictures may come as a packet each, 20 ms apart at 25i: the
    fastest-parts rule must not double a steady broadcast to 50."""
    from private_video.probe import MediaInfo
    from transcoding.profiles import FASTEST_RATE_KEY, output_frame_rate

    def info(field_order):
        stream = {"index": 0, "codec_type": "video", "r_frame_rate": "50/1", "avg_frame_rate": "25/1",
                  "field_order": field_order, FASTEST_RATE_KEY: "50/1"}
        return MediaInfo(format_name="mpegts", duration=1, size=1, bit_rate=1, frame_rate=25.0, video_index=0,
                         raw={"streams": [stream]})

    assert output_frame_rate(info("tt")) == 25
    assert output_frame_rate(info("progressive")) == 50
