"""Captions, chapters, the chosen poster and resume in Chromium through the real
stack (shipped nginx template, gunicorn), on one transcoded video shared by the
whole module (one transcode: the module stays quick).

The clip is three solid colours, four seconds each (red, green, blue), so the
frame at any time has a known colour: the chosen poster (at 10 s) is blue,
the transcoder's own (at 3 s) would be red. Two caption tracks (French, the
default, and Arabic), uploaded by an editor through the admin, carry
accents, CJK, right-to-left text and an emoji.

Screenshots for the README: `UPDATE_SCREENSHOTS=1 pytest tests/test_captions_browser.py`
copies them into docs/screenshots/."""

import io
import os
import shutil
import time
import types

import pytest
from django.test import override_settings
from PIL import Image, ImageChops

from transcoding.testmedia import make_colour_video

from .browser import chromium_page
from .stack import REPO

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = REPO / "docs" / "screenshots"
COLOURS = [("red", (255, 0, 0)), ("lime", (0, 255, 0)), ("blue", (0, 0, 255))]
PART = 4  # seconds of each colour
POSTER_AT = 10.0

FRENCH = (
    "1\n00:00:00,000 --> 00:00:05,500\nÇa commence : déjà l’été à Zürich 😀\n\n"
    "2\n00:00:05,500 --> 00:00:12,000\nDeuxième partie, 東京で会いましょう\n"
)
ARABIC = (
    "1\n00:00:00,000 --> 00:00:05,500\nمرحبا بكم في الفيديو 🎬\n\n"
    "2\n00:00:05,500 --> 00:00:12,000\nالجزء الثاني مع 日本語\n"
)
FRENCH_CUES = ["Ça commence : déjà l’été à Zürich 😀", "Deuxième partie, 東京で会いましょう"]
ARABIC_CUES = ["مرحبا بكم في الفيديو 🎬", "الجزء الثاني مع 日本語"]
# Half a second into each colour: the frame at a chapter's start has its colour.
CHAPTERS = [(0.0, "Rouge"), (4.5, "Vert"), (8.5, "Bleu")]


def make_colour_clip(path):
    """Red, then green, then blue (PART seconds each), 320x180, with a tone."""
    return make_colour_video(path, [name for name, _ in COLOURS], seconds_each=PART, tone=True)


def restore_initial_data():
    """A transactional test before this module may have flushed the database
    (pytest-django restores it only for the next such test): bring back what
    the migrations made (root collection, root page, site)."""
    from django.db import connection
    from wagtail.models import Collection

    contents = getattr(connection, "_test_serialized_contents", None)
    if contents and not Collection.objects.exists():
        connection.creation.deserialize_db_from_string(contents)


