"""The tus 1.0 server for local storage (issue 13), at the Django level:
creation, HEAD, PATCH, checksum, termination, completion into a Video, and
the hostile cases (wrong offset, oversize, someone else's upload, expiry, a
file that is not a video, CSRF, collection rights, hostile file names).
Through real nginx and gunicorn with the tuspy client: test_uploads_tus_stack."""

import base64
import hashlib
import io
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Collection

from private_video.layout import original_name
from private_video.models import Upload, Video
from private_video.storage import configured_private_storage
from private_video.uploads import staging
from private_video.uploads.completion import expire_uploads
from private_video.uploads.tasks import expire_uploads_task

from .helpers import collection_group, make_user

pytestmark = pytest.mark.django_db

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture(autouse=True)
def staging_folder(settings, tmp_path):
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(tmp_path / "staging")
    return tmp_path / "staging"


@pytest.fixture
def library():
    root = Collection.get_first_root_node()
    films = root.add_child(name="Films")
    other = root.add_child(name="Other")
    editors = collection_group("Film editors", films, "add_video", "change_video")
    return films, other, editors


@pytest.fixture
def editor(library):
    films, _other, editors = library
    return make_user("editor", groups=[editors])


def signed_in(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def metadata(**values):
    return ",".join(
        f"{key} {base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()}"
        for key, value in values.items()
    )


def post_create(client, **headers):
    """A tus creation request: headers only, an empty body (as tus clients send)."""
    return client.generic("POST", reverse("private_video:tus_create"), b"", headers=headers)


def create(client, length, **meta):
    return post_create(client, **TUS, **{"Upload-Length": str(length), "Upload-Metadata": metadata(**meta)})


def created_upload(response):
    assert response.status_code == 201, response.content
    location = response["Location"]
    upload_id = location.rstrip("/").rsplit("/", 1)[-1]
    return location, Upload.objects.get(pk=upload_id)


def patch(client, location, offset, body, **headers):
    return client.generic(
        "PATCH", location, body, content_type="application/offset+octet-stream",
        headers={**TUS, "Upload-Offset": str(offset), **headers},
    )


def head(client, location):
    return client.head(location, headers=TUS)


def staged_size(upload):
    return staging.size(upload.pk)


def private_files():
    root = Path(configured_private_storage().location)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_options_says_what_the_server_supports(editor):
    response = signed_in(editor).options(reverse("private_video:tus_create"))
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0"
    assert set(response["Tus-Extension"].split(",")) >= {"creation", "expiration", "termination", "checksum"}
    assert int(response["Tus-Max-Size"]) == 8 * 1024**3
    assert "sha1" in response["Tus-Checksum-Algorithm"].split(",")


def test_chunks_resume_from_head_and_the_last_one_makes_the_video(editor, library, sample_video, staging_folder):
    films = library[0]
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="holiday.mp4", title="Holiday",
                                             collection=films.pk))
    assert upload.user == editor and upload.collection == films and upload.length == len(data)
    assert staging.path_for(upload.pk).parent == staging_folder
    assert oct(staging_folder.stat().st_mode & 0o777) == oct(0o700)
    assert oct(staging.path_for(upload.pk).stat().st_mode & 0o777) == oct(0o600)

    first = head(client, location)
    assert first.status_code == 200
    assert first["Upload-Offset"] == "0" and first["Upload-Length"] == str(len(data))
    assert "no-store" in first["Cache-Control"]
    assert first["Upload-Expires"].endswith("GMT")

    third = len(data) // 3
    sha1 = base64.b64encode(hashlib.sha1(data[:third]).digest()).decode()
    response = patch(client, location, 0, data[:third], **{"Upload-Checksum": f"sha1 {sha1}"})
    assert response.status_code == 204, response.content
    assert response["Upload-Offset"] == str(third)
    # The client resumes from what the server says it has.
    assert head(client, location)["Upload-Offset"] == str(third)
    assert patch(client, location, third, data[third:2 * third]).status_code == 204
    assert Video.objects.count() == 0  # incomplete: no video yet
    response = patch(client, location, 2 * third, data[2 * third:])
    assert response.status_code == 204, response.content

    upload.refresh_from_db()
    video = Video.objects.get(pk=response["Upload-Video"])
    assert upload.state == Upload.State.COMPLETE and upload.video == video
    assert video.key == upload.video_key
    assert video.file.name == original_name(upload.video_key, ".mp4")
    assert video.title == "Holiday" and video.collection == films and video.uploaded_by_user == editor
    assert video.original_filename == "holiday.mp4" and video.file_size == len(data)
    assert video.duration and video.width == 320
    with video.file.open("rb") as stored:
        assert hashlib.sha256(stored.read()).digest() == hashlib.sha256(data).digest()
    assert not staging.path_for(upload.pk).exists()

    status = client.get(reverse("private_video:upload_status", args=[upload.pk])).json()
    assert status["state"] == "complete" and status["offset"] == status["length"] == len(data)
    assert status["video"] == {"id": video.pk, "title": "Holiday", "edit_url": video.get_admin_edit_url()}
    # A client that reloads and asks again learns the upload is done.
    again = head(client, location)
    assert again["Upload-Offset"] == str(len(data)) and again["Upload-Video"] == str(video.pk)
    # Terminating a finished upload is refused, not a 204 that changed nothing:
    # its bytes are the video's now.
    refused = client.delete(location, headers=TUS)
    assert refused.status_code == 409 and "delete the video instead" in refused.json()["error"]
    assert refused["Upload-Video"] == str(video.pk)
    upload.refresh_from_db()
    assert upload.state == Upload.State.COMPLETE and Video.objects.filter(pk=video.pk).exists()
    with video.file.open("rb") as stored:
        assert hashlib.sha256(stored.read()).digest() == hashlib.sha256(data).digest()


