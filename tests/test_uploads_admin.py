"""The admin's list of uploads in progress and its cancel button.

Who sees what, checked per object on the server: an editor sees their own
uploads, a user with "change" on a collection sees every upload to it, a
superuser sees all. Cancelling is a CSRF-checked POST; the owner or an admin
may, anyone else gets the 404 of an unknown upload and nothing changes
(the row's state, the staged bytes)."""

import re
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Collection

from private_video.uploads import staging
from private_video.uploads.models import Upload

from .helpers import collection_group, make_user

pytestmark = pytest.mark.django_db

State = Upload.State


def make_upload(user, collection, filename, *, length=10_000_000, received=2_500_000, state=State.RECEIVING, **fields):
    upload = Upload.objects.create(
        user=user, collection=collection, filename=filename, length=length, offset=received,
        backend=Upload.Backend.TUS, state=state, expires_at=timezone.now() + timedelta(days=1), **fields,
    )
    if state == State.RECEIVING:
        staging.create(upload.pk)
        with open(staging.path_for(upload.pk), "r+b") as handle:
            handle.write(b"\x00" * received)
    return upload


class World:
    def __init__(self):
        root = Collection.get_first_root_node()
        self.a = root.add_child(name="Team A")
        self.b = root.add_child(name="Team B")
        self.olga = make_user("olga")
        self.olga.groups.add(collection_group("A adders", self.a, "add_video"))
        self.eve = make_user("eve")
        self.eve.groups.add(collection_group("A adders 2", self.a, "add_video"))
        self.carl = make_user("carl")
        self.carl.groups.add(collection_group("A changers", self.a, "add_video", "change_video"))
        self.bob = make_user("bob")
        self.bob.groups.add(collection_group("B adders", self.b, "add_video"))
        self.boss = make_user("boss", superuser=True)
        self.nobody = make_user("nobody")
        self.nobody.groups.add(collection_group("no video rights", self.a))
        self.olga_upload = make_upload(self.olga, self.a, "olga-lecture.mp4", length=40 * 2**20, received=10 * 2**20)
        self.eve_upload = make_upload(self.eve, self.a, "eve-holiday.mov")
        self.bob_upload = make_upload(self.bob, self.b, "bob-board.mp4")
        self.done = make_upload(self.olga, self.a, "olga-finished.mp4", received=10_000_000, state=State.COMPLETE)


@pytest.fixture
def world():
    return World()


