"""The video library: model, upload validation, and the Wagtail admin views."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission, ReferenceIndex

from private_video.forms import VideoForm
from private_video.models import Video
from transcoding.testmedia import make_test_video

from .helpers import make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db


def upload(path, name=None, content_type="video/mp4"):
    return SimpleUploadedFile(name or Path(path).name, Path(path).read_bytes(), content_type)


def private_files():
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def text_as_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("These are meeting notes, not a video.\n" * 50)
    return path


# --- model and storage ------------------------------------------------------


def test_stored_under_unguessable_key_and_keeps_original_name(sample_video):
    video = make_video(sample_video, title="Key test")
    video.refresh_from_db()
    assert re.fullmatch(rf"videos/{video.key.hex[:2]}/{video.key.hex}/original\.mp4", video.file.name)
    assert "sample" not in video.file.name
    assert video.original_filename == "sample.mp4"
    stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    assert stored.read_bytes() == Path(sample_video).read_bytes()
    assert video.duration == pytest.approx(4, abs=0.2)
    assert (video.width, video.height) == (320, 180)
    assert video.video_codec == "h264" and video.audio_codec == "aac"


def test_private_storage_has_no_public_url(sample_video):
    video = make_video(sample_video)
    with pytest.raises(NotImplementedError):
        video.file.url
    private_root = Path(settings.PRIVATE_MEDIA_ROOT).resolve()
    assert not private_root.is_relative_to(Path(settings.MEDIA_ROOT).resolve())
    assert not private_root.is_relative_to(Path(settings.STATIC_ROOT).resolve())


# --- upload validation -----------------------------------------------------


def test_form_accepts_real_video_and_probes_it(sample_video):
    form = VideoForm(data={"title": ""}, files={"file": upload(sample_video, "My holiday_clip.mp4")})
    assert form.is_valid(), form.errors
    video = form.save()
    assert video.title == "My holiday clip"
    assert video.file_size == Path(sample_video).stat().st_size
    assert video.duration == pytest.approx(4, abs=0.2)


def test_text_file_renamed_mp4_is_refused_and_nothing_saved(text_as_mp4):
    before = private_files()
    form = VideoForm(data={"title": "Fake"}, files={"file": upload(text_as_mp4)})
    assert not form.is_valid()
    assert "not a video we can read" in form.errors["file"][0]
    assert Video.objects.count() == 0
    assert private_files() == before


def test_image_renamed_mp4_is_refused(tmp_path):
    image = tmp_path / "still.mp4"
    import subprocess

    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64",
         "-frames:v", "1", "-f", "image2", "-c:v", "png", str(image)],
        check=True,
    )
    form = VideoForm(data={"title": "Still"}, files={"file": upload(image)})
    assert not form.is_valid()
    assert "not a video" in form.errors["file"][0]


def test_audio_only_file_is_refused(tmp_path):
    audio = make_test_video(tmp_path / "tone.m4a", audio=True, extra_args=["-vn"])
    form = VideoForm(data={"title": "Tone"}, files={"file": upload(audio)})
    assert not form.is_valid()
    assert "no picture" in form.errors["file"][0]


def test_empty_file_is_refused():
    form = VideoForm(data={"title": "Empty"}, files={"file": SimpleUploadedFile("empty.mp4", b"")})
    assert not form.is_valid()
    # Django's own check for empty uploads speaks first; either way it is refused.
    assert "empty" in form.errors["file"][0]
    assert Video.objects.count() == 0


def test_file_over_the_limit_is_refused(sample_video):
    with override_settings(PRIVATE_VIDEO_MAX_UPLOAD_SIZE=1000):
        form = VideoForm(data={"title": "Big"}, files={"file": upload(sample_video)})
        assert not form.is_valid()
    assert "largest video you can upload is 1000" in form.errors["file"][0]
    assert Video.objects.count() == 0


# --- admin views -----------------------------------------------------------


def test_menu_and_listing_show_videos(admin_client, sample_video):
    video = make_video(sample_video, title="Listing clip")
    video.tags.add("lecture")
    video.save()
    response = admin_client.get(reverse("wagtailadmin_home"))
    assert reverse("private_video:index") in response.content.decode()
    response = admin_client.get(reverse("private_video:index"))
    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Listing clip", "0:04", "Root", "lecture", "Uploaded", "KB"):
        assert text in html, text


def test_listing_search_and_filters(admin_client, sample_video):
    other = Collection.get_first_root_node().add_child(name="Lectures")
    make_video(sample_video, title="Alpha talk")
    beta = make_video(sample_video, title="Beta talk", collection=other)
    beta.tags.add("physics")
    beta.save()
    html = admin_client.get(reverse("private_video:index"), {"q": "alpha"}).content.decode()
    assert "Alpha talk" in html and "Beta talk" not in html
    html = admin_client.get(reverse("private_video:index"), {"collection": other.pk}).content.decode()
    assert "Beta talk" in html and "Alpha talk" not in html
    html = admin_client.get(reverse("private_video:index"), {"tag": "physics"}).content.decode()
    assert "Beta talk" in html and "Alpha talk" not in html


def test_upload_page_renders_drop_zone(admin_client):
    response = admin_client.get(reverse("private_video:add"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "data-drop-zone" in html and 'multiple' in html and "upload.js" in html


def test_upload_json_success_and_error(admin_client, sample_video, text_as_mp4):
    url = reverse("private_video:add")
    response = admin_client.post(url, {"file": upload(sample_video, "first.mp4")}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    video = Video.objects.get(pk=body["pk"])
    assert body["success"] is True and body["title"] == "first" == video.title
    assert video.uploaded_by_user == admin_client.user

    response = admin_client.post(url, {"file": upload(text_as_mp4)}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    body = json.loads(response.content)
    assert body["success"] is False and "not a video we can read" in body["error_message"]
    assert Video.objects.count() == 1


def test_upload_plain_form_post_redirects(admin_client, sample_video):
    response = admin_client.post(reverse("private_video:add"), {"title": "Plain", "file": upload(sample_video)})
    assert response.status_code == 302
    assert Video.objects.get().title == "Plain"


def test_edit_title_tags_and_collection(admin_client, sample_video):
    other = Collection.get_first_root_node().add_child(name="Archive")
    video = make_video(sample_video, title="Old title")
    response = admin_client.post(
        reverse("private_video:edit", args=[video.pk]),
        {"title": "New title", "tags": "one, two", "collection": other.pk},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    video.refresh_from_db()
    assert video.title == "New title" and video.collection == other
    assert sorted(t.name for t in video.tags.all()) == ["one", "two"]


def test_replace_file_swaps_original_and_deletes_old(admin_client, sample_video, tmp_path):
    video = make_video(sample_video, title="Replace me")
    old_path = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    new_source = make_test_video(tmp_path / "longer.mov", duration=6, width=256, height=144)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(
            reverse("private_video:edit", args=[video.pk]),
            {"title": "Replace me", "file": upload(new_source), "collection": video.collection_id},
        )
    assert response.status_code == 302
    video.refresh_from_db()
    assert video.original_filename == "longer.mov"
    assert video.duration == pytest.approx(6, abs=0.2) and video.width == 256
    assert not old_path.exists()
    assert (Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name).read_bytes() == new_source.read_bytes()


def test_bad_replacement_keeps_the_original(admin_client, sample_video, text_as_mp4):
    video = make_video(sample_video, title="Keep me")
    old_path = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    response = admin_client.post(
        reverse("private_video:edit", args=[video.pk]),
        {"title": "Keep me", "file": upload(text_as_mp4), "collection": video.collection_id},
    )
    assert response.status_code == 200
    assert "not a video we can read" in response.content.decode()
    video.refresh_from_db()
    assert old_path.read_bytes() == Path(sample_video).read_bytes()
    assert video.original_filename == "sample.mp4"


def test_delete_removes_video_and_its_file(admin_client, sample_video):
    from django.test import TestCase

    video = make_video(sample_video, title="Delete me")
    path = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = admin_client.post(reverse("private_video:delete", args=[video.pk]))
    assert response.status_code == 302
    assert not Video.objects.filter(pk=video.pk).exists()
    assert not path.exists()


def test_usage_lists_pages_using_the_video(admin_client, sample_video):
    video = make_video(sample_video, title="Used clip")
    page = make_video_page(video, title="Page using clip")
    ReferenceIndex.create_or_update_for_object(page)
    html = admin_client.get(reverse("private_video:usage", args=[video.pk])).content.decode()
    assert "Page using clip" in html


def test_chooser_lists_and_chooses(admin_client, sample_video):
    video = make_video(sample_video, title="Chooser clip")
    response = admin_client.get(reverse("private_video_chooser:choose"))
    assert response.status_code == 200
    body = json.loads(response.content)
    assert "Chooser clip" in body["html"]
    response = admin_client.get(reverse("private_video_chooser:chosen", args=[video.pk]))
    body = json.loads(response.content)
    assert body["step"] == "chosen" and body["result"]["id"] == str(video.pk)
    assert body["result"]["title"] == "Chooser clip"


def test_chooser_upload_tab_creates_video(admin_client, sample_video, text_as_mp4):
    html = json.loads(admin_client.get(reverse("private_video_chooser:choose")).content)["html"]
    # The modal has an upload tab whose form posts a file to the chooser's create view.
    assert 'id="tab-label-create"' in html
    create_url = reverse("private_video_chooser:create")
    form = re.search(rf'<form[^>]*action="{re.escape(create_url)}"[^>]*>(.*?)</form>', html, re.S)
    assert form and 'enctype="multipart/form-data"' in form.group(0)
    assert re.search(r'<input[^>]*type="file"[^>]*name="file"|<input[^>]*name="file"[^>]*type="file"', form.group(1))

    before = private_files()
    response = admin_client.post(create_url, {"title": "From chooser", "file": upload(sample_video)})
    body = json.loads(response.content)
    assert body["step"] == "chosen", body
    video = Video.objects.get(title="From chooser")
    assert body["result"]["id"] == str(video.pk) and body["result"]["title"] == "From chooser"
    # Saved as an upload through the library: probed, owned, stored privately, bytes intact.
    assert video.uploaded_by_user == admin_client.user
    assert video.duration == pytest.approx(4, abs=0.2) and (video.width, video.height) == (320, 180)
    assert video.original_filename == "sample.mp4"
    assert private_files() == sorted(before + [Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name])
    assert (Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name).read_bytes() == Path(sample_video).read_bytes()

    response = admin_client.post(create_url, {"title": "Bad", "file": upload(text_as_mp4)})
    body = json.loads(response.content)
    assert body["step"] == "reshow_creation_form"
    assert "not a video we can read" in body["htmlFragment"]
    # Nothing kept of the refused file: no row, no stored bytes.
    assert not Video.objects.filter(title="Bad").exists() and Video.objects.count() == 1
    assert private_files() == sorted(before + [Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name])


def _chooser_urls_by_block(definition, path=()):
    """{block path: chooser modal URL} from a StreamField's telepath definition."""
    found = {}
    if isinstance(definition, dict):
        args = definition.get("_args") or []
        if definition.get("_type") == "wagtail.admin.widgets.Chooser":
            found[path] = next(a["modalUrl"] for a in args if isinstance(a, dict) and "modalUrl" in a)
            return found
        name = args[0] if args and isinstance(args[0], str) and args[0] else None
        for arg in args:
            found.update(_chooser_urls_by_block(arg, path + ((name,) if name else ())))
    elif isinstance(definition, list):
        for item in definition:
            found.update(_chooser_urls_by_block(item, path))
    return found


