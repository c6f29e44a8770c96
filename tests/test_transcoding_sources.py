"""Awkward but valid sources get the right picture and sound: portrait and
rotated phone video, interlaced and HDR footage, clips of one frame, several
audio languages, and originals a browser would play badly as they are.
Sources are made with ffmpeg at test time; outputs are checked with ffprobe,
ffmpeg's idet and signalstats filters."""

import re
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from media_access.hls import playback_info
from media_access.tokens import new_viewer
from media_access.models import ViewerGrant
from tests.helpers import make_user, make_video, make_video_page
from transcoding.pipeline import fast_path_refusal
from private_video.probe import MediaInfo, probe
from transcoding.profiles import Rung, plan_audio, plan_ladder, progressive_rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import (
    ffprobe_json,
    idet_counts,
    make_hdr_video,
    make_interlaced_video,
    make_multi_audio_video,
    make_test_video,
    mean_luma,
    rgb_difference,
    rotate_by_matrix,
)

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

TINY_LADDER = [Rung(240, 600), Rung(144, 300, crf=26), Rung(90, 150, crf=28)]


def transcode(video, ladder=TINY_LADDER, progressive=144):
    with override_settings(TRANSCODING_LADDER=ladder, TRANSCODING_PROGRESSIVE_HEIGHT=progressive):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    return job


def renditions(video):
    return {r.name: r for r in video.renditions.all()}


def local(rendition):
    return Path(rendition.file.path)


def video_stream(path):
    return next(s for s in ffprobe_json(path)["streams"] if s["codec_type"] == "video")


def rung_sizes(video):
    found = renditions(video)
    return {
        name: (video_stream(local(found[name + "-media"]))["width"], video_stream(local(found[name + "-media"]))["height"])
        for name in found
        if re.fullmatch(r"hls-\d+p", name)
    }


def fake_info(width, height, *, rotation=0, sar=None, **stream):
    """A probe result without a file, for the planning rules."""
    raw_stream = {"codec_type": "video", "width": width, "height": height, **stream}
    if sar:
        raw_stream["sample_aspect_ratio"] = sar
    return MediaInfo(
        format_name="mov,mp4", duration=30.0, size=1, bit_rate=stream.pop("bit_rate", 4_000_000),
        width=width, height=height, rotation=rotation, frame_rate=30.0, video_codec="h264",
        pix_fmt="yuv420p", profile="High", has_video=True, raw={"streams": [raw_stream]},
    )


# ---- planning: the ladder is on the short side --------------------------------------


@pytest.mark.parametrize("width,height,expected", [
    (720, 1280, [(720, 1280), (540, 960), (360, 640)]),
    (1080, 1920, [(1080, 1920), (720, 1280), (540, 960), (360, 640)]),
    (1920, 1080, [(1920, 1080), (1280, 720), (960, 540), (640, 360)]),
    # Below the top rung: a rung at the source's own size, nothing bigger.
    (480, 854, [(480, 854), (360, 640)]),
    (2160, 3840, [(1080, 1920), (720, 1280), (540, 960), (360, 640)]),
])
def test_ladder_is_planned_on_the_short_side_without_upscaling(width, height, expected):
    planned = plan_ladder(fake_info(width, height))
    assert [(p.width, p.height) for p in planned] == expected
    assert [p.label for p in planned] == [f"{min(size)}p" for size in expected]
    assert all(p.width % 2 == 0 and p.height % 2 == 0 for p in planned)
    # The progressive MP4 is also chosen by short side: 720p, upright.
    mp4 = progressive_rung(planned)
    assert mp4.short_side == min(720, expected[0][0], expected[0][1])


def test_rotation_and_non_square_pixels_are_planned_as_shown():
    # Stored 1280x720, shown turned: a portrait 720p clip.
    assert [(p.width, p.height) for p in plan_ladder(fake_info(1280, 720, rotation=90))][:1] == [(720, 1280)]
    # 720x576 PAL with 16:15 pixels is shown 768x576 (short side 576).
    planned = plan_ladder(fake_info(720, 576, sar="16:15"))
    assert [(p.width, p.height) for p in planned] == [(768, 576), (720, 540), (480, 360)]


# ---- encoding awkward sources ---------------------------------------------------------


def test_portrait_phone_clip_keeps_its_shape(media_dir):
    source = make_test_video(media_dir / "portrait.mp4", duration=1, fps=10, width=720, height=1280, preset="ultrafast")
    video = make_video(source, title="Portrait")
    job = transcode(video, ladder=None, progressive=720)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert rung_sizes(video) == {"hls-720p": (720, 1280), "hls-540p": (540, 960), "hls-360p": (360, 640)}
    found = renditions(video)
    mp4 = video_stream(local(found["mp4-720p"]))
    assert (mp4["width"], mp4["height"]) == (720, 1280)
    assert (found["poster"].width, found["poster"].height) == (720, 1280)
    master = local(found["hls-master"]).read_text()
    assert "RESOLUTION=360x640" in master and "RESOLUTION=720x1280" in master


