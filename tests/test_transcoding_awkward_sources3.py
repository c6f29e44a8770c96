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
