"""The player in Chromium through the real stack (shipped nginx template,
gunicorn): HLS through hls.js and natively, the quality menu, seeking,
storyboard thumbnails, a token refresh mid-playback, and the messages a
viewer without access sees.

Screenshots for the README: `UPDATE_SCREENSHOTS=1 pytest tests/test_player_browser.py`
copies them into docs/screenshots/."""

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client

from media_access.models import ViewerGrant
from transcoding.profiles import Rung
from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .helpers import make_user, make_video, make_video_page
from .media_cache import transcoded_video
from .stack import REPO

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = REPO / "docs" / "screenshots"
LADDER = [Rung(180, 300), Rung(90, 150)]
# Short buffers and segments so that a 24 s clip keeps fetching while it plays.
SMALL_BUFFER = "window.PrivateVideoPlayerConfig = {hls: {maxBufferLength: 4, maxMaxBufferLength: 4}};"


def transcoded_page(tmp_path, *, duration=8, segment_seconds=6):
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / "player clip.mp4", title="Player clip",
                             clip=dict(duration=duration, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=LADDER, TRANSCODING_SEGMENT_SECONDS=segment_seconds,
                                           TRANSCODING_KEYFRAME_SECONDS=min(2, segment_seconds)))
    page = make_video_page(video, title="Player page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer


def add_captions(video, language="en"):
    """A caption track as the library stores one (issue 12: captions are their own objects)."""
    from private_video.captions import import_caption

    text = "WEBVTT\n\n00:00:00.000 --> 00:00:30.000\nHello from the captions track\n"
    return import_caption(video, text.encode(), f"{language}.vtt", language=language, kind="captions",
                          label=language, is_default=True)


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def sign_in(page, stack, cookie):
    page.context.add_cookies([{"name": "sessionid", "value": cookie, "url": stack.base_url}])


def keep_screenshot(source, name):
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, SCREENSHOTS / name)


class Network:
    """Responses the page received for rendition files and playlists."""

    def __init__(self, page):
        self.seen = []
        page.on("response", self._record)

    def _record(self, response):
        if "/stream/" in response.url or "/hls/" in response.url or "/playback/" in response.url:
            self.seen.append((time.monotonic(), response.status, response.url))

    def files(self, since=0.0, containing=""):
        return [(status, url) for at, status, url in self.seen if at >= since and containing in url]


def wait_playing_past(page, seconds, timeout=30_000):
    page.wait_for_function(
        "t => { const v = document.querySelector('.video-player video'); return v && !v.paused && v.currentTime > t; }",
        arg=seconds, timeout=timeout,
    )