def test_a_staging_folder_made_by_hand_is_made_private(editor, library, staging_folder):
    staging_folder.mkdir(mode=0o755)
    os.chmod(staging_folder, 0o755)
    _location, upload = created_upload(create(signed_in(editor), 10, filename="a.mp4", collection=library[0].pk))
    assert oct(staging_folder.stat().st_mode & 0o777) == oct(0o700)
    assert oct(staging.path_for(upload.pk).stat().st_mode & 0o777) == oct(0o600)


def test_a_wrong_offset_is_a_conflict_and_writes_nothing(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 1000, filename="a.mp4", collection=library[0].pk))
    assert patch(client, location, 0, b"x" * 100).status_code == 204
    for wrong in (0, 50, 101, 999):
        response = patch(client, location, wrong, b"y" * 10)
        assert response.status_code == 409, wrong
        assert response["Upload-Offset"] == "100"
        assert staged_size(upload) == 100
    assert staging.path_for(upload.pk).read_bytes() == b"x" * 100
    # Malformed offsets are refused too.
    assert patch(client, location, "-1", b"y").status_code == 400
    assert patch(client, location, "1e3", b"y").status_code == 400


def test_an_oversize_upload_is_refused_at_creation(editor, library, settings, staging_folder):
    settings.PRIVATE_VIDEO_MAX_UPLOAD_SIZE = 10_000
    client = signed_in(editor)
    response = create(client, 10_001, filename="big.mp4", collection=library[0].pk)
    assert response.status_code == 413
    assert "largest video" in response.json()["error"]
    assert not Upload.objects.exists()
    assert not any(staging_folder.glob("*")) if staging_folder.exists() else True
    assert create(client, 10_000, filename="ok.mp4", collection=library[0].pk).status_code == 201
    for bad in ("", "abc", "-5", "0"):
        response = post_create(client, **{**TUS, "Upload-Length": bad})
        assert response.status_code == 400, bad
    assert Upload.objects.count() == 1


def test_bytes_past_the_announced_length_are_refused_unwritten(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    assert patch(client, location, 0, b"x" * 60).status_code == 204
    response = patch(client, location, 60, b"y" * 41)
    assert response.status_code == 413
    assert staged_size(upload) == 60


def test_a_bad_checksum_keeps_nothing_of_that_request(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    response = patch(client, location, 0, b"x" * 40, **{"Upload-Checksum": f"md5 {wrong}"})
    assert response.status_code == 460
    assert response["Upload-Offset"] == "0" and staged_size(upload) == 0
    assert patch(client, location, 0, b"x", **{"Upload-Checksum": "crc32 AAAA"}).status_code == 400


def test_another_users_upload_is_not_found(editor, library):
    films, _other, editors = library
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=films.pk))
    assert patch(client, location, 0, b"x" * 10).status_code == 204
    colleague = signed_in(make_user("colleague", groups=[editors]))
    assert head(colleague, location).status_code == 404
    assert patch(colleague, location, 10, b"z" * 10).status_code == 404
    assert colleague.delete(location, headers=TUS).status_code == 404
    upload.refresh_from_db()
    assert upload.state == Upload.State.RECEIVING and staged_size(upload) == 10
    assert staging.path_for(upload.pk).read_bytes() == b"x" * 10


