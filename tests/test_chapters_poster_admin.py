"""Chapters and the editor's poster in the video library's admin: chapters
as rows or pasted "00:00 Title" lines (a bad line named, nothing changed);
a poster uploaded (re-encoded JPEG without metadata) or taken from the
original at a time by ffmpeg (the pixels are that frame's), served to the
admin only, per video, never cached by a shared cache; cleared; logged."""

import io
import os
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageChops, ImageStat
from wagtail.models import Collection, ModelLogEntry

from private_video.captions import PosterError, set_chapters, set_poster_frame
from private_video.tracks import Chapter

from .helpers import collection_group, make_user, make_video

pytestmark = pytest.mark.django_db


def stored(name):
    return Path(settings.PRIVATE_MEDIA_ROOT, name)


@pytest.fixture
def video(sample_video):
    return make_video(sample_video, title="Lecture")  # 4 s, 320x180, testsrc2


def chapters_url(video):
    return reverse("private_video:chapters", args=[video.pk])


def poster_url(video):
    return reverse("private_video:poster", args=[video.pk])


def rows(*chapters, extra=1):
    data = {"chapters-TOTAL_FORMS": str(len(chapters) + extra), "chapters-INITIAL_FORMS": "0",
            "chapters-MIN_NUM_FORMS": "0", "chapters-MAX_NUM_FORMS": "1000", "lines": ""}
    for index, (start, title) in enumerate(chapters):
        data[f"chapters-{index}-start"] = start
        data[f"chapters-{index}-title"] = title
    return data


def chapter_list(video):
    return list(Chapter.objects.filter(video=video).values_list("start", "title"))


# --- chapters ----------------------------------------------------------------------------


def test_chapters_as_rows_are_saved_sorted_and_logged(admin_client, video):
    response = admin_client.post(chapters_url(video), rows(("0:02.5", "Method"), ("0", "Intro"), ("", "")))
    assert response.status_code == 302 and response.url == video.get_admin_edit_url()
    assert chapter_list(video) == [(0.0, "Intro"), (2.5, "Method")]
    assert ModelLogEntry.objects.filter(action="private_video.chapters_change", object_id=str(video.pk)).exists()
    # The form shows them again as m:ss, and the edit view lists them.
    page = admin_client.get(chapters_url(video)).content.decode()
    assert 'value="0:02.5"' in page and 'value="Method"' in page
    assert "Method" in admin_client.get(video.get_admin_edit_url()).content.decode()
    # A row marked for deletion goes.
    data = rows(("0:00", "Intro"), ("0:02.5", "Method"))
    data["chapters-1-DELETE"] = "on"
    admin_client.post(chapters_url(video), data)
    assert chapter_list(video) == [(0.0, "Intro")]


def test_pasted_lines_replace_the_rows(admin_client, video):
    set_chapters(video, [(1, "Old")])
    data = rows(("0:01", "Ignored when lines are pasted"))
    data["lines"] = "00:00 Intro\n\n0:01 - Part one\r\n0:03.25 Part two: the end\n"
    response = admin_client.post(chapters_url(video), data)
    assert response.status_code == 302
    assert chapter_list(video) == [(0.0, "Intro"), (1.0, "Part one"), (3.25, "Part two: the end")]


