"""Alternate audio in Chromium through the real stack: a video with two
languages offers both in the player's audio menu, and choosing one makes
hls.js switch to that rendition (its playlist and bytes are fetched) while
the quality menu keeps working."""

import time

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from media_access.models import ViewerGrant
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import make_multi_audio_video

from .browser import chromium_page
from .helpers import make_user, make_video, make_video_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LADDER = [Rung(180, 300), Rung(90, 150)]


def two_language_page(tmp_path, tracks):
    clip = make_multi_audio_video(tmp_path / "two languages.mp4", tracks, duration=8)
    video = make_video(clip, title="Two languages")
    with override_settings(TRANSCODING_LADDER=LADDER, TRANSCODING_SEGMENT_SECONDS=2, TRANSCODING_KEYFRAME_SECONDS=2):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", (job.error, job.stderr_tail)
    page = make_video_page(video, title="Languages page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    return page, video, client.cookies["sessionid"].value


def test_player_offers_each_audio_language_and_hls_js_switches(stack, tmp_path, output_dir):
    page_obj, video, cookie = two_language_page(tmp_path, [("eng", None), ("fra", None)])
    url = stack.url(page_obj.url) + "?player-engine=hlsjs"
    requests = []
    with chromium_page(output_dir, viewport=(640, 480), session_cookie=cookie, base_url=stack.base_url) as page:
        page.on("response", lambda r: requests.append((time.monotonic(), r.status, r.url)))
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        page.wait_for_function(
            "() => { const v = document.querySelector('.video-player video'); return !v.paused && v.currentTime > 0.5; }"
        )
        audio_button = page.locator(".video-player__audio")
        assert audio_button.is_visible()
        assert audio_button.inner_text() == "English"
        audio_button.click()
        items = page.locator(".video-player__audio-item")
        assert items.all_inner_texts() == ["English", "Français"]
        assert items.nth(0).get_attribute("aria-checked") == "true"
        assert items.nth(1).get_attribute("lang") == "fr"
        page.locator(".video-player").screenshot(path=str(output_dir / "player-audio-menu.png"))

        chosen = time.monotonic()
        items.nth(1).click()
        page.wait_for_function(
            "document.querySelector('.video-player__stage').playerInstance.hls.audioTrack === 1", timeout=15_000
        )
        # hls.js really fetched the French rendition: its playlist, then its bytes.
        page.wait_for_function(
            "() => performance.getEntriesByType('resource').some((e) => e.name.includes('hls-audio2.m4s'))",
            timeout=15_000,
        )
        fetched = [(status, url) for at, status, url in requests if at >= chosen]
        assert any("/hls-audio2.m3u8" in url and status == 200 for status, url in fetched), fetched
        assert any("hls-audio2.m4s" in url and status in (200, 206) for status, url in fetched), fetched
        assert audio_button.inner_text() == "Français"
        assert page.evaluate("document.querySelector('.video-player').dataset.audioTrack") == "Français"
        # Playback goes on with the other language.
        at = page.evaluate("document.querySelector('.video-player video').currentTime")
        page.wait_for_function(
            "t => document.querySelector('.video-player video').currentTime > t + 1", arg=at, timeout=15_000
        )

        # The quality menu still lists the video rungs only.
        page.locator(".video-player__quality").click()
        assert page.locator(".video-player__menu-item").all_inner_texts() == ["180p", "90p", "Auto"]
        assert page.locator(".video-player__audio-menu").is_hidden()
    assert all(status in (200, 206) for _, status, url in requests if "/stream/" in url)


def test_one_audio_track_shows_no_audio_menu(stack, tmp_path, output_dir):
    page_obj, video, cookie = two_language_page(tmp_path, [("eng", None)])
    url = stack.url(page_obj.url) + "?player-engine=hlsjs"
    with chromium_page(output_dir, viewport=(640, 480), session_cookie=cookie, base_url=stack.base_url) as page:
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.wait_for_function(
            "document.querySelector('.video-player__stage').playerInstance.hls.audioTracks.length === 1"
        )
        assert page.locator(".video-player__audio").is_hidden()
        assert page.locator(".video-player__audio-item").count() == 0


def test_native_hls_keeps_the_sound_when_a_quality_is_chosen(stack, tmp_path, output_dir):
    page_obj, video, cookie = two_language_page(tmp_path, [("eng", None), ("fra", None)])
    url = stack.url(page_obj.url) + "?player-engine=native"
    requests = []
    with chromium_page(output_dir, viewport=(640, 480), session_cookie=cookie, base_url=stack.base_url) as page:
        page.on("response", lambda r: requests.append((time.monotonic(), r.status, r.url)))
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'native'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        page.wait_for_function("document.querySelector('.video-player video').currentTime > 0.5")
        chosen = time.monotonic()
        page.locator(".video-player__quality").click()
        page.locator('.video-player__menu-item[data-quality="90p"]').click()
        page.wait_for_function("document.querySelector('.video-player video').videoHeight === 90", timeout=15_000)
        src = page.evaluate("document.querySelector('.video-player video').currentSrc")
        # Held to one rung through the master, which still names the sound.
        assert src.endswith("/hls-master.m3u8?level=hls-90p"), src
        # The sound of the reloaded source is fetched again (its bytes, signed).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            at >= chosen and "hls-audio1.m4s" in url for at, _, url in requests
        ):
            page.wait_for_timeout(200)
    fetched = [(status, url) for at, status, url in requests if at >= chosen]
    assert any("hls-audio1.m4s" in url and status in (200, 206) for status, url in fetched), fetched
    assert any("hls-master.m3u8?level=hls-90p" in url and status == 200 for status, url in fetched), fetched
    assert any("/hls-audio1.m3u8" in url and status == 200 for status, url in fetched), fetched


def test_portrait_rungs_are_named_by_their_short_side_in_the_quality_menu(stack, tmp_path, output_dir):
    from transcoding.testmedia import make_test_video

    clip = make_test_video(tmp_path / "portrait.mp4", duration=4, width=180, height=320)
    video = make_video(clip, title="Portrait")
    with override_settings(TRANSCODING_LADDER=LADDER):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", job.error
    page_obj = make_video_page(video, title="Portrait page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page_obj, group=members)
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    url = stack.url(page_obj.url) + "?player-engine=hlsjs"
    with chromium_page(output_dir, viewport=(640, 480), session_cookie=client.cookies["sessionid"].value,
                       base_url=stack.base_url) as page:
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        page.wait_for_function("document.querySelector('.video-player video').currentTime > 0.3")
        page.locator(".video-player__quality").click()
        # 180x320 and 90x160: the names the server gives them, not their heights.
        assert page.locator(".video-player__menu-item").all_inner_texts() == ["180p", "90p", "Auto"]
        page.locator('.video-player__menu-item[data-quality="90p"]').click()
        page.wait_for_function("document.querySelector('.video-player video').videoWidth === 90", timeout=15_000)
        assert page.evaluate("document.querySelector('.video-player video').videoHeight") == 160