def test_video_page_editor_has_chooser_and_block(admin_client, sample_video):
    import html as htmllib

    from wagtail.test.utils.form_data import nested_form_data, rich_text, streamfield

    from cms.models import VideoPage

    from .helpers import home_page

    home = home_page()
    url = reverse("wagtailadmin_pages:add", args=["cms", "videopage", home.pk])
    html = admin_client.get(url).content.decode()
    chooser_url = reverse("private_video_chooser:choose")
    # The main video field is the library's chooser ...
    main = re.search(r'<div id="id_video-chooser"[^>]*data-chooser-url="([^"]+)"', html)
    assert main and main.group(1) == chooser_url
    # ... and the body offers a "video" block whose "video" child is the same chooser.
    definition = json.loads(htmllib.unescape(re.search(r'data-w-block-data-value="([^"]*)"', html).group(1)))
    assert _chooser_urls_by_block(definition) == {("video", "video"): chooser_url}

    # Publishing through the editor saves both choices.
    main_video = make_video(sample_video, title="Main clip")
    body_video = make_video(sample_video, title="Body clip")
    response = admin_client.post(url, nested_form_data({
        "title": "With body",
        "slug": "with-body",
        "video": main_video.pk,
        "intro": rich_text(""),
        "body": streamfield([("video", {"video": body_video.pk, "caption": "Hello"})]),
        "viewer_grants": {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 1000},
        "action-publish": "action-publish",
    }))
    assert response.status_code == 302, response.content.decode()[:3000]
    page = VideoPage.objects.get(slug="with-body")
    assert page.live and page.get_parent().pk == home.pk
    assert page.video == main_video
    assert [(block.block_type, block.value["video"].pk, block.value["caption"]) for block in page.body] == [
        ("video", body_video.pk, "Hello")
    ]
    assert [v.pk for v in page.videos()] == [main_video.pk, body_video.pk]