@pytest.mark.parametrize(
    "lines, message",
    [
        ("00:00 Intro\n0:61 Bad seconds\n", "Line 2: write a time then a title"),
        ("00:00 Intro\n\nno time here\n", "Line 3: write a time then a title"),
        ("00:00\n", "Line 1: write a time then a title"),
        ("0:00 Intro\n0:09 After the end\n", "starts at 0:09, after the video&#x27;s end (0:04)"),
        ("0:00 Intro\n0:00 Again\n", "Two chapters start at 0:00."),
        ("0:00 Intro --&gt; x\n", "without “--&gt;”"),
        # Long lines are refused at once (no regular expression backtracks over them).
        ("0:00 Intro\n0:01 a" + " " * 500_000 + "b\n", "Line 2: write a time then a title"),
    ],
)
def test_a_bad_pasted_line_is_named_and_nothing_changes(admin_client, video, lines, message):
    set_chapters(video, [(1, "Kept")])
    data = rows()
    data["lines"] = lines.replace("&gt;", ">")
    response = admin_client.post(chapters_url(video), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert chapter_list(video) == [(1.0, "Kept")]


def test_a_bad_row_is_shown_on_its_field(admin_client, video):
    response = admin_client.post(chapters_url(video), rows(("one minute", "Intro"), ("0:01", "")))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Write a time in seconds or as m:ss" in html and "A chapter needs a title." in html
    assert chapter_list(video) == []


# --- poster: upload -------------------------------------------------------------------------


def png_with_alpha_and_exif():
    image = Image.new("RGBA", (64, 32), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (32, 0, 64, 32))  # the right half transparent
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # rotated 90° clockwise
    out = io.BytesIO()
    image.save(out, "PNG", exif=exif)
    return out.getvalue()


def test_uploaded_poster_is_reencoded_upright_without_metadata(admin_client, video,
                                                              django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile("p.png", png_with_alpha_and_exif(), "image/png")
    response = admin_client.post(poster_url(video), {"action": "image", "image": upload})
    assert response.status_code == 302
    video.refresh_from_db()
    assert video.poster_file.name.startswith(f"videos/{video.key.hex[:2]}/{video.key.hex}/renditions/poster-")
    assert video.poster_time is None
    data = stored(video.poster_file.name).read_bytes()
    assert b"SecretCam" not in data
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.mode == "RGB"
    assert image.size == (32, 64), "the EXIF rotation is applied, then dropped"
    assert not image.getexif()
    # Red stays red; the transparent half is black (rotated: top red, bottom black).
    top, bottom = image.getpixel((16, 10)), image.getpixel((16, 54))
    assert top[0] > 200 and top[1] < 40 and max(bottom) < 40
    assert ModelLogEntry.objects.filter(action="private_video.poster_change").exists()
    # The admin sees it through its own view: per video, private, not sniffed.
    response = admin_client.get(reverse("private_video:poster_file", args=[video.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "image/jpeg"
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    assert response["X-Content-Type-Options"] == "nosniff"
    assert reverse("private_video:poster_file", args=[video.pk]) in admin_client.get(
        video.get_admin_edit_url()).content.decode()
    # Clearing it goes back to the transcoder's poster and deletes the file after commit.
    old = video.poster_file.name
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(poster_url(video), {"action": "clear"})
    assert response.status_code == 302
    video.refresh_from_db()
    assert video.poster_file.name == "" and not stored(old).exists() and not stored(old).parent.exists()
    assert ModelLogEntry.objects.filter(action="private_video.poster_clear").exists()
    assert admin_client.get(reverse("private_video:poster_file", args=[video.pk])).status_code == 404


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("junk.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "Upload a valid image"),
        ("page.jpg", b"<html><script>alert(1)</script></html>", "Upload a valid image"),
        ("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "Upload a valid image"),
    ],
)
def test_a_bad_poster_image_is_refused_and_nothing_is_stored(admin_client, video, name, data, message):
    response = admin_client.post(poster_url(video), {"action": "image",
                                                     "image": SimpleUploadedFile(name, data, "image/png")})
    assert response.status_code == 200 and message in response.content.decode()
    video.refresh_from_db()
    assert video.poster_file.name == ""
    assert not list(stored(f"videos/{video.key.hex[:2]}/{video.key.hex}/renditions").glob("poster-*"))


# --- poster: a frame ------------------------------------------------------------------------


def reference_frame(source, seconds, size):
    """The frame at ``seconds`` decoded by ffmpeg directly, as RGB."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{seconds}", "-i", str(source), "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    ).stdout
    return Image.frombytes("RGB", size, raw)


def difference(a, b):
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b)).mean) / 3


def test_poster_frame_is_the_frame_at_that_time(admin_client, video, sample_video):
    response = admin_client.post(poster_url(video), {"action": "frame", "time": "0:02.4"})
    assert response.status_code == 302, response.content.decode()[-2000:]
    video.refresh_from_db()
    assert video.poster_time == pytest.approx(2.4)
    poster = Image.open(stored(video.poster_file.name))
    assert poster.format == "JPEG" and poster.size == (320, 180)
    # The moving pattern changes every frame (25 fps): of the frames around
    # 2.4 s, the poster is (JPEG noise aside) the one at 2.4 s.
    times = [2.32, 2.36, 2.4, 2.44, 2.48, 0.6]
    distances = {t: difference(poster, reference_frame(sample_video, t, (320, 180))) for t in times}
    assert min(distances, key=distances.get) == 2.4, distances
    assert distances[2.4] < 5 and all(distances[t] > 1.8 * distances[2.4] for t in times if t != 2.4), distances
    assert ModelLogEntry.objects.filter(action="private_video.poster_change", object_id=str(video.pk)).exists()


@pytest.mark.parametrize(
    "time, message",
    [("0:04", "pick a time before its end"), ("99", "pick a time before its end"),
     ("-1", "Write a time in seconds or as m:ss"), ("soon", "Write a time in seconds or as m:ss")],
)
def test_a_poster_time_past_the_end_is_a_clear_error(admin_client, video, time, message):
    response = admin_client.post(poster_url(video), {"action": "frame", "time": time})
    assert response.status_code == 200 and message in response.content.decode()
    video.refresh_from_db()
    assert video.poster_file.name == ""


def test_the_frame_extractor_checks_the_end_itself(video):
    # The library checks against the stored duration; the extractor against the file.
    video.duration = 100
    with pytest.raises(PosterError, match="The video ends at 4.00 s"):
        set_poster_frame(video, 50)
    assert video.poster_file.name == ""


# --- rights ------------------------------------------------------------------------------------


def test_another_collections_video_is_404_and_no_rights_is_403(client, sample_video):
    root = Collection.get_first_root_node()
    mine, theirs = root.add_child(name="Mine"), root.add_child(name="Theirs")
    other = make_video(sample_video, title="Other", collection=theirs)
    set_chapters(other, [(0, "Theirs")])
    client.force_login(make_user("ed", groups=[collection_group("Mine", mine, "add_video", "change_video")]))
    upload = SimpleUploadedFile("p.png", png_with_alpha_and_exif(), "image/png")
    for url, data in [
        (chapters_url(other), {**rows(("0:01", "Mine now"))}),
        (poster_url(other), {"action": "image", "image": upload}),
        (poster_url(other), {"action": "frame", "time": "1"}),
        (reverse("private_video:poster_file", args=[other.pk]), None),
    ]:
        assert client.get(url).status_code == 404, url
        if data is not None:
            assert client.post(url, data).status_code == 404, url
    other.refresh_from_db()
    assert chapter_list(other) == [(0.0, "Theirs")] and other.poster_file.name == ""

    from django.contrib.auth.models import Group, Permission

    group = Group.objects.create(name="Admin only")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(make_user("nobody", groups=[group]))
    for url in (chapters_url(other), poster_url(other), reverse("private_video:poster_file", args=[other.pk])):
        assert client.get(url).status_code == 403, url
    assert client.post(chapters_url(other), rows(("0:01", "X"))).status_code == 403
    assert chapter_list(other) == [(0.0, "Theirs")]


def test_a_poster_over_the_size_limit_is_refused(admin_client, video):
    from django.test import override_settings

    noisy = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
    out = io.BytesIO()
    noisy.save(out, "PNG")
    assert len(out.getvalue()) > 5000
    with override_settings(PRIVATE_VIDEO_MAX_POSTER_SIZE=5000):
        response = admin_client.post(poster_url(video), {
            "action": "image", "image": SimpleUploadedFile("big.png", out.getvalue(), "image/png")})
    assert response.status_code == 200
    assert "the largest poster is 5,000 bytes" in response.content.decode()
    video.refresh_from_db()
    assert video.poster_file.name == ""


# --- the real admin UI in Chromium ---------------------------------------------------------


@pytest.mark.browser
@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_editor_adds_captions_chapters_and_poster_in_chromium(stack, sample_video, tmp_path, output_dir):
    from private_video.tracks import Caption

    from .browser import chromium_page

    make_user("editor", "correct horse battery", superuser=True)
    video = make_video(sample_video, title="Lecture")
    french = tmp_path / "cours.srt"
    french.write_text("1\n00:00:00,500 --> 00:00:02,000\nÇa commence — 東京 🎉\n", encoding="utf-8")
    arabic = tmp_path / "arabic.srt"
    arabic.write_text("1\n00:00:00,500 --> 00:00:02,000\nمرحبا بالعالم\n", encoding="utf-8")
    broken = tmp_path / "broken.srt"
    broken.write_text("1\n00:00:00,500 --> 00:00:02,000\nok\n\n2\n00:00:03 -> 00:00:04\nbad\n", encoding="utf-8")

    with chromium_page(output_dir) as page:
        page.goto(stack.url("/admin/login/"))
        page.fill("input[name=username]", "editor")
        page.fill("input[name=password]", "correct horse battery")
        page.click("button[type=submit]")
        page.wait_for_url(stack.url("/admin/"))

        def add_caption(path, language, label, default=False):
            page.goto(stack.url(video.get_admin_edit_url()))
            page.get_by_role("link", name="Add a caption track").click()
            page.set_input_files("input[name=file]", str(path))
            page.fill("input[name=language]", language)
            page.fill("input[name=label]", label)
            if default:
                page.check("input[name=is_default]")
            page.get_by_role("button", name="Save").click()

        add_caption(broken, "fr", "Français")
        assert "Line 6: a cue needs a timing line" in page.locator(".private-video-caption-form").inner_text()
        page.screenshot(path=str(output_dir / "caption-error.png"), full_page=True)
        add_caption(french, "fr", "Français", default=True)
        page.wait_for_url(stack.url(video.get_admin_edit_url()))
        add_caption(arabic, "ar", "العربية")
        page.wait_for_url(stack.url(video.get_admin_edit_url()))

        page.get_by_role("link", name="Edit chapters").click()
        page.fill("textarea[name=lines]", "0:00 Introduction\n0:02 Démonstration")
        page.get_by_role("button", name="Save chapters").click()
        page.wait_for_url(stack.url(video.get_admin_edit_url()))

        page.get_by_role("link", name="Change the poster").click()
        page.fill("input[name=time]", "0:01.5")
        page.get_by_role("button", name="Use this frame").click()
        page.wait_for_url(stack.url(video.get_admin_edit_url()))
        panel = page.locator(".private-video-tracks")
        assert "Français" in panel.inner_text() and "العربية" in panel.inner_text()
        assert "0:02 — Démonstration" in panel.inner_text()
        poster = panel.locator("img")
        poster.wait_for()
        assert page.evaluate("(img) => img.complete && img.naturalWidth", poster.element_handle()) == 320
        panel.screenshot(path=str(output_dir / "captions-chapters-poster-panel.png"))

    assert sorted(Caption.objects.values_list("language", "label", "is_default")) == [
        ("ar", "العربية", False), ("fr", "Français", True)]
    video.refresh_from_db()
    assert video.poster_time == pytest.approx(1.5)
    assert list(video.chapters.values_list("title", flat=True)) == ["Introduction", "Démonstration"]