def test_termination_deletes_the_bytes(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    patch(client, location, 0, b"x" * 10)
    assert client.delete(location, headers=TUS).status_code == 204
    upload.refresh_from_db()
    assert upload.state == Upload.State.CANCELLED
    assert not staging.path_for(upload.pk).exists()
    assert head(client, location).status_code == 410
    assert patch(client, location, 10, b"x").status_code == 410


def test_an_expired_upload_is_gone_and_cleanup_removes_its_bytes(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    fresh_location, fresh = created_upload(create(client, 100, filename="b.mp4", collection=library[0].pk))
    patch(client, location, 0, b"x" * 10)
    patch(client, fresh_location, 0, b"x" * 10)
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert head(client, location).status_code == 410
    assert patch(client, location, 10, b"x" * 10).status_code == 410
    assert staged_size(upload) == 10

    assert expire_uploads() == 1
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert not staging.path_for(upload.pk).exists()
    assert head(client, location).status_code == 404
    # The fresh one is untouched, and no Video was ever made.
    assert staged_size(fresh) == 10 and Upload.objects.filter(pk=fresh.pk).exists()
    assert Video.objects.count() == 0


def test_expiry_runs_as_a_task_and_a_command_and_keeps_videos(editor, library, sample_video):
    client = signed_in(editor)
    data = Path(sample_video).read_bytes()
    location, done = created_upload(create(client, len(data), filename="a.mp4", collection=library[0].pk))
    video_id = patch(client, location, 0, data)["Upload-Video"]
    _loc, stale = created_upload(create(client, 100, filename="b.mp4", collection=library[0].pk))
    past = timezone.now() - timedelta(seconds=1)
    Upload.objects.filter(pk=stale.pk).update(expires_at=past)
    result = expire_uploads_task.enqueue()
    assert result.return_value == 1
    assert not staging.path_for(stale.pk).exists()

    Upload.objects.filter(pk=done.pk).update(expires_at=past)
    out = io.StringIO()
    call_command("expire_uploads", stdout=out)
    assert "1 expired upload" in out.getvalue()
    assert not Upload.objects.exists()
    video = Video.objects.get(pk=video_id)  # a finished upload's video stays
    assert video.file.storage.exists(video.file.name)


def test_a_completed_upload_that_is_not_a_video_fails_cleanly(editor, library):
    client = signed_in(editor)
    data = b"<html>" + os.urandom(20_000)
    location, upload = created_upload(create(client, len(data), filename="clip.mp4", collection=library[0].pk))
    before = private_files()
    response = patch(client, location, 0, data)
    assert response.status_code == 422
    assert "clip.mp4" in response.json()["error"] and "not a video" in response.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.FAILED and upload.error == response.json()["error"]
    assert Video.objects.count() == 0
    assert private_files() == before
    assert not staging.path_for(upload.pk).exists()
    status = client.get(reverse("private_video:upload_status", args=[upload.pk])).json()
    assert status["state"] == "failed" and status["error"] == upload.error and status["video"] is None
    assert head(client, location).status_code == 410
    # A failed upload can still be cancelled (it leaves the in-progress list's
    # failed state for cancelled); one being probed cannot.
    assert client.delete(location, headers=TUS).status_code == 204
    upload.refresh_from_db()
    assert upload.state == Upload.State.CANCELLED
    Upload.objects.filter(pk=upload.pk).update(state=Upload.State.PROCESSING)
    refused = client.delete(location, headers=TUS)
    assert refused.status_code == 409 and "being checked" in refused.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.PROCESSING


def test_csrf_is_checked_on_post_patch_and_delete(editor, library):
    client = signed_in(editor, enforce_csrf_checks=True)
    assert create(client, 100, filename="a.mp4", collection=library[0].pk).status_code == 403
    assert not Upload.objects.exists()
    client.get(reverse("private_video:add"))
    token = client.cookies["csrftoken"].value
    response = post_create(client, **{
        **TUS, "Upload-Length": "100", "Upload-Metadata": metadata(filename="a.mp4", collection=library[0].pk),
        "X-CSRFToken": token,
    })
    location, upload = created_upload(response)
    assert patch(client, location, 0, b"x" * 10).status_code == 403
    assert client.delete(location, headers=TUS).status_code == 403
    assert staged_size(upload) == 0
    assert patch(client, location, 0, b"x" * 10, **{"X-CSRFToken": token}).status_code == 204
    assert head(client, location)["Upload-Offset"] == "10"  # HEAD is safe: no token needed


def test_only_collections_the_user_may_add_to(editor, library, staging_folder):
    films, other, _editors = library
    client = signed_in(editor)
    assert create(client, 100, filename="a.mp4", collection=other.pk).status_code == 403
    assert create(client, 100, filename="a.mp4", collection=99999).status_code == 403
    assert create(client, 100, filename="a.mp4", collection="x").status_code == 400
    assert not Upload.objects.exists()
    # No collection named: the topmost one the user may add to.
    _location, upload = created_upload(create(client, 100, filename="a.mp4"))
    assert upload.collection == films
    viewer = signed_in(make_user("nobody"))
    assert create(viewer, 100, filename="a.mp4").status_code in (302, 403)
    assert Upload.objects.count() == 1


def test_losing_the_right_refuses_the_next_chunk_and_the_video(editor, library, sample_video):
    films, _other, editors = library
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="a.mp4", collection=films.pk))
    assert patch(client, location, 0, data[:1000]).status_code == 204
    # The editor stays an admin user, but may no longer add to Films.
    from wagtail.models import GroupCollectionPermission

    GroupCollectionPermission.objects.filter(group=editors, permission__codename="add_video").delete()
    # The next chunk, a middle one or the last, is refused before a byte of it is stored.
    for chunk in (data[1000:2000], data[1000:]):
        response = patch(client, location, 1000, chunk)
        assert response.status_code == 403
        assert "no longer add videos" in response.json()["error"]
        assert staged_size(upload) == 1000
    upload.refresh_from_db()
    assert upload.state == Upload.State.RECEIVING and upload.video_id is None
    assert head(client, location)["Upload-Offset"] == "1000"
    assert Video.objects.count() == 0