def session_cookie(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def upload_caption(stack, session, video, data, filename, **fields):
    """An editor adds a caption track through the video's edit view in the admin."""
    from django.urls import reverse

    from .helpers import csrf_token

    url = stack.url(reverse("private_video:caption_add", args=[video.pk]))
    form = {"csrfmiddlewaretoken": csrf_token(session, url), **fields}
    response = session.post(url, data=form, files={"file": (filename, data, "application/x-subrip")},
                            headers={"Referer": url}, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[-3000:]
    return video.captions.get(language=fields["language"])


def prepare_world(stack, tmp_path_factory, django_db_blocker, *, prefix="captions", ladder=((180, 300),)):
    """One transcoded colour clip with two caption languages, chapters and a
    chosen poster, on a page a viewer may watch. Made once per module (one
    transcode); returned with a snapshot of the database, which each test
    loads again (every integration test ends with the database flushed: the
    stack's gunicorn must see committed rows, so no test runs in a transaction)."""
    from django.contrib.auth.models import Group
    from django.db import connection

    from media_access.models import ViewerGrant
    from wagtail.models import Collection

    from private_video.captions import set_chapters, set_poster_frame
    from transcoding.profiles import Rung
    from transcoding.tasks import enqueue_transcode

    from .helpers import collection_group, make_user, make_video, make_video_page, stack_session

    folder = tmp_path_factory.mktemp(prefix)
    clip = make_colour_clip(folder / "colours.mp4")
    with django_db_blocker.unblock():
        restore_initial_data()
        video = make_video(clip, title="Colours")
        with override_settings(TRANSCODING_LADDER=[Rung(*rung) for rung in ladder], TRANSCODING_SEGMENT_SECONDS=2,
                               TRANSCODING_KEYFRAME_SECONDS=2):
            job = enqueue_transcode(video)
        job.refresh_from_db()
        assert job.status == "ready", (job.error, job.stderr_tail)
        video.refresh_from_db()
        editor = make_user(f"{prefix}-editor", groups=[collection_group(
            f"{prefix} editors", Collection.get_first_root_node(), "add_video", "change_video")])
        session = stack_session(editor)
        french = upload_caption(stack, session, video, FRENCH.encode(), "français.srt", language="fr",
                                kind="subtitles", label="Français", is_default="on")
        # With a byte order mark, as some editors save SRT files.
        arabic = upload_caption(stack, session, video, ARABIC.encode("utf-8-sig"), "arabic.srt", language="ar",
                                kind="subtitles", label="العربية")
        assert french.is_default and not arabic.is_default
        set_chapters(video, CHAPTERS)
        set_poster_frame(video, POSTER_AT)
        page = make_video_page(video, title="Colours page")
        members = Group.objects.create(name=f"{prefix} members")
        ViewerGrant.objects.create(page=page, group=members)
        viewer = make_user(f"{prefix}-viewer", groups=[members])
        return types.SimpleNamespace(
            page=page, video=video, viewer=viewer, cookie=session_cookie(viewer), french=french, arabic=arabic,
            url=page.url, playback=f"/playback/{page.pk}/{video.pk}/",
            snapshot=connection.creation.serialize_db_to_string(),
        )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, django_db_blocker, stack):
    return prepare_world(stack, tmp_path_factory, django_db_blocker)


@pytest.fixture
def world(prepared, transactional_db):
    """The prepared video, page and viewer, in the database again for this test."""
    load_snapshot(prepared.snapshot)
    return prepared


def load_snapshot(snapshot):
    """Django's deserialize_db_from_string, but media_access's rows last: its
    log handlers (post_save, not raw-aware) read a grant's page and group."""
    from django.core import serializers
    from django.db import connection, transaction

    objects = list(serializers.deserialize("json", snapshot))
    objects.sort(key=lambda obj: obj.object._meta.app_label == "private_video_access")
    with transaction.atomic(), connection.constraint_checks_disabled():
        for obj in objects:
            obj.save()
        connection.check_constraints()


def keep_screenshot(source, name):
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, SCREENSHOTS / name)


def open_player(page, stack, world, engine):
    failed = []
    page.on("response", lambda r: failed.append((r.status, r.url)) if r.status >= 400 else None)
    page.on("console", lambda m: failed.append((m.type, m.text)) if m.type in ("error", "warning") else None)
    page.context.add_cookies([{"name": "sessionid", "value": world.cookie, "url": stack.base_url}])
    page.goto(stack.url(world.url) + f"?player-engine={engine}")
    try:
        page.wait_for_function("e => document.querySelector('.video-player').dataset.engine === e", arg=engine)
    except Exception:
        raise AssertionError(f"the player did not start on {engine}: {failed}") from None
    page.evaluate("document.querySelector('.video-player video').muted = true")


def seek_and_wait(page, seconds):
    page.evaluate("t => { document.querySelector('.video-player video').currentTime = t; }", seconds)
    page.wait_for_function(
        "t => { const v = document.querySelector('.video-player video');"
        " return Math.abs(v.currentTime - t) < 0.3 && !v.seeking && v.readyState >= 2; }",
        arg=seconds, timeout=15_000,
    )


ACTIVE_CUES = """() => {
  const tracks = Array.from(document.querySelector('.video-player video').textTracks);
  return tracks.map(t => ({lang: t.language, mode: t.mode, active: t.activeCues ? Array.from(t.activeCues, c => c.text) : null}));
}"""


def wait_cue(page, lang, text, timeout=15_000):
    """Wait until the track in ``lang`` is the one showing and its active cue is ``text``."""
    try:
        page.wait_for_function(
            """([lang, text]) => {
              const tracks = Array.from(document.querySelector('.video-player video').textTracks);
              const showing = tracks.filter(t => t.mode === 'showing');
              return showing.length === 1 && showing[0].language === lang && showing[0].activeCues
                && Array.from(showing[0].activeCues).some(c => c.text === text);
            }""",
            arg=[lang, text], timeout=timeout,
        )
    except Exception:
        raise AssertionError((lang, text, page.evaluate(ACTIVE_CUES))) from None


