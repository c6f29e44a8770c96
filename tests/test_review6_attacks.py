"""Hostile review 6 (an editor with rights on one collection, an uploader):
each case was a 500, a cap that one form path skipped, or a right the
server gave without checking. Each now gets a clear answer and saves nothing
it should not."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Collection, GroupCollectionPermission, ModelLogEntry

from private_video.models import Video
from private_video.tracks import Caption, Chapter
from private_video.uploads.models import Upload
from tests.helpers import collection_group, make_user, make_video
from tests.test_review4_uploads import bucket, s3_call  # noqa: F401 (fixture)
from tests.test_uploads_tus import editor, library  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


class World:
    def __init__(self, sample_video):
        root = Collection.get_first_root_node()
        self.a = root.add_child(name="Team A")
        self.b = root.add_child(name="Hidden B")
        self.group = collection_group("A editors", self.a, "add_video", "change_video", "choose_video")
        self.editor = make_user("editor-a", groups=[self.group])
        self.boss = make_user("boss", superuser=True)
        self.video_a = make_video(sample_video, title="Alpha", collection=self.a, user=self.boss)
        self.video_b = make_video(sample_video, title="Bravo secret", collection=self.b, user=self.boss)


@pytest.fixture
def world(sample_video):
    return World(sample_video)


def signed_in(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


@pytest.mark.parametrize("body", [
    b"WEBVTT\n\n:00:01.000 --> 00:00:02.000\nHello\n",
    b"WEBVTT\n\n00:00:01.000 --> :00:02.000\nHello\n",
])
def test_a_timing_with_an_empty_hours_field_is_a_form_error(world, body):
    """pysubs2's WebVTT pattern accepts an hours field of just ":", and its own
    conversion then raised ValueError: a 500."""
    client = signed_in(world.editor)
    logged = ModelLogEntry.objects.count()
    response = client.post(
        reverse("private_video:caption_add", args=[world.video_a.pk]),
        {"file": SimpleUploadedFile("x.vtt", body, "text/vtt"), "language": "en", "kind": "subtitles",
         "label": "English"},
    )
    assert response.status_code == 200
    assert "Line 3: this timing cannot be read" in response.content.decode()
    assert Caption.objects.count() == 0 and ModelLogEntry.objects.count() == logged


def chapter_post(client, video, lines):
    return client.post(reverse("private_video:chapters", args=[video.pk]), {
        "chapters-TOTAL_FORMS": "0", "chapters-INITIAL_FORMS": "0", "chapters-MIN_NUM_FORMS": "0",
        "chapters-MAX_NUM_FORMS": "1000", "lines": lines,
    })


def test_pasted_chapter_lines_have_the_rows_cap(world):
    """The rows' formset stops at 500; pasted lines saved 3,900 chapters on a
    4 s video, which every viewer then downloads."""
    client = signed_in(world.editor)
    lines = lambda count: "\n".join(f"0:{ms // 1000:02d}.{ms % 1000:03d} c{ms}" for ms in range(count))  # noqa: E731
    assert chapter_post(client, world.video_a, lines(500)).status_code == 302
    assert Chapter.objects.filter(video=world.video_a).count() == 500

    refused = chapter_post(client, world.video_a, lines(3900))
    assert refused.status_code == 200
    assert "A video can have up to 500 chapters, not 3900." in refused.content.decode()
    assert Chapter.objects.filter(video=world.video_a).count() == 500  # the earlier ones stay


def test_upload_status_describes_a_video_only_to_who_may_still_change_it(world):
    upload = Upload.objects.create(
        user=world.editor, collection=world.a, filename="x.mp4", length=10, backend="tus", state="complete",
        video=world.video_a, expires_at=timezone.now() + timedelta(days=1),
    )
    url = reverse("private_video:upload_status", args=[upload.pk])
    client = signed_in(world.editor)
    assert client.get(url).json()["video"]["title"] == "Alpha"
    # The video moves to a collection the uploader has no rights on.
    Video.objects.filter(pk=world.video_a.pk).update(collection=world.b)
    answer = client.get(url)
    assert answer.status_code == 200 and answer.json()["video"] is None
    assert b"Alpha" not in answer.content and f"/edit/{world.video_a.pk}/".encode() not in answer.content
    assert signed_in(world.boss).get(url).json()["video"]["title"] == "Alpha"


def test_replacing_the_file_does_not_make_the_editor_its_owner(world, tmp_path):
    """Ownership gives rights of its own (an adder may change what they own):
    only a new video gets its uploader as owner."""
    from transcoding.testmedia import make_test_video

    Video.objects.filter(pk=world.video_a.pk).update(uploaded_by_user=None)
    replacement = make_test_video(tmp_path / "r.mp4", duration=1)
    client = signed_in(world.editor)
    response = client.post(reverse("private_video:edit", args=[world.video_a.pk]), {
        "title": "Alpha", "collection": world.a.pk, "tags": "",
        "file": SimpleUploadedFile("r.mp4", replacement.read_bytes(), "video/mp4"),
    })
    assert response.status_code == 302
    world.video_a.refresh_from_db()
    assert world.video_a.original_filename == "r.mp4"  # the file was replaced
    assert world.video_a.uploaded_by_user_id is None
    # Without "change", the editor no longer reaches it.
    GroupCollectionPermission.objects.filter(group=world.group, permission__codename="change_video").delete()
    assert client.get(reverse("private_video:edit", args=[world.video_a.pk])).status_code in (302, 403, 404)


@pytest.mark.parametrize("length", ["9" * 5000, "1" * 4301, "9" * 20])
def test_an_s3_upload_of_absurd_length_is_refused(editor, library, bucket, length):  # noqa: F811
    films, _other, _editors = library
    response = s3_call(signed_in(editor), "s3_create", length=length, filename="a.mp4", collection=films.pk)
    assert response.status_code == 413
    assert response.json()["error"] == "This file is larger than one S3 object can be."
    assert not Upload.objects.exists()


@pytest.mark.parametrize("url_name,query", [
    ("private_video_chooser:chosen_multiple", "id="),
    ("private_video_chooser:choose", "collection_id="),
    ("private_video_chooser:choose_results", "collection_id="),
])
@pytest.mark.parametrize("number", ["9" * 5000, "9" * 19])
def test_the_chooser_finds_nothing_for_an_id_no_database_holds(world, url_name, query, number):
    response = signed_in(world.editor).get(reverse(url_name) + "?" + query + number)
    assert response.status_code == 200
    assert b"Alpha" not in response.content and b"Bravo" not in response.content


def test_the_chosen_view_is_a_404_for_an_id_no_database_holds(world):
    client = signed_in(world.editor)
    for number in ("9" * 19, "9" * 5000):
        assert client.get(reverse("private_video_chooser:chosen", args=[number])).status_code == 404
    assert client.get(reverse("private_video_chooser:chosen", args=[world.video_a.pk])).status_code == 200


def test_an_uploader_with_only_add_still_sees_the_video_they_made(world, sample_video):
    """Ownership gives an adder "change" on their own videos: the status
    keeps describing what their upload became."""
    adders = collection_group("A adders", world.a, "add_video")
    adder = make_user("adder", groups=[adders])
    own = make_video(sample_video, title="Mine", collection=world.a, user=adder)
    upload = Upload.objects.create(
        user=adder, collection=world.a, filename="m.mp4", length=10, backend="tus", state="complete", video=own,
        expires_at=timezone.now() + timedelta(days=1),
    )
    url = reverse("private_video:upload_status", args=[upload.pk])
    assert signed_in(adder).get(url).json()["video"]["title"] == "Mine"
    Video.objects.filter(pk=own.pk).update(collection=world.b)
    assert signed_in(adder).get(url).json()["video"] is None