def test_display_matrix_rotation_is_turned_upright_not_squeezed(media_dir):
    stored = make_test_video(media_dir / "sideways.mp4", duration=2, width=320, height=180)
    source = rotate_by_matrix(stored, media_dir / "rotated.mp4", 90)
    info = probe(source)
    assert info.rotation in (90, 270) and (info.width, info.height) == (320, 180)
    video = make_video(source, title="Rotated")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    # Upright 180x320 is a 180p source: its own size, then the smaller rungs.
    assert rung_sizes(video) == {"hls-180p": (180, 320), "hls-144p": (144, 256), "hls-90p": (90, 160)}
    for name in ("hls-180p-media", "mp4-144p"):
        stream = video_stream(local(renditions(video)[name]))
        assert not any("rotation" in side for side in stream.get("side_data_list", [])), stream
        assert stream.get("sample_aspect_ratio", "1:1") in ("1:1", "0:1")
    # A rotated original is not streamed as it is: players may ignore the matrix.
    assert job.source_info["web_playable"] is False
    assert "rotated" in job.source_info["fast_path_refusal"]


def mostly_progressive(counts):
    """idet's verdict on a deinterlaced video: bwdif leaves a little it can
    mistake for combing on moving test patterns (up to a fifth of the
    frames here), where the interlaced source reads as all TFF."""
    decided = counts["tff"] + counts["bff"] + counts["progressive"]
    return decided > 0 and counts["progressive"] >= 0.75 * decided


def test_interlaced_source_is_deinterlaced(media_dir):
    source = make_interlaced_video(media_dir / "interlaced.mp4", duration=2)
    before = idet_counts(source)
    assert before["tff"] > 10 * (before["progressive"] + 1), before  # the control: it is interlaced
    video = make_video(source, title="Interlaced")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert job.source_info["interlaced"] is True and job.source_info["web_playable"] is False
    for name in ("hls-240p-media", "hls-90p-media"):
        path = local(renditions(video)[name])
        after = idet_counts(path)
        assert mostly_progressive(after), (name, after)
        assert video_stream(path).get("field_order", "progressive") == "progressive"


def test_interlacing_nobody_flagged_is_detected_with_idet(media_dir):
    source = make_interlaced_video(media_dir / "unflagged.avi", duration=2, flagged=False)
    assert video_stream(source).get("field_order", "unknown") == "unknown"
    video = make_video(source, title="Unflagged")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert (job.source_info["field_order"], job.source_info["interlaced"]) == ("tt", True)
    after = idet_counts(local(renditions(video)["hls-240p-media"]))
    assert mostly_progressive(after), after
    # The same check on a progressive original of unknown order finds none.
    plain = make_interlaced_video(media_dir / "plain.avi", duration=1, flagged=False, interlaced=False)
    assert idet_counts(plain)["progressive"] > 20
    from transcoding.backends import get_backend
    from transcoding.pipeline import detect_field_order

    info = probe(plain)
    assert detect_field_order(get_backend(), plain, info) == "progressive"


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])  # PQ (HDR10), HLG
def test_hdr_source_is_tone_mapped_to_bt709(media_dir, transfer):
    hdr = make_hdr_video(media_dir / f"hdr-{transfer}.mp4", duration=1, transfer=transfer)
    sdr = make_test_video(media_dir / "sdr-reference.mp4", duration=1, audio=False)
    stream = video_stream(hdr)
    assert (stream["color_transfer"], stream["pix_fmt"]) == (transfer, "yuv420p10le")
    video = make_video(hdr, title="HDR")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert job.source_info["hdr"] == transfer and job.source_info["web_playable"] is False
    found = renditions(video)
    top = local(found["hls-180p-media"])
    out = video_stream(top)
    assert (out["pix_fmt"], out["color_transfer"], out["color_primaries"], out["color_space"]) == (
        "yuv420p", "bt709", "bt709", "bt709")
    reference = mean_luma(sdr)
    # Not washed out: the brightness of the same picture made as SDR...
    assert abs(mean_luma(top) - reference) < 16, (mean_luma(top), reference)
    assert abs(mean_luma(local(found["mp4-144p"])) - reference) < 16
    if transfer != "smpte2084":
        return
    # ...which the PQ code values taken as they are (what was published
    # before) are not: the band tells the two apart.
    washed = media_dir / "washed.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(hdr), "-frames:v", "1", "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", str(washed)], check=True, timeout=60)
    assert abs(mean_luma(washed) - reference) > 20