def stage_image(page):
    """The video's box as pixels (controls hidden, so only video and cue show)."""
    page.add_style_tag(content=".video-player__controls, .video-player__resume { visibility: hidden !important; }")
    page.mouse.move(0, 0)
    return Image.open(io.BytesIO(page.locator(".video-player video").screenshot())).convert("RGB")


def changed_box(before, after, threshold=60):
    """The bounding box of pixels that differ clearly between two shots, and how many."""
    diff = ImageChops.difference(before, after).convert("L").point(lambda v: 255 if v > threshold else 0)
    return diff.getbbox(), diff.histogram()[255]


@pytest.mark.parametrize("engine", ["hlsjs", "native"])
def test_viewer_switches_caption_language_and_sees_the_right_cue(stack, world, engine, output_dir):
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        if engine == "native":
            assert page.evaluate("document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"), (
                "this Chromium cannot play HLS natively: the native-HLS path would go untested"
            )
        open_player(page, stack, world, engine)
        player = page.locator(".video-player")
        # The video's default caption (French) is on without asking.
        seek_and_wait(page, 1.0)
        wait_cue(page, "fr", FRENCH_CUES[0])
        assert player.get_attribute("data-captions") == "fr"

        # The menu lists Off and every language (each item in its own language).
        page.locator(".video-player__captions").click()
        items = page.locator(".video-player__captions-item")
        assert items.all_inner_texts() == ["Off", "Français", "العربية"]
        assert items.nth(2).get_attribute("lang") == "ar"
        assert items.nth(1).get_attribute("aria-checked") == "true"
        player.screenshot(path=str(output_dir / "player-captions-menu.png"))
        items.nth(2).click()
        wait_cue(page, "ar", ARABIC_CUES[0])
        seek_and_wait(page, 7.0)
        wait_cue(page, "ar", ARABIC_CUES[1])

        # On screen: the cue's pixels are there with captions on, gone with Off.
        with_cue = stage_image(page)
        with_cue.save(output_dir / f"cue-{engine}-ar.png")
        page.locator(".video-player").evaluate(
            "e => e.querySelector('.video-player__stage').playerInstance.chooseCaption(null)"
        )
        page.wait_for_function(
            "() => Array.from(document.querySelector('.video-player video').textTracks)"
            ".every(t => t.mode !== 'showing')"
        )
        page.wait_for_timeout(300)
        without = stage_image(page)
        without.save(output_dir / f"cue-{engine}-off.png")
        box, count = changed_box(without, with_cue)
        assert box is not None and count > 300, (box, count)
        width, height = with_cue.size
        # Where captions go: the lower half, not the whole frame.
        assert box[1] > height * 0.45 and box[3] <= height, (box, with_cue.size)
        assert (box[2] - box[0]) < width * 0.95, box

        # The choice is remembered: a new visit starts in Arabic... unless Off.
        page.evaluate(
            "document.querySelector('.video-player__stage').playerInstance.chooseCaption(%d)" % world.arabic.pk
        )
        page.reload()
        page.wait_for_function(
            "e => document.querySelector('.video-player').dataset.engine === e", arg=engine
        )
        seek_and_wait(page, 1.0)
        wait_cue(page, "ar", ARABIC_CUES[0])
    keep_screenshot(output_dir / "player-captions-menu.png", "player-captions-menu.png")