@pytest.fixture
def editor_without_add(client):
    group = Group.objects.create(name="Viewers only")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    user = make_user("viewer", groups=[group])
    client.force_login(user)
    return client


def test_upload_requires_add_permission(editor_without_add, sample_video):
    response = editor_without_add.post(
        reverse("private_video:add"), {"file": upload(sample_video)}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code in (302, 403)
    assert Video.objects.count() == 0


def test_collection_permission_lets_editor_upload(client, sample_video):
    group = Group.objects.create(name="Video editors")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    archive = Collection.get_first_root_node().add_child(name="Archive")
    GroupCollectionPermission.objects.create(
        group=group, collection=archive, permission=Permission.objects.get(codename="add_video"),
    )
    editor = make_user("editor", groups=[group])
    client.force_login(editor)
    before = set(private_files())
    response = client.post(
        reverse("private_video:add"), {"file": upload(sample_video, "editor clip.mp4"), "collection": archive.pk},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    video = Video.objects.get()
    assert body["success"] is True and body["pk"] == video.pk
    # Saved in the collection the editor may add to, as theirs, probed and stored privately.
    assert video.collection == archive
    assert video.uploaded_by_user == editor
    assert video.title == "editor clip" and video.original_filename == "editor clip.mp4"
    assert video.duration == pytest.approx(4, abs=0.2) and video.video_codec == "h264"
    stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    assert stored.read_bytes() == Path(sample_video).read_bytes()
    assert set(private_files()) - before == {stored}
