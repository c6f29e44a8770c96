"""A permitted viewer plays a VideoPage in Chromium and seeks to the middle;
an anonymous visitor cannot play it. Real nginx + gunicorn behind it."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from media_access.models import ViewerGrant
from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .helpers import make_user, make_video, make_video_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

def browser_context(output_dir, stack, session_cookie=None):
    return chromium_page(
        output_dir, viewport=(1000, 700), session_cookie=session_cookie, base_url=stack.base_url
    )


@pytest.fixture
def private_page(tmp_path):
    clip = make_test_video(tmp_path / "browser clip.mp4", duration=8, width=320, height=180)
    video = make_video(clip, title="Browser clip")
    page = make_video_page(video, title="Browser page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer


def session_cookie_for(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


PLAY_AND_SEEK = """
async () => {
  const video = document.querySelector("video.video-player__video");
  const until = (predicate, what, ms = 15000) => new Promise((resolve, reject) => {
    const started = performance.now();
    const tick = () => {
      if (predicate()) return resolve();
      if (performance.now() - started > ms) return reject(new Error("timed out waiting for " + what + " (currentTime=" + video.currentTime + ", error=" + (video.error && video.error.code) + ")"));
      setTimeout(tick, 50);
    };
    tick();
  });
  video.muted = true;
  await video.play();
  await until(() => video.currentTime > 0.3, "playback to start");
  const framesBefore = video.getVideoPlaybackQuality().totalVideoFrames;
  const middle = video.duration / 2;
  const seeked = new Promise((resolve) => video.addEventListener("seeked", resolve, {once: true}));
  video.currentTime = middle;
  await seeked;
  await until(() => video.currentTime > middle + 0.5, "playback past the seek point");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0, distinct = new Set();
  for (let i = 0; i < pixels.length; i += 4 * 97) {
    if (pixels[i] + pixels[i + 1] + pixels[i + 2] > 60) lit++;
    distinct.add((pixels[i] >> 4) + "," + (pixels[i + 1] >> 4) + "," + (pixels[i + 2] >> 4));
  }
  return {
    duration: video.duration, middle, currentTime: video.currentTime,
    framesBefore, framesAfter: video.getVideoPlaybackQuality().totalVideoFrames,
    width: video.videoWidth, height: video.videoHeight, lit, colours: distinct.size,
    src: video.currentSrc,
  };
}
"""


def test_permitted_viewer_plays_and_seeks_to_the_middle(stack, private_page, output_dir):
    page, video, viewer = private_page
    # Django's ORM refuses to run inside Playwright's event loop: resolve first.
    page_url, cookie = stack.url(page.url), session_cookie_for(viewer)
    with browser_context(output_dir, stack, cookie) as browser:
        ranges = []
        browser.on(
            "response",
            lambda r: ranges.append((r.status, r.request.headers.get("range")))
            if "/watch/" in r.url else None,
        )
        browser.goto(page_url)
        result = browser.evaluate(PLAY_AND_SEEK)
        browser.screenshot(path=str(output_dir / "playing.png"))
    assert result["src"] == stack.url(f"/watch/{page.pk}/{video.pk}/original/")
    assert result["duration"] == pytest.approx(8, abs=0.2)
    assert result["currentTime"] > result["middle"] + 0.5
    assert result["framesAfter"] > result["framesBefore"] > 0
    assert (result["width"], result["height"]) == (320, 180)
    # testsrc2 is a colourful moving pattern: a decoded frame is neither black nor flat.
    assert result["lit"] > 50 and result["colours"] > 8
    assert ranges and all(status in (200, 206) for status, _ in ranges)


def test_anonymous_visitor_cannot_play(stack, private_page, output_dir):
    page, video, viewer = private_page
    watch = stack.url(f"/watch/{page.pk}/{video.pk}/original/")
    page_url = stack.url(page.url)
    with browser_context(output_dir, stack) as browser:
        browser.goto(page_url)
        assert browser.locator("video").count() == 0
        message = browser.locator(".video-player__message")
        assert "Sign in" in message.inner_text()
        # Even pointing a video element at the endpoint gets no media.
        outcome = browser.evaluate(
            """async (src) => {
                const video = document.createElement("video");
                video.muted = true;
                document.body.appendChild(video);
                const result = new Promise((resolve) => {
                  video.addEventListener("error", () => resolve({error: video.error.code}));
                  video.addEventListener("loadeddata", () => resolve({loaded: true}));
                });
                video.src = src;
                return await Promise.race([result, new Promise(r => setTimeout(() => r({timeout: true}), 8000))]);
            }""",
            watch,
        )
        assert outcome.get("error") in (2, 4), outcome
        fetched = browser.evaluate(
            "async (src) => { const r = await fetch(src, {redirect: 'manual'}); return r.type; }", watch
        )
        assert fetched == "opaqueredirect"


def test_pressing_play_before_the_player_takes_over_keeps_playing(stack, private_page, output_dir):
    # The viewer presses play on the plain <video> while the player's JSON is
    # still on its way; when the player then takes over the element, the
    # video must go on playing, not stop at 0:00 (it did: load() reset it).
    page, video, viewer = private_page
    page_url, cookie = stack.url(page.url), session_cookie_for(viewer)
    held = []
    with browser_context(output_dir, stack, cookie) as browser:
        browser.route("**/playback/**", lambda route: held.append(route))
        browser.goto(page_url)
        browser.evaluate("""async () => {
          const video = document.querySelector("video.video-player__video");
          video.muted = true;
          await video.play();
          const started = performance.now();
          while (video.currentTime <= 0.3) {
            if (performance.now() - started > 15000) throw new Error("the plain <video> did not play");
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }""")
        assert len(held) == 1, "the player asked for its JSON once, and it is still held"
        assert browser.evaluate("document.querySelector('.video-player').dataset.engine") is None
        held[0].continue_()
        browser.wait_for_function("document.querySelector('.video-player').dataset.engine", timeout=15000)
        at_takeover = browser.evaluate("document.querySelector('video.video-player__video').currentTime")
        browser.wait_for_function(
            f"(() => {{ const v = document.querySelector('video.video-player__video');"
            f" return !v.paused && v.currentTime > {at_takeover} + 1; }})()",
            timeout=15000,
        )
        state = browser.evaluate("""() => {
          const v = document.querySelector("video.video-player__video");
          return {paused: v.paused, src: v.currentSrc};
        }""")
    assert state["paused"] is False
    assert state["src"] == stack.url(f"/watch/{page.pk}/{video.pk}/original/")