def test_losing_the_right_while_the_last_chunk_arrives_refuses_the_video(editor, library, sample_video, monkeypatch):
    """Completion checks the right again: one taken away after the last
    PATCH was let in (its bytes still arriving) still makes no Video."""
    from private_video.uploads import tus
    from wagtail.models import GroupCollectionPermission

    films, _other, editors = library
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    location, upload = created_upload(create(client, len(data), filename="a.mp4", collection=films.pk))
    assert patch(client, location, 0, data[:1000]).status_code == 204
    real_write = tus._write

    def revoke_then_write(*args, **kwargs):
        GroupCollectionPermission.objects.filter(group=editors, permission__codename="add_video").delete()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(tus, "_write", revoke_then_write)
    response = patch(client, location, 1000, data[1000:])
    assert response.status_code == 422
    assert "no longer add videos" in response.json()["error"]
    upload.refresh_from_db()
    assert upload.state == Upload.State.FAILED
    assert Video.objects.count() == 0 and not staging.path_for(upload.pk).exists()


def test_hostile_file_names_are_data_only(editor, library, sample_video):
    data = Path(sample_video).read_bytes()
    client = signed_in(editor)
    names = {
        "../../x": "x",
        "..\\..\\evil.mp4": "evil.mp4",
        "a\x00b\x1f.mp4": "ab.mp4",
        "../": "video",
        "n" * 300 + ".mp4": "n" * 251 + ".mp4",
    }
    for sent, kept in names.items():
        _location, upload = created_upload(create(client, len(data), filename=sent.encode(), collection=library[0].pk))
        assert upload.filename == kept
        assert staging.path_for(upload.pk).name == f"{upload.pk.hex}.part"
    location, upload = created_upload(create(client, len(data), filename="../../x", collection=library[0].pk))
    video = Video.objects.get(pk=patch(client, location, 0, data)["Upload-Video"])
    assert video.original_filename == "x" and video.title == "x"
    assert video.file.name == original_name(upload.video_key, ".mp4")
    # Metadata that is not base64 or not UTF-8 is refused.
    bad = post_create(client, **TUS, **{"Upload-Length": "10", "Upload-Metadata": "filename !!!"})
    assert bad.status_code == 400
    bad = post_create(client, **TUS, **{"Upload-Length": "10", "Upload-Metadata": metadata(filename=b"\xff\xfe")})
    assert bad.status_code == 400