def test_sd_colours_survive_the_bt709_tags(media_dir):
    # BT.601 YUV (SD video), tagged so; the rungs are tagged BT.709, so their
    # YUV must be converted, or reds and greens shift in every browser.
    source = make_test_video(media_dir / "sd-601.mp4", duration=1, audio=False,
                             video_args=("-colorspace", "smpte170m"))
    video = make_video(source, title="SD colours")
    job = transcode(video, ladder=[Rung(180, 500)])
    assert job.status == "ready", job.error
    top = local(renditions(video)["hls-180p-media"])
    assert video_stream(top)["color_space"] == "bt709"
    assert rgb_difference(source, top) < 5.5  # 8.3 when the YUV is only re-tagged


def test_hlg_is_recognised_as_hdr():
    info = fake_info(1920, 1080, color_transfer="arib-std-b67", color_primaries="bt2020")
    assert "HDR" in fast_path_refusal(info)


@pytest.mark.parametrize("kind", ["one frame", "a fifth of a second"])
def test_tiny_clips_end_ready_with_poster_and_storyboard(media_dir, kind):
    path = media_dir / f"{kind}.mp4"
    if kind == "one frame":
        make_test_video(path, duration=1, audio=False, extra_args=("-frames:v", "1"))
    else:
        make_test_video(path, duration=0.2)
    video = make_video(path, title=kind)
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    assert job.playable
    found = renditions(video)
    assert {"poster", "storyboard", "storyboard-vtt", "hls-master", "hls-180p"} <= set(found)
    assert mean_luma(local(found["poster"])) > 30, "the poster shows the picture"
    sprite = video_stream(local(found["storyboard"]))
    assert (sprite["width"], sprite["height"]) == (found["storyboard"].width, found["storyboard"].height)
    assert "storyboard#xywh=0,0,160,90" in local(found["storyboard-vtt"]).read_text()


# ---- audio: every stream an alternate rendition ---------------------------------------