def test_hls_js_plays_switches_quality_seeks_and_shows_storyboard(stack, tmp_path, output_dir):
    page_obj, video, viewer = transcoded_page(tmp_path)
    add_captions(video)
    url, cookie = stack.url(page_obj.url) + "?player-engine=hlsjs", session_cookie(viewer)
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        sign_in(page, stack, cookie)
        network = Network(page)
        page.goto(url)
        player = page.locator(".video-player")
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        wait_playing_past(page, 1)
        assert page.evaluate("document.querySelector('.video-player video').src").startswith("blob:")

        # The quality menu: Auto plus each rung, highest first.
        page.locator(".video-player__quality").click()
        items = page.locator(".video-player__menu-item")
        assert items.all_inner_texts() == ["180p", "90p", "Auto"]
        player.screenshot(path=str(output_dir / "player-quality-menu.png"))
        for rung, height in (("90p", 90), ("180p", 180)):
            if not page.locator(".video-player__menu").is_visible():
                page.locator(".video-player__quality").click()
            chosen = time.monotonic()
            page.locator(f'.video-player__menu-item[data-quality="{rung}"]').click()
            # The rendition actually requested changes: bytes of that rung's file.
            page.wait_for_function(
                "h => document.querySelector('.video-player video').videoHeight === h", arg=height, timeout=15_000
            )
            fetched = network.files(since=chosen, containing="/stream/")
            assert any(f"hls-{rung}.m4s" in u for _, u in fetched), fetched
            assert all(status in (200, 206) for status, _ in fetched), fetched
            assert page.locator(".video-player__quality").inner_text() == rung
            assert page.evaluate("document.querySelector('.video-player').dataset.level") == rung

        # Seek to the middle by clicking the middle of the scrub bar.
        scrub = page.locator(".video-player__scrub")
        box = scrub.bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_function(
            "() => { const v = document.querySelector('.video-player video'); return v.currentTime > 4.5 && !v.seeking; }",
            timeout=15_000,
        )
        middle = page.evaluate("document.querySelector('.video-player video').currentTime")
        assert 3.5 < middle < 7.5
        wait_playing_past(page, middle + 0.5)

        # Storyboard thumbnail on hover, from the signed sprite.
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
        thumb = page.locator(".video-player__thumb")
        thumb.wait_for(state="visible")
        image = page.locator(".video-player__thumb-image")
        style = image.evaluate("e => ({bg: e.style.backgroundImage, w: e.offsetWidth, h: e.offsetHeight})")
        assert "/stream/" in style["bg"] and "storyboard" in style["bg"]
        assert style["w"] > 100 and style["h"] > 50
        page.wait_for_function(
            "() => performance.getEntriesByType('resource').some(e => e.name.includes('storyboard'))"
        )
        sprite = [(s, u) for s, u in network.files(containing="/stream/") if "storyboard" in u]
        assert sprite and sprite[-1][0] == 200
        assert "0:06" in page.locator(".video-player__thumb-time").inner_text()
        player.screenshot(path=str(output_dir / "player-playing.png"))

        # Keyboard: focus the player, Home goes to the start, k pauses.
        page.locator(".video-player__stage").focus()
        page.keyboard.press("Home")
        page.wait_for_function("document.querySelector('.video-player video').currentTime < 2")
        page.keyboard.press("k")
        page.wait_for_function("document.querySelector('.video-player video').paused")

        # Captions: hls.js loads the master's subtitles group (a signed WebVTT);
        # the video's default caption shows from the start, C turns it off and on.
        assert page.locator(".video-player__captions").is_visible()
        showing = ("() => { const t = document.querySelector('.video-player video').textTracks[0];"
                   " return t.language === 'en' && t.mode === 'showing' && t.cues && t.cues.length === 1; }")
        page.wait_for_function(showing)
        page.keyboard.press("c")
        page.wait_for_function("document.querySelector('.video-player video').textTracks[0].mode !== 'showing'")
        page.keyboard.press("c")
        page.wait_for_function(showing)
        assert any(s == 200 and u.endswith("/captions.vtt") for s, u in network.files(containing="/stream/"))
        assert page.evaluate(
            "document.querySelector('.video-player video').textTracks[0].cues[0].text"
        ) == "Hello from the captions track"
        errors = [u for s, u in network.files() if s >= 400]
    assert not errors, errors
    keep_screenshot(output_dir / "player-playing.png", "player-playing.png")
    keep_screenshot(output_dir / "player-quality-menu.png", "player-quality-menu.png")


# short_token_stack (8 s tokens): tests/conftest.py, shared with other modules.


def _in_thread(function):
    # Django's ORM refuses to run inside Playwright's event loop thread.
    def run():
        try:
            function()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_playback_continues_across_token_refreshes_then_stops_after_revocation(
    short_token_stack, tmp_path, output_dir
):
    stack = short_token_stack
    page_obj, video, viewer = transcoded_page(tmp_path, duration=24, segment_seconds=2)
    url, cookie = stack.url(page_obj.url) + "?player-engine=hlsjs", session_cookie(viewer)
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        page.add_init_script(SMALL_BUFFER)
        sign_in(page, stack, cookie)
        network = Network(page)
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'hlsjs'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        started = time.monotonic()
        wait_playing_past(page, 20, timeout=45_000)
        assert time.monotonic() - started > 18  # really played, not skipped
        segments = network.files(containing="/stream/")
        # Fetched under three or more tokens (8 s each), every one accepted.
        expiries = {u.split("/stream/", 1)[1].split("/")[1] for _, u in segments}
        assert len(expiries) >= 3, expiries
        assert segments and all(status in (200, 206) for status, _ in segments), segments
        stalls = page.evaluate("document.querySelector('.video-player video').getVideoPlaybackQuality().droppedVideoFrames")
        assert stalls < 30

        # Revoked: no new token; within the lifetime the player says so.
        _in_thread(lambda: viewer.groups.clear())
        revoked = time.monotonic()
        page.evaluate("document.querySelector('.video-player video').currentTime = 1")
        page.locator(".video-player__message").wait_for(state="visible", timeout=20_000)
        assert time.monotonic() - revoked < 8 + 4
        assert "do not have access" in page.locator(".video-player__message").inner_text()
        assert page.locator(".video-player video").count() == 0