def test_a_second_writer_waits_its_turn(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    with staging.lock(upload.pk) as fd:
        assert fd is not None  # this test holds the upload, as a running PATCH would
        response = patch(client, location, 0, b"x" * 10)
        assert response.status_code == 423
        assert staged_size(upload) == 0
    assert patch(client, location, 0, b"x" * 10).status_code == 204


def test_a_cut_request_keeps_what_arrived(editor, library):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 5 * 1024**2, filename="a.mp4", collection=library[0].pk))
    arrived = os.urandom(3 * 1024**2 + 17)
    # Content-Length says 4 MiB, the connection ends after 3 MiB and 17 bytes.
    response = client.generic(
        "PATCH", location, b"", content_type="application/offset+octet-stream",
        headers={**TUS, "Upload-Offset": "0"}, CONTENT_TYPE="application/offset+octet-stream",
        CONTENT_LENGTH=str(4 * 1024**2), **{"wsgi.input": io.BytesIO(arrived)},
    )
    assert response.status_code == 400
    assert head(client, location)["Upload-Offset"] == str(len(arrived))
    assert staging.path_for(upload.pk).read_bytes() == arrived
    upload.refresh_from_db()
    assert upload.offset == len(arrived)


def test_tus_version_and_content_type_are_required(editor, library):
    client = signed_in(editor)
    response = post_create(client, **{"Upload-Length": "10"})
    assert response.status_code == 412 and response["Tus-Version"] == "1.0.0"
    location, upload = created_upload(create(client, 100, filename="a.mp4", collection=library[0].pk))
    response = client.generic("PATCH", location, b"x", content_type="application/octet-stream",
                              headers={**TUS, "Upload-Offset": "0"})
    assert response.status_code == 415 and staged_size(upload) == 0


def test_the_status_view_is_for_the_owner_and_those_who_may_change(editor, library):
    films, _other, _editors = library
    client = signed_in(editor)
    _location, upload = created_upload(create(client, 100, filename="a.mp4", collection=films.pk))
    url = reverse("private_video:upload_status", args=[upload.pk])
    assert client.get(url).json()["state"] == "receiving"
    adder = collection_group("Adders", films, "add_video")
    assert signed_in(make_user("adder", groups=[adder])).get(url).status_code == 404
    boss = signed_in(make_user("boss", superuser=True))
    assert boss.get(url).json()["offset"] == 0


# --- the body straight from gunicorn's socket (splice) --------------------------------
# gunicorn's own parser and WSGI environ over a real Unix socket pair (what nginx
# talks to in production), handed to Django's WSGIRequest: the request a sync
# worker gives the view, without a server process.

import socket  # noqa: E402
import threading  # noqa: E402

from django.core.handlers.wsgi import WSGIRequest  # noqa: E402
from django.test import RequestFactory  # noqa: E402


class GunicornRequest:
    """Sends ``head + body`` (then ``tail``, then closes, or cuts after
    ``cut_at`` body bytes) from a thread; ``request`` is Django's request
    built on gunicorn's reader of the other end."""

    def __init__(self, body, *, tail=b"", cut_at=None, chunked=False):
        from gunicorn import http as gunicorn_http
        from gunicorn.config import Config
        from gunicorn.http import wsgi as gunicorn_wsgi

        self.server, self.client = socket.socketpair()
        if chunked:
            head = b"PATCH /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            payload = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        else:
            head = b"PATCH /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            payload = body if cut_at is None else body[:cut_at]
        self.sender = threading.Thread(target=self._send, args=(head + payload, tail), daemon=True)
        self.sender.start()
        cfg = Config()
        self.parser = gunicorn_http.get_parser(cfg, self.server, ("127.0.0.1", 1))
        self.req = next(self.parser)
        _response, environ = gunicorn_wsgi.create(self.req, self.server, ("127.0.0.1", 1), "127.0.0.1:2", cfg)
        self.environ = environ
        self.request = WSGIRequest(environ)

    def _send(self, data, tail):
        try:
            self.client.sendall(data)
            if tail:
                self.client.sendall(tail)
            self.client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the test closed its end without reading everything

    def close(self):
        self.server.close()
        self.sender.join(10)
        self.client.close()