def test_each_audio_language_becomes_an_alternate_rendition(media_dir):
    source = make_multi_audio_video(media_dir / "two-languages.mp4", [("eng", None), ("fra", "Version française")])
    video = make_video(source, title="Two languages")
    job = transcode(video)
    assert job.status == "ready", (job.error, job.stderr_tail)
    found = renditions(video)
    master = local(found["hls-master"]).read_text()
    media = [line for line in master.splitlines() if line.startswith("#EXT-X-MEDIA:")]
    assert media == [
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,'
        'CHANNELS="2",URI="hls-audio1"',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="Version française",LANGUAGE="fr",DEFAULT=NO,'
        'AUTOSELECT=YES,CHANNELS="2",URI="hls-audio2"',
    ]
    variants = [line for line in master.splitlines() if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 3 and all('AUDIO="audio"' in v and ',mp4a.40.2"' in v for v in variants)
    # Packaged once: no rung carries sound, each track is its own file.
    for name in ("hls-180p-media", "hls-90p-media"):
        assert [s["codec_type"] for s in ffprobe_json(local(found[name]))["streams"]] == ["video"]
    for name in ("hls-audio1-media", "hls-audio2-media"):
        streams = ffprobe_json(local(found[name]))["streams"]
        assert [(s["codec_type"], s["codec_name"]) for s in streams] == [("audio", "aac")]
    # The progressive MP4 has the picture and the default (first) track.
    mp4_streams = ffprobe_json(local(found["mp4-144p"]))["streams"]
    assert [s["codec_type"] for s in mp4_streams] == ["video", "audio"]
    assert [t["language"] for t in job.source_info["audio_tracks"]] == ["en", "fr"]


def test_audio_playlists_are_signed_for_viewers(media_dir):
    source = make_multi_audio_video(media_dir / "signed-audio.mp4", [("eng", None), ("deu", None)], duration=1)
    video = make_video(source, title="Signed audio")
    job = transcode(video, ladder=[Rung(144, 300), Rung(90, 150)])
    assert job.status == "ready", job.error
    page = make_video_page(video)
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    master = client.get(f"/hls/{page.pk}/{video.pk}/hls-master.m3u8")
    assert master.status_code == 200
    text = master.content.decode()
    for name in ("hls-audio1", "hls-audio2"):
        assert f'URI="/hls/{page.pk}/{video.pk}/{name}.m3u8"' in text
        playlist = client.get(f"/hls/{page.pk}/{video.pk}/{name}.m3u8")
        assert playlist.status_code == 200
        uris = [line for line in playlist.content.decode().splitlines() if line and not line.startswith("#")]
        media_file = video.renditions.get(name=f"{name}-media").file.name
        assert uris and all(media_file in uri and uri != media_file for uri in uris), uris
    # The player's quality levels are the video rungs, not the audio tracks.
    levels = playback_info(page, video, viewer=new_viewer())["levels"]
    assert [level["name"] for level in levels] == ["hls-90p", "hls-144p"]
    # One quality for a native player: that rung only, with both audio tracks.
    one = client.get(f"/hls/{page.pk}/{video.pk}/hls-master.m3u8?level=hls-144p").content.decode()
    assert [line for line in one.splitlines() if line and not line.startswith("#")] == [
        f"/hls/{page.pk}/{video.pk}/hls-144p.m3u8"]
    assert one.count("#EXT-X-STREAM-INF:") == 1 and one.count("#EXT-X-MEDIA:TYPE=AUDIO") == 2
    for level in ("hls-audio1", "hls-1080p", "../hls-144p"):
        assert client.get(f"/hls/{page.pk}/{video.pk}/hls-master.m3u8", {"level": level}).status_code == 404
    # A stranger gets no audio playlist either.
    stranger = Client()
    stranger.force_login(make_user("stranger"))
    assert stranger.get(f"/hls/{page.pk}/{video.pk}/hls-audio2.m3u8").status_code in (403, 404)


def test_audio_track_names_come_from_the_source():
    def info(*tags):
        streams = [{"codec_type": "video"}] + [
            {"codec_type": "audio", "codec_name": "aac", "channels": 2, "tags": t} for t in tags
        ]
        return MediaInfo(format_name="mp4", duration=1, size=1, bit_rate=1, raw={"streams": streams})

    tracks = plan_audio(info(
        {"language": "eng", "handler_name": "SoundHandler"},
        {"language": "spa", "title": 'Comentario "del" director\nlínea'},
        {"language": "und"},
        {"language": "eng"},
        {"language": "x-evil\"", "handler_name": "Core Media Audio"},
    ))
    assert [(t.language, t.name, t.default) for t in tracks] == [
        ("en", "English", True),
        ("es", "Comentario 'del' director línea", False),
        ("", "Audio 3", False),
        ("en", "English (2)", False),
        ("", "Audio 5", False),
    ]
    assert [t.label for t in tracks] == ["audio1", "audio2", "audio3", "audio4", "audio5"]
    with override_settings(TRANSCODING_MAX_AUDIO_TRACKS=2):
        assert len(plan_audio(info(*[{"language": "eng"}] * 40))) == 2


# ---- the fast path: only what browsers play well ----------------------------------------


def test_fast_path_refuses_what_browsers_play_badly(media_dir):
    assert fast_path_refusal(fake_info(1920, 1080, level=40)) == ""
    assert fast_path_refusal(fake_info(1080, 1920, level=40)) == ""
    assert "3840x2160" in fast_path_refusal(fake_info(3840, 2160, level=51))
    assert "level" in fast_path_refusal(fake_info(1280, 720, level=52))
    assert "bit/s" in fast_path_refusal(fake_info(1920, 1080, bit_rate=40_000_000))
    assert "interlaced" in fast_path_refusal(fake_info(1920, 1080, field_order="tt"))
    assert "non-square" in fast_path_refusal(fake_info(720, 576, sar="16:15"))
    # Keyframes 10 s apart: seeking and switching would stall.
    long_gop = make_test_video(media_dir / "long-gop.mp4", duration=12, fps=10, audio=False, preset="ultrafast",
                               video_args=("-x264-params", "keyint=100:min-keyint=100:scenecut=0"))
    refusal = fast_path_refusal(probe(long_gop), long_gop)
    assert refusal.startswith("keyframes 10"), refusal
    short_gop = make_test_video(media_dir / "short-gop.mp4", duration=4)
    assert fast_path_refusal(probe(short_gop), short_gop) == ""


def test_poster_of_an_hdr_source_is_tone_mapped(media_dir, tmp_path):
    from transcoding.backends import get_backend
    from transcoding.runner import run_ffmpeg

    backend = get_backend()
    hdr = make_hdr_video(media_dir / "poster-hdr.mp4", duration=1)
    sdr = make_test_video(media_dir / "poster-sdr.mp4", duration=1, audio=False)
    lumas = {}
    for name, source in (("hdr", hdr), ("sdr", sdr)):
        out = tmp_path / f"{name}.jpg"
        run_ffmpeg(backend.poster_command(source, probe(source), out, seek=0, width=320, height=180))
        lumas[name] = mean_luma(out)
    assert abs(lumas["hdr"] - lumas["sdr"]) < 16, lumas  # 32 apart when not tone-mapped