def test_viewer_without_access_sees_a_message_not_a_player(stack, tmp_path, output_dir):
    # The message needs no renditions: a plain upload on a granted page.
    clip = make_test_video(tmp_path / "clip.mp4", duration=1, width=320, height=180)
    page_obj = make_video_page(make_video(clip, title="Player clip"), title="Player page")
    ViewerGrant.objects.create(page=page_obj, group=Group.objects.create(name="Members"))
    stranger = make_user("stranger")
    page_url, cookie = stack.url(page_obj.url), session_cookie(stranger)
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        network = Network(page)
        page.goto(page_url)
        message = page.locator(".video-player__message")
        assert "Sign in" in message.inner_text()
        href = message.locator("a").get_attribute("href")
        # The page renders this message itself for a signed-out visitor, with a way back to the page.
        assert href.startswith("/login/?") and parse_qs(urlsplit(href).query) == {"next": [page_obj.url]}, href
        sign_in(page, stack, cookie)
        page.goto(page_url)
        assert "do not have access" in message.inner_text()
        assert "Ask" in message.inner_text()
        assert page.locator(".video-player video").count() == 0
        # The message box keeps the video's shape (no layout shift when it loads).
        box = page.locator(".video-player__stage").bounding_box()
        assert box["width"] / box["height"] == pytest.approx(16 / 9, rel=0.02)
        page.locator(".video-player").screenshot(path=str(output_dir / "player-unauthorised.png"))
    assert not network.files(containing="/stream/")
    keep_screenshot(output_dir / "player-unauthorised.png", "player-unauthorised.png")


def test_a_session_gone_before_the_player_asks_gets_a_sign_in_link_back_to_the_page(stack, tmp_path, output_dir):
    """The page is rendered for a member, but the playback JSON is the real
    answer to someone signed out (as when the session ends in between): the
    player builds the sign-in link itself, since the JSON names no page."""
    clip = make_test_video(tmp_path / "clip.mp4", duration=1, width=320, height=180)
    page_obj = make_video_page(make_video(clip, title="Members clip"), title="Members page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page_obj, group=members)
    member = make_user("member")
    member.groups.add(members)
    try:
        urllib.request.urlopen(stack.url(f"/playback/{page_obj.pk}/{page_obj.video.pk}/"))
        raise AssertionError("the playback JSON answered a signed-out request")
    except urllib.error.HTTPError as error:
        status, signed_out = error.code, error.read()
    assert status == 403 and json.loads(signed_out)["reason"] == "login_required", signed_out
    cookie, path = session_cookie(member), page_obj.url
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        sign_in(page, stack, cookie)
        page.route("**/playback/**", lambda route: route.fulfill(
            status=403, content_type="application/json", body=signed_out))
        page.goto(stack.url(path))
        message = page.locator(".video-player__message")
        message.wait_for(state="visible", timeout=20_000)
        assert "Sign in" in message.inner_text()
        href = message.locator("a").get_attribute("href")
        assert href.startswith("/login/?") and parse_qs(urlsplit(href).query) == {"next": [path]}, href


def test_native_hls_plays_and_continues_across_token_refreshes(short_token_stack, tmp_path, output_dir):
    stack = short_token_stack
    # The browser make test installs plays HLS natively; one that cannot is a
    # broken set-up, and this test fails (before the transcode) rather than skip.
    with chromium_page(output_dir) as probe:
        assert probe.evaluate("document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"), (
            "this Chromium cannot play HLS natively: the native-HLS path would go untested"
        )
    page_obj, video, viewer = transcoded_page(tmp_path, duration=24, segment_seconds=2)
    url, cookie = stack.url(page_obj.url), session_cookie(viewer)
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        sign_in(page, stack, cookie)
        network = Network(page)
        page.goto(url)
        page.wait_for_function("document.querySelector('.video-player').dataset.engine === 'native'")
        page.evaluate("document.querySelector('.video-player video').muted = true")
        page.locator(".video-player__play").click()
        started = time.monotonic()
        wait_playing_past(page, 20, timeout=60_000)
        assert time.monotonic() - started > 18
        assert page.locator(".video-player__message").count() == 0
        state = page.evaluate(
            "(() => { const v = document.querySelector('.video-player video');"
            " return {src: v.currentSrc, w: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames}; })()"
        )
    assert state["src"].endswith(f"/hls/{page_obj.pk}/{video.pk}/hls-master.m3u8")
    assert state["w"] > 0 and state["frames"] > 0
    # The native player cannot take new URLs: the source was reloaded with fresh playlists.
    masters = [u for s, u in network.files(containing="hls-master.m3u8") if s == 200]
    assert len(masters) >= 3, masters
    segments = network.files(containing="/stream/")
    expiries = {u.split("/stream/", 1)[1].split("/")[1] for _, u in segments}
    assert len(expiries) >= 2, expiries
    assert all(status in (200, 206) for status, _ in segments), segments