def staged_file(tmp_path):
    path = tmp_path / "upload.part"
    path.write_bytes(b"")
    return os.open(path, os.O_RDWR), path


def test_under_gunicorn_the_body_is_spliced_from_the_socket(tmp_path):
    body = os.urandom(5 * 1024 * 1024 + 123)
    next_request = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    sent = GunicornRequest(body, tail=next_request)
    fd, path = staged_file(tmp_path)
    try:
        # The headers' read took the body's first bytes along: they come first.
        assert sent.req.unreader.buf.getbuffer().nbytes > 0
        assert staging.gunicorn_body(sent.request, len(body)) is not None
        hasher = hashlib.sha256()
        assert staging.write_body(sent.request, fd, len(body), hasher) == len(body)
        assert path.read_bytes() == body
        assert hasher.digest() == hashlib.sha256(body).digest()
        # gunicorn's reader and Django's stream know the body is consumed: no
        # read waits for more, and what follows the body is left for gunicorn.
        assert sent.request.read() == b""
        assert sent.environ["wsgi.input"].read() == b""
        following = next(sent.parser)
        assert (following.method, following.path) == ("GET", "/next")
    finally:
        os.close(fd)
        sent.close()


def test_a_body_cut_mid_splice_keeps_what_arrived(tmp_path):
    body = os.urandom(3 * 1024 * 1024)
    sent = GunicornRequest(body, cut_at=2 * 1024 * 1024 + 7)
    fd, path = staged_file(tmp_path)
    try:
        assert staging.gunicorn_body(sent.request, len(body)) is not None
        hasher = hashlib.sha256()
        written = staging.write_body(sent.request, fd, len(body), hasher)
        assert written == 2 * 1024 * 1024 + 7
        assert path.read_bytes() == body[:written]
    finally:
        os.close(fd)
        sent.close()


def test_bodies_gunicorn_does_not_hold_as_expected_are_read_through_python(tmp_path):
    body = os.urandom(700 * 1024)
    fd, path = staged_file(tmp_path)
    try:
        # Django's test client and runserver: no gunicorn socket.
        request = RequestFactory().generic("PATCH", "/up", body, content_type="application/offset+octet-stream")
        assert staging.gunicorn_body(request, len(body)) is None
        assert staging.write_body(request, fd, len(body)) == len(body)
        assert path.read_bytes() == body

        # A chunked body (no length to splice by).
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        sent = GunicornRequest(body, chunked=True)
        try:
            assert staging.gunicorn_body(sent.request, len(body)) is None
        finally:
            sent.close()

        # A body someone already started reading: the rest, through Python.
        sent = GunicornRequest(body)
        try:
            first = sent.request.read(1000)
            assert staging.gunicorn_body(sent.request, len(body) - 1000) is None
            assert staging.write_body(sent.request, fd, len(body) - 1000) == len(body) - 1000
            assert first + path.read_bytes() == body
        finally:
            sent.close()

        # Another socket class than the plain one (ssl.SSLSocket is one: its
        # descriptor carries ciphertext): never spliced.
        sent = GunicornRequest(body)
        try:
            class OtherSocket(socket.socket):
                pass

            other = OtherSocket(fileno=os.dup(sent.server.fileno()))
            sent.req.unreader.sock = sent.environ["gunicorn.socket"] = sent.request.META["gunicorn.socket"] = other
            assert staging.gunicorn_body(sent.request, len(body)) is None
            other.close()
        finally:
            sent.close()

        # A non-blocking socket (gevent's kind): never blocked on in the kernel.
        sent = GunicornRequest(body)
        try:
            sent.server.setblocking(False)
            assert staging.gunicorn_body(sent.request, len(body)) is None
        finally:
            sent.close()
    finally:
        os.close(fd)


def test_a_file_that_takes_no_spliced_pages_gets_the_rest_by_reads(tmp_path):
    # splice(2) refuses a file opened for appending (EINVAL), as some file systems do.
    body = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "append.part"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    sent = GunicornRequest(body)
    try:
        assert staging.gunicorn_body(sent.request, len(body)) is not None
        assert staging.write_body(sent.request, fd, len(body)) == len(body)
        assert path.read_bytes() == body
        assert sent.environ["wsgi.input"].read() == b""
    finally:
        os.close(fd)
        sent.close()


