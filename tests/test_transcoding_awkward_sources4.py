"""Media sweep 4: awkward sources the earlier sweeps did not try (pictures
with transparency, sound at unusual sample rates). Each clip is made here
with ffmpeg's lavfi sources (nothing is downloaded), tiny and short, and
each ends as the pictures and sound a viewer expects."""

import subprocess

import pytest

from tests.helpers import make_video
from tests.test_transcoding_awkward_sources import assert_close, mean_rgb
from tests.test_transcoding_bad_media import assert_ready, transcode
from transcoding.testmedia import ffprobe_json

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "50"]


def ffmpeg(*args):
    subprocess.run([*FFMPEG, *map(str, args)], check=True, capture_output=True, timeout=60)


def has_decoder(name):
    listing = subprocess.run(["ffmpeg", "-hide_banner", "-decoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in listing.splitlines())


# ---- transparency: shown over black ----------------------------------------------------------

RED = "0xC81E1E"
# Four 32x72 bands: opaque red, opaque grey, red at half opacity, and a
# fully transparent band whose hidden colour is white.
BANDS = ";".join(
    f"color=c={colour}:s=32x72:r=25:d=1,format=rgba[b{index}]"
    for index, colour in enumerate([f"{RED}@1.0", "0x808080@1.0", f"{RED}@0.5", "white@0.0"])
) + ";[b0][b1][b2][b3]hstack=4"
# What each band looks like over black.
OVER_BLACK = [(200, 30, 30), (128, 128, 128), (100, 15, 15), (0, 0, 0)]
ALPHA_SOURCES = {
    "prores-4444.mov": ["-pix_fmt", "yuva444p10le", "-c:v", "prores_ks", "-profile:v", "4444"],
    "vp9-alpha.webm": ["-pix_fmt", "yuva420p", "-c:v", "libvpx-vp9", "-deadline", "realtime"],
}


def band_colours(path, width, height, *, left=0):
    """The mean colour of the middle of each of the four bands of the
    picture at ``left`` (a storyboard tile) that is ``width`` wide."""
    side = max(2, width // 16)
    return [mean_rgb(path, crop=f"{side}:{side}:{left + (2 * band + 1) * width // 8 - side // 2}:"
                                  f"{height // 2 - side // 2}") for band in range(4)]


@pytest.mark.parametrize("name", ALPHA_SOURCES)
def test_a_transparent_picture_is_shown_over_black(media_dir, name):
    """A title exported with transparency (ProRes 4444, WebM VP9 with alpha):
    the alpha plane was dropped (ffmpeg's VP9 decoder never reads it), so
    the transparent band showed its hidden white (255, 255, 255) and the
    half-transparent one full red (198, 29, 30), in the rungs, the poster and
    the storyboard alike. Over black, as on the player's background."""
    if name.endswith(".webm") and not has_decoder("libvpx-vp9"):
        pytest.skip("this ffmpeg has no libvpx-vp9 decoder")
    source = media_dir / name
    ffmpeg("-f", "lavfi", "-i", BANDS, *ALPHA_SOURCES[name], source)
    video = make_video(source, title="Transparent")
    job = transcode(video)
    assert_ready(job, ["72p"])
    files = {r.name: r.file.path for r in video.renditions.all()}
    for picture in ("hls-72p-media", "poster"):
        for seen, expected in zip(band_colours(files[picture], 128, 72), OVER_BLACK):
            assert_close(seen, expected, within=8)
    # Tiles of 160x90.
    for seen, expected in zip(band_colours(files["storyboard"], 160, 90), OVER_BLACK):
        assert_close(seen, expected, within=8)


# ---- sound at unusual sample rates: 44.1 or 48 kHz AAC -----------------------------------------

def sound_level(path):
    """The mean volume (dB) of ``path``'s first audio stream."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-i", str(path), "-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    ).stderr
    return float(next(line for line in out.splitlines() if "mean_volume" in line).split(":")[1].split()[0])


@pytest.mark.parametrize("rate, codec, container, expected", [
    (96000, "aac", "mp4", 48000),  # a field recorder's, otherwise fit for the quick remux
    (8000, "pcm_s16le", "mkv", 48000),  # a voice memo's
    (44100, "pcm_s16le", "mkv", 44100),
], ids=["96k", "8k", "44.1k"])
def test_sound_is_aac_at_a_rate_every_browser_plays(media_dir, rate, codec, container, expected):
    """96 kHz sound was encoded as 96 kHz AAC (or, when it was AAC already,
    copied as it was into the quick version), which Windows' AAC decoder
    (Firefox) does not play at all; 8 kHz sound as 8 kHz AAC, whose 128 ms
    frames made the sound track last 2.13 s against a 2 s picture. Both
    become 48 kHz; 44.1 kHz stays as it is."""
    source = media_dir / f"tone-{rate}.{container}"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x72:rate=25:duration=2",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}:duration=2", *H264, "-c:a", codec, source)
    video = make_video(source, title="Tone")
    job = transcode(video)
    assert_ready(job, ["72p"])
    if codec == "aac":
        assert job.source_info["fast_path_refusal"] == "sound at an unusual sample rate"
    for name in ("hls-audio1-media", "mp4-72p"):
        path = video.renditions.get(name=name).file.path
        data = ffprobe_json(path)
        sound = next(s for s in data["streams"] if s["codec_type"] == "audio")
        assert (sound["codec_name"], int(sound["sample_rate"]), sound["channels"]) == ("aac", expected, 2), name
        assert float(sound["duration"]) == pytest.approx(2.0, abs=0.05), (name, sound["duration"])
        assert sound_level(path) > -30, name  # the tone (-24 dB), not silence


# ---- BT.601, full-range and grey pictures: black, grey and white stay so -------------------------

# Three 64x72 bands: black, mid-grey, white.
GREYS = ";".join(f"color=c={colour}:s=64x72:r=25:d=1[g{index}]"
                 for index, colour in enumerate(["black", "0x808080", "white"])) + ";[g0][g1][g2]hstack=3"
GREY_SOURCES = {
    # A phone's or an MJPEG camera's full range ("JPEG range"), untagged, so BT.601.
    "full-range.mp4": ["-vf", "scale=out_range=full:out_color_matrix=bt601,format=yuvj420p", *H264[:4]],
    # A monochrome master.
    "grey.mkv": ["-vf", "format=gray", "-c:v", "ffv1"],
}


@pytest.mark.parametrize("name", GREY_SOURCES)
def test_black_grey_and_white_stay_neutral_through_the_matrix_conversion(media_dir, name):
    """The rungs are BT.709; a BT.601 source's YUV was converted by swscale
    through a coarse RGB step: mid-grey (128, 128, 128) became
    (124, 126, 126) and white (251, 253, 250), and a grey source's picture
    turned green ((77, 79, 76) for (80, 80, 80)). Full range becomes
    limited range on the way, with black still black and white white."""
    source = media_dir / name
    ffmpeg("-f", "lavfi", "-i", GREYS, *GREY_SOURCES[name], source)
    video = make_video(source, title="Greys")
    job = transcode(video)
    assert_ready(job, ["72p"])
    rung = video.renditions.get(name="hls-72p-media").file.path
    stream = next(s for s in ffprobe_json(rung)["streams"] if s["codec_type"] == "video")
    assert (stream["pix_fmt"], stream.get("color_range"), stream.get("color_space")) == ("yuv420p", "tv", "bt709")
    files = {r.name: r.file.path for r in video.renditions.all()}
    for name, width, height in (("hls-72p-media", 192, 72), ("poster", 192, 72), ("storyboard", 160, 60)):
        seen = [mean_rgb(files[name], crop=f"8:8:{(2 * band + 1) * width // 6 - 4}:{height // 2 - 4}")
                for band in range(3)]
        for colour, expected in zip(seen, [(0, 0, 0), (128, 128, 128), (255, 255, 255)]):
            assert_close(colour, expected, within=2)