def client_for(user, *, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def listed(response):
    """The upload ids in the list page's rows."""
    assert response.status_code == 200
    return set(re.findall(r'data-upload="([0-9a-f-]{36})"', response.content.decode()))


def ids(*uploads):
    return {str(upload.pk) for upload in uploads}


def staged(upload):
    return staging.path_for(upload.pk).exists()


def test_list_shows_only_what_each_user_may_see(world):
    url = reverse("private_video:uploads")
    assert listed(client_for(world.olga).get(url)) == ids(world.olga_upload)
    assert listed(client_for(world.eve).get(url)) == ids(world.eve_upload)
    assert listed(client_for(world.bob).get(url)) == ids(world.bob_upload)
    # "change" on A: every upload to A, none to B.
    assert listed(client_for(world.carl).get(url)) == ids(world.olga_upload, world.eve_upload)
    assert listed(client_for(world.boss).get(url)) == ids(world.olga_upload, world.eve_upload, world.bob_upload)
    # No video rights at all: nothing to see here.
    response = client_for(world.nobody).get(url)
    assert response.status_code == 403
    assert b"olga" not in response.content


def test_list_row_says_who_what_how_big_how_far_how_old(world):
    Upload.objects.filter(pk=world.olga_upload.pk).update(created_at=timezone.now() - timedelta(hours=2))
    page = client_for(world.carl).get(reverse("private_video:uploads")).content.decode()
    row = re.search(rf'<tr data-upload="{world.olga_upload.pk}">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r"data-filename>olga-lecture\.mp4", row)
    assert re.search(r"data-owner>olga<", row)
    assert "40.0\xa0MB" in row  # the declared size
    assert 'value="25"' in row and "25%" in row  # 10 of 40 MB received
    assert re.search(r"data-age>2\xa0hours ago<", row)
    assert re.search(r"data-state>Receiving", row)
    assert reverse("private_video:upload_cancel", args=[world.olga_upload.pk]) in row


def test_the_owner_cancels_and_the_staged_bytes_go(world):
    client = client_for(world.olga, csrf=True)
    page = client.get(reverse("private_video:uploads")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert staged(world.olga_upload)

    response = client.post(
        reverse("private_video:upload_cancel", args=[world.olga_upload.pk]), {"csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("private_video:uploads")
    world.olga_upload.refresh_from_db()
    assert world.olga_upload.state == State.CANCELLED
    assert not staged(world.olga_upload)
    # The others' bytes are untouched.
    assert staged(world.eve_upload) and staged(world.bob_upload)

    page = client.get(reverse("private_video:uploads")).content.decode()
    assert "Upload “olga-lecture.mp4” cancelled." in page
    row = re.search(rf'<tr data-upload="{world.olga_upload.pk}">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r"data-state>Cancelled", row)
    assert "upload_cancel" not in row and "/cancel/" not in row  # nothing left to cancel


@pytest.mark.parametrize("who", ["eve", "bob"])
def test_another_editor_cannot_cancel(world, who):
    client = client_for(getattr(world, who))
    response = client.post(reverse("private_video:upload_cancel", args=[world.olga_upload.pk]))
    assert response.status_code == 404
    world.olga_upload.refresh_from_db()
    assert world.olga_upload.state == State.RECEIVING
    assert staged(world.olga_upload)


def test_an_unknown_upload_is_404(world):
    response = client_for(world.boss).post(reverse("private_video:upload_cancel", args=[uuid.uuid4()]))
    assert response.status_code == 404


@pytest.mark.parametrize("who", ["boss", "carl"])
def test_an_admin_or_a_changer_of_the_collection_cancels(world, who):
    response = client_for(getattr(world, who)).post(
        reverse("private_video:upload_cancel", args=[world.eve_upload.pk])
    )
    assert response.status_code == 302
    world.eve_upload.refresh_from_db()
    assert world.eve_upload.state == State.CANCELLED
    assert not staged(world.eve_upload)


def test_cancel_needs_post_and_the_csrf_token(world):
    url = reverse("private_video:upload_cancel", args=[world.olga_upload.pk])
    assert client_for(world.olga).get(url).status_code == 405
    assert client_for(world.olga, csrf=True).post(url).status_code == 403
    world.olga_upload.refresh_from_db()
    assert world.olga_upload.state == State.RECEIVING
    assert staged(world.olga_upload)


def test_a_finished_upload_is_not_cancelled(world):
    response = client_for(world.olga).post(
        reverse("private_video:upload_cancel", args=[world.done.pk]), follow=True
    )
    assert response.status_code == 200
    assert "only an upload still receiving can be cancelled" in response.content.decode()
    world.done.refresh_from_db()
    assert world.done.state == State.COMPLETE


def test_upload_page_tells_the_script_the_path_and_links_the_list(world):
    page = client_for(world.olga).get(reverse("private_video:add")).content.decode()
    form = re.search(r'<form id="video-upload-form"(.*?)>', page, re.S).group(1)
    assert 'data-upload-backend="tus"' in form
    assert f'data-tus-url="{reverse("private_video:tus_create")}"' in form
    assert re.search(r'data-chunk-size="\d+"', form)
    assert f'href="{reverse("private_video:uploads")}"' in page
    assert "private_video/uploader/vendor/uppy.min.js" in page


def test_videos_listing_links_the_uploads_in_progress(world):
    page = client_for(world.olga).get(reverse("private_video:index")).content.decode()
    link = re.search(rf'<a [^>]*href="{reverse("private_video:uploads")}"[^>]*>(.*?)</a>', page, re.S)
    assert link and "Uploads in progress" in link.group(1)