def test_a_file_that_cannot_take_the_bytes_is_a_write_failure_not_a_cut():
    # /dev/full: every write fails with ENOSPC, as on a full disk.
    body = os.urandom(300 * 1024)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        request = RequestFactory().generic("PATCH", "/up", body, content_type="application/offset+octet-stream")
        with pytest.raises(staging.WriteFailed):
            staging.write_body(request, full, len(body))
        sent = GunicornRequest(body)
        try:
            assert staging.gunicorn_body(sent.request, len(body)) is not None
            with pytest.raises(staging.WriteFailed):
                staging.write_body(sent.request, full, len(body))
        finally:
            sent.close()
    finally:
        os.close(full)


@pytest.fixture
def full_staging(staging_folder):
    """The staging folder on a 1 MiB tmpfs: a disk that fills up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev container run as root)")
    staging_folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(staging_folder)], check=True)
    try:
        yield staging_folder
    finally:
        subprocess.run(["umount", "-l", str(staging_folder)], check=False)


def test_a_full_disk_is_a_clear_error_that_keeps_the_bytes_before(editor, library, full_staging):
    client = signed_in(editor)
    location, upload = created_upload(create(client, 3 * 1024**2, filename="a.mp4", collection=library[0].pk))
    first = os.urandom(256 * 1024)
    assert patch(client, location, 0, first).status_code == 204
    # 2 MiB more do not fit on the 1 MiB disk.
    response = patch(client, location, len(first), os.urandom(2 * 1024**2))
    assert response.status_code == 507 and "no room" in response.json()["error"]
    assert response["Upload-Offset"] == str(len(first))
    assert staging.path_for(upload.pk).read_bytes() == first
    assert head(client, location)["Upload-Offset"] == str(len(first))


def test_a_collection_with_uploads_in_progress_is_not_deleted_in_the_admin(editor, library):
    films, _other, _editors = library
    location, upload = created_upload(create(signed_in(editor), 5000, filename="a.mp4", collection=films.pk))
    admin = signed_in(make_user("collection-admin", superuser=True))
    url = reverse("wagtailadmin_collections:delete", args=[films.pk])
    page = admin.get(url)
    assert page.status_code == 200
    assert "1 upload in progress" in page.content.decode()
    assert admin.post(url).status_code == 403
    assert Collection.objects.filter(pk=films.pk).exists() and staged_size(upload) == 0
    # Once the upload is cancelled the collection is empty again, and goes.
    assert signed_in(editor).delete(location, headers=TUS).status_code == 204
    assert admin.post(url).status_code == 302
    assert not Collection.objects.filter(pk=films.pk).exists()


@pytest.mark.parametrize("deleted", ["collection", "owner"])
def test_an_upload_deleted_with_its_collection_or_owner_takes_its_bytes(
    editor, library, deleted, django_capture_on_commit_callbacks
):
    """Outside the admin (a shell, a user removed): the rows cascade, and the
    staged bytes go with them once the delete commits, not left on disk."""
    films, _other, _editors = library
    client = signed_in(editor)
    location, upload = created_upload(create(client, 5000, filename="a.mp4", collection=films.pk))
    assert patch(client, location, 0, b"x" * 1000).status_code == 204
    kept_location, kept = created_upload(
        create(signed_in(make_user("other-editor", groups=[library[2]])), 5000, filename="b.mp4")
    )
    with django_capture_on_commit_callbacks(execute=True):
        (films if deleted == "collection" else editor).delete()
        # Not before the commit: a rolled-back delete must lose nothing.
        assert staged_size(upload) == 1000
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert staged_size(upload) is None
    if deleted == "owner":
        assert staged_size(kept) == 0 and Upload.objects.filter(pk=kept.pk).exists()


def test_expiry_discards_the_bytes_once(editor, library, monkeypatch, django_capture_on_commit_callbacks):
    from private_video.uploads import completion

    client = signed_in(editor)
    _location, upload = created_upload(create(client, 5000, filename="a.mp4"))
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    calls = []
    real = completion.discard_bytes
    monkeypatch.setattr(completion, "discard_bytes", lambda u: (calls.append(u.pk), real(u)))
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_uploads() == 1
    assert calls == [upload.pk] and staged_size(upload) is None