def test_chapter_markers_sit_at_their_times_and_choosing_one_seeks(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        open_player(page, stack, world, "hlsjs")
        page.wait_for_function("document.querySelectorAll('.video-player__chapter-marker').length === 2")
        page.wait_for_function("Number.isFinite(document.querySelector('.video-player video').duration)")
        duration = page.evaluate("document.querySelector('.video-player video').duration")
        assert duration == pytest.approx(PART * len(COLOURS), abs=0.2)
        scrub = page.locator(".video-player__scrub").bounding_box()
        markers = page.locator(".video-player__chapter-marker")
        for index, (start, title) in enumerate(CHAPTERS[1:]):
            marker = markers.nth(index)
            assert float(marker.get_attribute("data-start")) == start
            assert marker.get_attribute("title") == title
            marker.wait_for(state="visible")
            box = marker.bounding_box()
            centre = (box["x"] + box["width"] / 2 - scrub["x"]) / scrub["width"]
            assert centre == pytest.approx(start / duration, abs=0.01), (title, centre)

        # The chapters menu: one item per chapter, choosing one seeks to its start.
        page.locator(".video-player__chapters").click()
        items = page.locator(".video-player__chapter-item")
        assert items.all_inner_texts() == ["0:00 Rouge", "0:04 Vert", "0:08 Bleu"]
        page.locator(".video-player").screenshot(path=str(output_dir / "player-chapters.png"))
        items.nth(2).click()
        page.wait_for_function(
            "() => { const v = document.querySelector('.video-player video');"
            " return Math.abs(v.currentTime - 8.5) < 0.2 && !v.seeking; }"
        )
        assert page.locator(".video-player").get_attribute("data-chapter") == "Bleu"
        # The frame shown is the blue chapter's.
        page.wait_for_function("document.querySelector('.video-player video').readyState >= 2")
        r, g, b = stage_image(page).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        assert b > 150 and r < 90 and g < 90, (r, g, b)

        # Keys: p goes back a chapter, n forward.
        page.locator(".video-player__stage").focus()
        page.keyboard.press("p")
        page.wait_for_function("Math.abs(document.querySelector('.video-player video').currentTime - 4.5) < 0.2")
        page.keyboard.press("n")
        page.wait_for_function("Math.abs(document.querySelector('.video-player video').currentTime - 8.5) < 0.2")
    keep_screenshot(output_dir / "player-chapters.png", "player-chapters.png")


def test_the_chosen_poster_frame_is_the_one_shown(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        responses = []
        page.on("response", lambda r: responses.append((r.status, r.url, r.headers.get("content-type", ""))))
        page.context.add_cookies([{"name": "sessionid", "value": world.cookie, "url": stack.base_url}])
        page.goto(stack.url(world.url))
        page.wait_for_function("document.querySelector('.video-player video').poster !== ''")
        poster = page.evaluate("document.querySelector('.video-player video').poster")
        # The library's own poster file (a signed URL like every other file).
        assert "/stream/" in poster and world.video.poster_file.name.rsplit("/", 1)[-1] in poster, poster
        page.wait_for_function(
            "src => performance.getEntriesByType('resource').some(e => e.name === src)", arg=poster
        )
        assert [s for s, u, _ in responses if u == poster] == [200]
        # Not started: what shows is the poster, and it is the frame at 10 s (blue).
        assert page.evaluate("document.querySelector('.video-player video').currentTime") == 0
        r, g, b = stage_image(page).resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
        assert b > 150 and r < 90 and g < 90, (r, g, b)


def test_resume_offered_after_leaving_at_seven_seconds(stack, world, output_dir):
    with chromium_page(output_dir, viewport=(640, 480)) as page:
        open_player(page, stack, world, "hlsjs")
        # Nothing to resume yet.
        assert page.locator(".video-player__resume").count() == 0
        seek_and_wait(page, 5.5)
        page.locator(".video-player__play").click()
        page.wait_for_function(
            "() => document.querySelector('.video-player video').currentTime >= 7.05", timeout=15_000
        )
        page.locator(".video-player__play").click()
        left_at = page.evaluate("document.querySelector('.video-player video').currentTime")
        assert 7.0 <= left_at < 8.0
        # Leave: the position goes with the page (pagehide beacon).
        page.goto("about:blank")
        deadline = time.monotonic() + 10
        resume = None
        while time.monotonic() < deadline:
            resume = page.request.get(stack.url(world.playback)).json()["resume"]
            if resume and resume["position"] and resume["position"] >= 7:
                break
            time.sleep(0.2)
        assert resume["position"] == pytest.approx(left_at, abs=0.2), resume

        # Back: "Resume from 0:07" is offered and takes the viewer there.
        open_player(page, stack, world, "hlsjs")
        button = page.locator(".video-player__resume")
        assert button.inner_text() == "Resume from 0:07"
        assert page.evaluate("document.querySelector('.video-player video').currentTime") < 1
        button.click()
        page.wait_for_function(
            "() => { const v = document.querySelector('.video-player video'); return v.currentTime >= 7 && !v.paused; }"
        )
        assert page.locator(".video-player__resume").count() == 0
        at = page.evaluate("document.querySelector('.video-player video').currentTime")
        assert 7.0 <= at < 9.5
