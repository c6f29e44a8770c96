"""Editors are checked per object: an editor with rights on collection A only
can neither see nor change anything in collection B, on any admin URL of the
video library, whatever the request says; and upload requests too large for
the limit are refused from their headers, before the body is read.

Each negative case asserts the answer (404, or 403 without a CSRF token) and
that nothing changed: the database row, its tags, the original's bytes, the
files on disk, Wagtail's log and the transcode jobs."""

import csv
import hashlib
import io
import json
import re
import socket
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission, ModelLogEntry

from private_video.models import Video
from transcoding.models import TranscodeJob
from transcoding.profiles import ladder_signature
from transcoding.testmedia import make_test_video

from .conftest import SMALL_UPLOAD_LIMIT
from .helpers import make_user, make_video, stack_session

DUMMY_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
}
A_TITLE = "Alpha lecture"
B_TITLE = "Bravo board meeting"
B_COLLECTION = "Hidden board"


# --- the world ------------------------------------------------------------------


def grant(group, collection, *codenames):
    for codename in codenames:
        GroupCollectionPermission.objects.create(
            group=group, collection=collection, permission=Permission.objects.get(codename=codename)
        )


def editor_group(name, grants):
    group = Group.objects.create(name=name)
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    for collection, codenames in grants:
        grant(group, collection, *codenames)
    return group


def job_for(video, **fields):
    return TranscodeJob.objects.create(
        video=video, source_name=video.file.name, ladder_signature=ladder_signature(), **fields
    )


class World:
    def __init__(self, sample_video):
        root = Collection.get_first_root_node()
        self.a = root.add_child(name="Team A")
        self.b = root.add_child(name=B_COLLECTION)
        self.owner = make_user("owner-of-b", superuser=True)
        group = editor_group("A editors", [(self.a, ["add_video", "change_video", "choose_video"])])
        self.editor = make_user("editor-a", groups=[group])
        self.superuser = make_user("boss", superuser=True)
        self.video_a = make_video(sample_video, title=A_TITLE, collection=self.a, user=self.owner)
        self.video_b = make_video(sample_video, title=B_TITLE, collection=self.b, user=self.owner)
        self.video_b.tags.add("confidential")
        self.video_b.save()
        # Failed: a re-run would queue a job if it were allowed.
        job_for(self.video_b, status="failed", error="boom")


@pytest.fixture
def world(sample_video):
    return World(sample_video)


@pytest.fixture(scope="module")
def replacement(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("replacement") / "replacement.mp4", duration=2)


def stored_path(video):
    return Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name


def private_files():
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def snapshot(video):
    """Everything an attack on ``video`` could change."""
    row = Video.objects.filter(pk=video.pk).values().first()
    assert row is not None, "the video is gone"
    return {
        "row": row,
        "tags": sorted(Video.objects.get(pk=video.pk).tags.names()),
        "sha256": hashlib.sha256(stored_path(video).read_bytes()).hexdigest(),
        "files": private_files(),
        "log_entries": ModelLogEntry.objects.count(),
        "jobs": list(TranscodeJob.objects.filter(video=video).values_list("pk", "status")),
        "videos": Video.objects.count(),
    }


def max_upload_request_size():
    from private_video.validation import max_upload_request_size

    return max_upload_request_size()


def body_of(response):
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def upload(path, name=None):
    return SimpleUploadedFile(name or Path(path).name, Path(path).read_bytes(), "video/mp4")


def signed_in(user, *, enforce_csrf=False):
    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def csrf_token_from(html):
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


# --- the admin URLs of one video --------------------------------------------------

# name, method, url name, data builder (world, replacement file) -> POST data
READS = [
    ("edit", "private_video:edit"),
    ("delete confirmation", "private_video:delete"),
    ("usage", "private_video:usage"),
    ("history", "private_video:history"),
    ("history results", "private_video:history_results"),
    ("processing status", "private_video_transcoding:processing_status"),
    ("chooser chosen", "private_video_chooser:chosen"),
]


def rename_and_move(world, replacement):
    return {"title": "Renamed by A", "collection": world.a.pk, "tags": "mine"}


def rename_without_collection(world, replacement):
    return {"title": "Renamed by A", "tags": ""}


def replace_file(world, replacement):
    return {"title": B_TITLE, "collection": world.b.pk, "file": upload(replacement)}


WRITES = [
    ("rename and move", "private_video:edit", rename_and_move),
    ("rename, collection omitted", "private_video:edit", rename_without_collection),
    ("replace file", "private_video:edit", replace_file),
    ("delete", "private_video:delete", lambda world, replacement: {}),
    ("re-run transcode", "private_video_transcoding:rerun", lambda world, replacement: {}),
]


pytestmark_db = pytest.mark.django_db


def links_to(text, video):
    return any(f"{part}/{video.pk}/" in text for part in ("edit", "delete", "usage", "history", "chosen"))


@pytestmark_db
@pytest.mark.parametrize("label,url_name", READS, ids=[r[0] for r in READS])
def test_editor_of_a_gets_404_reading_b(world, label, url_name):
    before = snapshot(world.video_b)
    client = signed_in(world.editor)
    response = client.get(reverse(url_name, args=[world.video_b.pk]))
    assert response.status_code == 404, (label, response.status_code)
    assert B_TITLE not in response.content.decode(errors="replace")
    assert snapshot(world.video_b) == before
    # The same URL for the editor's own collection answers.
    assert client.get(reverse(url_name, args=[world.video_a.pk])).status_code == 200, label


@pytestmark_db
@override_settings(TASKS=DUMMY_TASKS)
@pytest.mark.parametrize("label,url_name,data", WRITES, ids=[w[0] for w in WRITES])
def test_editor_of_a_cannot_change_b_with_csrf_token(world, replacement, label, url_name, data):
    before = snapshot(world.video_b)
    client = signed_in(world.editor, enforce_csrf=True)
    # A token from a page the editor may see.
    token = csrf_token_from(client.get(reverse("private_video:edit", args=[world.video_a.pk])).content.decode())
    payload = {"csrfmiddlewaretoken": token, **data(world, replacement)}
    response = client.post(reverse(url_name, args=[world.video_b.pk]), payload)
    assert response.status_code == 404, (label, response.status_code)
    assert snapshot(world.video_b) == before


@pytestmark_db
@override_settings(TASKS=DUMMY_TASKS)
@pytest.mark.parametrize("label,url_name,data", WRITES, ids=[w[0] for w in WRITES])
def test_editor_of_a_cannot_change_b_without_csrf_token(world, replacement, label, url_name, data):
    before = snapshot(world.video_b)
    client = signed_in(world.editor, enforce_csrf=True)
    response = client.post(reverse(url_name, args=[world.video_b.pk]), data(world, replacement))
    assert response.status_code == 403, (label, response.status_code)
    assert snapshot(world.video_b) == before


@pytestmark_db
def test_upload_views_still_need_a_csrf_token(world, sample_video):
    # They check CSRF themselves (after the size check), not in the middleware.
    before = snapshot(world.video_a)
    client = signed_in(world.editor, enforce_csrf=True)
    for url in (reverse("private_video:add"), reverse("private_video_chooser:create"),
                reverse("private_video:edit", args=[world.video_a.pk])):
        response = client.post(url, {"title": "No token", "collection": world.a.pk, "file": upload(sample_video)})
        assert response.status_code == 403, url
    assert snapshot(world.video_a) == before
    token = csrf_token_from(client.get(reverse("private_video:add")).content.decode())
    response = client.post(reverse("private_video:add"), {"csrfmiddlewaretoken": token, "file": upload(sample_video)},
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content


@pytestmark_db
def test_chosen_multiple_leaves_out_b(world):
    client = signed_in(world.editor)
    response = client.get(
        reverse("private_video_chooser:chosen_multiple"), {"id": [world.video_a.pk, world.video_b.pk]}
    )
    assert response.status_code == 200
    body = json.loads(response.content)
    assert [item["id"] for item in body["result"]] == [str(world.video_a.pk)]
    assert B_TITLE not in response.content.decode()


# --- listing, search, filters, export ------------------------------------------


LISTINGS = [
    ("index", "private_video:index", {}),
    ("results", "private_video:index_results", {}),
    ("search", "private_video:index", {"q": "Bravo"}),
    ("search results", "private_video:index_results", {"q": "board"}),
    ("collection filter", "private_video:index", {"collection": "B"}),
    ("tag filter", "private_video:index", {"tag": "confidential"}),
    ("csv export", "private_video:index", {"export": "csv"}),
    ("chooser", "private_video_chooser:choose", {}),
    ("chooser search", "private_video_chooser:choose_results", {"q": "Bravo"}),
    ("chooser collection", "private_video_chooser:choose", {"collection_id": "B"}),
    ("chooser results collection", "private_video_chooser:choose_results", {"collection_id": "B"}),
]


@pytestmark_db
@pytest.mark.parametrize("label,url_name,params", LISTINGS, ids=[x[0] for x in LISTINGS])
def test_listings_do_not_leak_b(world, label, url_name, params):
    params = {key: (world.b.pk if value == "B" else value) for key, value in params.items()}
    response = signed_in(world.editor).get(reverse(url_name), params)
    assert response.status_code == 200, label
    text = body_of(response).decode()
    assert B_TITLE not in text, label
    assert "board meeting" not in text, label
    assert B_COLLECTION not in text, label
    assert not links_to(text, world.video_b), label
    if not params:
        assert A_TITLE in text, label


@pytestmark_db
@pytest.mark.parametrize("url_name", ["private_video_chooser:choose", "private_video_chooser:choose_results"])
def test_chooser_with_a_junk_collection_id_is_not_a_server_error(world, url_name):
    response = signed_in(world.editor).get(reverse(url_name), {"collection_id": "1 or 1=1"})
    assert response.status_code in (200, 404)
    assert B_TITLE not in response.content.decode()
    response = signed_in(world.editor).get(reverse("private_video_chooser:chosen_multiple"), {"id": ["x", "1;2"]})
    assert response.status_code == 200 and json.loads(response.content)["result"] == []


@pytestmark_db
def test_site_history_does_not_show_b(world):
    # A logged change to B (by someone allowed), then the A editor looks at
    # the admin's site history report.
    response = signed_in(world.superuser).post(
        reverse("private_video:edit", args=[world.video_b.pk]),
        {"title": B_TITLE, "collection": world.b.pk, "tags": "confidential"},
    )
    assert response.status_code == 302
    assert ModelLogEntry.objects.filter(label=B_TITLE).exists()
    response = signed_in(world.editor).get(reverse("wagtailadmin_reports:site_history"))
    assert response.status_code in (200, 302)
    assert B_TITLE not in response.content.decode()


@pytestmark_db
def test_xlsx_export_lists_only_a(world):
    import openpyxl

    response = signed_in(world.editor).get(reverse("private_video:index"), {"export": "xlsx"})
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(body_of(response))).active
    cells = [str(cell.value) for row in sheet.iter_rows() for cell in row]
    assert A_TITLE in cells
    assert not any("Bravo" in cell or B_COLLECTION in cell for cell in cells)


@pytestmark_db
def test_csv_export_lists_only_a(world):
    response = signed_in(world.editor).get(reverse("private_video:index"), {"export": "csv"})
    rows = list(csv.reader(io.StringIO(body_of(response).decode())))
    titles = [row[0] for row in rows[1:]]
    assert titles == [A_TITLE]


@pytestmark_db
def test_collection_filter_offers_only_collections_the_editor_may_see(world):
    html = signed_in(world.editor).get(reverse("private_video:index")).content.decode()
    assert B_COLLECTION not in html
    html = signed_in(world.superuser).get(reverse("private_video:index")).content.decode()
    assert B_COLLECTION in html and "Team A" in html


@pytestmark_db
def test_superuser_sees_everything(world):
    client = signed_in(world.superuser)
    for url_name in ("private_video:index", "private_video_chooser:choose"):
        text = client.get(reverse(url_name)).content.decode()
        assert A_TITLE in text and B_TITLE in text, url_name
    for _label, url_name in READS:
        assert client.get(reverse(url_name, args=[world.video_b.pk])).status_code == 200, url_name


# --- the collection field --------------------------------------------------------


@pytestmark_db
def test_omitted_collection_is_a_form_error_not_a_move(world):
    before = snapshot(world.video_a)
    response = signed_in(world.superuser).post(
        reverse("private_video:edit", args=[world.video_a.pk]), {"title": "Moved?", "tags": ""}
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert snapshot(world.video_a) == before


@pytestmark_db
def test_editor_cannot_move_a_video_into_b(world):
    before = snapshot(world.video_a)
    response = signed_in(world.editor).post(
        reverse("private_video:edit", args=[world.video_a.pk]),
        {"title": "Moved", "collection": world.b.pk, "tags": ""},
    )
    assert response.status_code == 200
    assert "You may not move this video to that collection." in response.content.decode()
    assert snapshot(world.video_a) == before


@pytestmark_db
def test_moving_needs_change_rights_on_both_collections(world):
    c = Collection.get_first_root_node().add_child(name="Team C")
    # Change on A, only add on C: may upload to C, may not move someone else's video there.
    group = editor_group("A change, C add", [(world.a, ["change_video"]), (c, ["add_video"])])
    mover = make_user("mover", groups=[group])
    before = snapshot(world.video_a)
    response = signed_in(mover).post(
        reverse("private_video:edit", args=[world.video_a.pk]),
        {"title": A_TITLE, "collection": c.pk, "tags": ""},
    )
    assert response.status_code == 200
    assert snapshot(world.video_a) == before
    # With change on both, the move goes through.
    grant(group, c, "change_video")
    response = signed_in(mover).post(
        reverse("private_video:edit", args=[world.video_a.pk]),
        {"title": A_TITLE, "collection": c.pk, "tags": ""},
    )
    assert response.status_code == 302
    world.video_a.refresh_from_db()
    assert world.video_a.collection == c


@pytestmark_db
def test_superuser_moves_between_collections(world):
    response = signed_in(world.superuser).post(
        reverse("private_video:edit", args=[world.video_b.pk]),
        {"title": B_TITLE, "collection": world.a.pk, "tags": ""},
    )
    assert response.status_code == 302
    world.video_b.refresh_from_db()
    assert world.video_b.collection == world.a


# --- uploads: where they may go --------------------------------------------------


@pytestmark_db
def test_upload_into_b_is_refused(world, sample_video):
    before = snapshot(world.video_b)
    response = signed_in(world.editor).post(
        reverse("private_video:add"),
        {"file": upload(sample_video, "sneaky.mp4"), "collection": world.b.pk},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 400
    assert "You may not add videos to that collection." in json.loads(response.content)["error_message"]
    assert snapshot(world.video_b) == before


@pytestmark_db
def test_chooser_upload_tab_only_into_own_collections(world, sample_video):
    client = signed_in(world.editor)
    html = json.loads(client.get(reverse("private_video_chooser:choose")).content)["html"]
    assert B_COLLECTION not in html
    before = snapshot(world.video_b)
    response = client.post(
        reverse("private_video_chooser:create"),
        {"title": "Sneaky", "file": upload(sample_video), "collection": world.b.pk},
    )
    body = json.loads(response.content)
    assert body["step"] == "reshow_creation_form"
    assert snapshot(world.video_b) == before
    # Without a collection, it goes to the editor's own, owned by the editor.
    response = client.post(reverse("private_video_chooser:create"), {"title": "Mine", "file": upload(sample_video)})
    body = json.loads(response.content)
    assert body["step"] == "chosen", body
    video = Video.objects.get(pk=body["result"]["id"])
    assert video.collection == world.a and video.uploaded_by_user == world.editor


@pytestmark_db
def test_chooser_upload_needs_choose_as_well_as_add(world, sample_video):
    # A video uploaded from the chooser is chosen at once; without "choose"
    # on the collection the page could not keep it.
    group = editor_group("Add only on B", [(world.b, ["add_video"])])
    client = signed_in(make_user("adder", groups=[group]))
    count = Video.objects.count()
    response = client.post(reverse("private_video_chooser:create"), {"title": "X", "file": upload(sample_video)})
    assert response.status_code in (302, 403)
    assert Video.objects.count() == count


# --- ownership: "add" lets you edit your own uploads -----------------------------


@pytestmark_db
def test_add_permission_covers_own_uploads_only(world, sample_video):
    group = editor_group("Uploaders to B", [(world.b, ["add_video"])])
    uploader = make_user("uploader-b", groups=[group])
    own = make_video(sample_video, title="Own upload", collection=world.b, user=uploader)
    client = signed_in(uploader)
    html = client.get(reverse("private_video:index")).content.decode()
    assert "Own upload" in html and B_TITLE not in html
    assert client.get(reverse("private_video:edit", args=[own.pk])).status_code == 200
    assert client.get(reverse("private_video:edit", args=[world.video_b.pk])).status_code == 404
    before = snapshot(world.video_b)
    assert client.post(reverse("private_video:delete", args=[world.video_b.pk])).status_code == 404
    assert snapshot(world.video_b) == before
    response = client.post(
        reverse("private_video:edit", args=[own.pk]), {"title": "Own, renamed", "collection": world.b.pk, "tags": ""}
    )
    assert response.status_code == 302
    own.refresh_from_db()
    assert own.title == "Own, renamed"


# --- the same editor in collection A: everything works --------------------------


@pytestmark_db
@override_settings(TASKS=DUMMY_TASKS)
def test_editor_works_in_own_collection(world, replacement):
    from django.test import TestCase

    client = signed_in(world.editor)
    video = world.video_a
    logs = ModelLogEntry.objects.count()
    response = client.post(
        reverse("private_video:edit", args=[video.pk]),
        {"title": "Alpha, renamed", "collection": world.a.pk, "tags": "one"},
    )
    assert response.status_code == 302
    video.refresh_from_db()
    assert video.title == "Alpha, renamed" and list(video.tags.names()) == ["one"]
    assert ModelLogEntry.objects.count() == logs + 1

    old = stored_path(video)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            reverse("private_video:edit", args=[video.pk]),
            {"title": "Alpha, renamed", "collection": world.a.pk, "tags": "one", "file": upload(replacement)},
        )
    assert response.status_code == 302
    video.refresh_from_db()
    assert stored_path(video).read_bytes() == Path(replacement).read_bytes() and not old.exists()

    job_for(video, status="failed", error="boom")
    response = client.post(reverse("private_video_transcoding:rerun", args=[video.pk]))
    assert response.status_code == 302
    assert video.transcode_jobs.latest().status == "queued"

    body = json.loads(client.get(reverse("private_video_chooser:chosen", args=[video.pk])).content)
    assert body["result"]["id"] == str(video.pk)
    assert json.loads(client.get(reverse("private_video_transcoding:processing_status", args=[video.pk])).content)["code"]

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(reverse("private_video:delete", args=[video.pk]))
    assert response.status_code == 302
    assert not Video.objects.filter(pk=video.pk).exists()
    assert world.video_b.pk in Video.objects.values_list("pk", flat=True)


@pytestmark_db
def test_construct_video_chooser_queryset_hook(world, sample_video):
    from wagtail import hooks

    def only_alpha(queryset, request):
        return queryset.filter(title__startswith="Alpha")

    make_video(sample_video, title="Another A clip", collection=world.a)
    with hooks.register_temporarily("construct_video_chooser_queryset", only_alpha):
        html = json.loads(signed_in(world.editor).get(reverse("private_video_chooser:choose")).content)["html"]
    assert A_TITLE in html and "Another A clip" not in html


# --- oversize uploads: refused from the headers ----------------------------------

OVERSIZE_URLS = [
    ("upload", lambda world: reverse("private_video:add")),
    ("chooser upload", lambda world: reverse("private_video_chooser:create")),
    ("replace", lambda world: reverse("private_video:edit", args=[world.video_a.pk])),
]


@pytestmark_db
@override_settings(PRIVATE_VIDEO_MAX_UPLOAD_SIZE=1000)
@pytest.mark.parametrize("label,url", OVERSIZE_URLS, ids=[x[0] for x in OVERSIZE_URLS])
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_oversize_content_length_is_refused_before_the_body_is_read(world, label, url, accept):
    before = snapshot(world.video_a)
    client = signed_in(world.editor)
    # The test client's payload raises if anything reads past these few bytes:
    # the refusal must come from the header alone.
    body = b"--xyz\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nBig\r\n"
    response = client.generic(
        "POST", url(world), body, content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(max_upload_request_size() + 1), HTTP_ACCEPT=accept,
    )
    assert response.status_code == 413, (label, response.status_code)
    assert response["Content-Type"].startswith(accept)
    text = response.content.decode()
    assert "1000" in text and "largest" in text
    if accept == "application/json":
        assert json.loads(text)["success"] is False
    assert snapshot(world.video_a) == before


@pytestmark_db
@override_settings(PRIVATE_VIDEO_MAX_UPLOAD_SIZE=10**7)
def test_upload_within_the_limit_still_works(world, sample_video):
    response = signed_in(world.editor).post(
        reverse("private_video:add"), {"file": upload(sample_video, "fits.mp4")}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200, response.content
    assert Video.objects.get(pk=json.loads(response.content)["pk"]).collection == world.a


# --- through real nginx -----------------------------------------------------------

stack_marks = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def stack_token(stack, session, world):
    response = session.get(stack.url(reverse("private_video:edit", args=[world.video_a.pk])), timeout=10)
    assert response.status_code == 200, response.status_code
    return csrf_token_from(response.text)


def stack_payload(world, replacement, data):
    payload = data(world, replacement)
    files = {}
    if "file" in payload:
        uploaded = payload.pop("file")
        files["file"] = (uploaded.name, uploaded.read(), "video/mp4")
    return payload, files


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("label,url_name,data", WRITES, ids=[w[0] for w in WRITES])
def test_through_nginx_editor_of_a_cannot_change_b(stack, sample_video, replacement, label, url_name, data):
    world = World(sample_video)
    session = stack_session(world.editor)
    url = stack.url(reverse(url_name, args=[world.video_b.pk]))
    before = snapshot(world.video_b)
    payload, files = stack_payload(world, replacement, data)
    # Without a CSRF token.
    response = session.post(url, data=payload, files=files or None, timeout=30, allow_redirects=False)
    assert response.status_code == 403, (label, response.status_code)
    assert snapshot(world.video_b) == before
    # With a token from a page the editor may see.
    token = stack_token(stack, session, world)
    payload, files = stack_payload(world, replacement, data)
    response = session.post(
        url, data={"csrfmiddlewaretoken": token, **payload}, files=files or None,
        headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False,
    )
    assert response.status_code == 404, (label, response.status_code)
    assert B_TITLE not in response.text
    assert snapshot(world.video_b) == before
    for _label, url_name_read in READS:
        response = session.get(stack.url(reverse(url_name_read, args=[world.video_b.pk])), timeout=10)
        assert response.status_code == 404, url_name_read


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_through_nginx_uploads_into_b_are_refused_and_a_works(stack, sample_video):
    world = World(sample_video)
    session = stack_session(world.editor)
    token = stack_token(stack, session, world)
    before = snapshot(world.video_b)
    headers = {"Referer": stack.url("/admin/"), "Accept": "application/json"}
    with open(sample_video, "rb") as handle:
        response = session.post(
            stack.url(reverse("private_video:add")),
            data={"csrfmiddlewaretoken": token, "collection": world.b.pk},
            files={"file": ("sneaky.mp4", handle, "video/mp4")}, headers=headers, timeout=60,
        )
    assert response.status_code == 400 and response.json()["success"] is False
    with open(sample_video, "rb") as handle:
        response = session.post(
            stack.url(reverse("private_video_chooser:create")),
            data={"csrfmiddlewaretoken": token, "collection": world.b.pk, "title": "Sneaky"},
            files={"file": ("sneaky.mp4", handle, "video/mp4")}, headers=headers, timeout=60,
        )
    assert response.json()["step"] == "reshow_creation_form"
    assert snapshot(world.video_b) == before
    listing = session.get(stack.url(reverse("private_video:index")), timeout=10).text
    assert A_TITLE in listing and B_TITLE not in listing and B_COLLECTION not in listing
    # The same editor renames A's video through nginx.
    response = session.post(
        stack.url(reverse("private_video:edit", args=[world.video_a.pk])),
        data={"csrfmiddlewaretoken": token, "title": "Alpha via nginx", "collection": world.a.pk, "tags": ""},
        headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False,
    )
    assert response.status_code == 302, response.text[:2000]
    world.video_a.refresh_from_db()
    assert world.video_a.title == "Alpha via nginx"


# small_limit_stack (this upload limit): tests/conftest.py, shared with other modules.
SMALL_LIMIT = SMALL_UPLOAD_LIMIT


def raw_post(stack, path, headers, body, wait=10, *, unix_socket=None):
    """Send the request line, headers and a few body bytes, then wait for an
    answer without sending the rest. Returns (status, answer so far, seconds).
    By default through nginx; with ``unix_socket``, straight to gunicorn."""
    host = f"127.0.0.1:{stack.port}"
    if unix_socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(wait)
        sock.connect(str(unix_socket))
    else:
        sock = socket.create_connection(("127.0.0.1", stack.port), timeout=wait)
    with sock:
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
        started = time.monotonic()
        sock.sendall("\r\n".join(lines).encode() + body)
        data = b""
        try:
            while not re.search(rb"\r\n\r\n", data) or len(data.split(b"\r\n\r\n", 1)[1]) < 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        elapsed = time.monotonic() - started
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
    return status, data, elapsed


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("url_name", ["private_video:add", "private_video_chooser:create", "private_video:edit"])
def test_through_nginx_oversize_upload_gets_a_quick_413(small_limit_stack, sample_video, url_name):
    from cms.settings.env import parse_size

    world = World(sample_video)
    session = stack_session(world.editor)
    token = stack_token(small_limit_stack, session, world)
    before = snapshot(world.video_a)
    path = reverse(url_name, args=[world.video_a.pk] if url_name == "private_video:edit" else [])
    cookies = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    with override_settings(PRIVATE_VIDEO_MAX_UPLOAD_SIZE=parse_size(SMALL_LIMIT)):
        django_limit = max_upload_request_size()
    headers = [f"Cookie: {cookies}", f"X-CSRFToken: {token}", "Accept: application/json",
               "Content-Type: multipart/form-data; boundary=xyz"]
    # Over the limit, far over or by one byte: headers and a few bytes, then
    # silence. The answer comes at once (from nginx, which has the same limit,
    # or from Django's header check), without waiting for the body.
    for length in (django_limit * 50, django_limit + 1):
        status, head, seconds = raw_post(
            small_limit_stack, path, [*headers, f"Content-Length: {length}"], b"--xyz\r\n" + b"x" * 1000, wait=15,
        )
        if status is None:
            pytest.fail(f"no answer to a {length}-byte upload until its body arrives")
        assert status == 413, (length, head[:500])
        assert seconds < 5, seconds
    # Django's own check, straight to gunicorn (for a proxy with a larger
    # limit): its clear message, from the headers alone.
    status, answer, seconds = raw_post(
        small_limit_stack, path, [*headers, f"Content-Length: {django_limit + 1}"], b"--xyz\r\n",
        wait=15, unix_socket=small_limit_stack.root / "gunicorn.sock",
    )
    assert status == 413 and seconds < 5, answer[:500]
    assert b"the largest video you can upload is 1.0" in answer and b"application/json" in answer, answer[:800]
    # At the limit: not refused, the server waits for the body.
    status, head, seconds = raw_post(
        small_limit_stack, path, [*headers, f"Content-Length: {django_limit}"], b"--xyz\r\n", wait=2,
    )
    assert status is None, head[:500]
    assert snapshot(world.video_a) == before


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_browser_upload_page_refuses_an_oversize_file_without_sending_it(
    small_limit_stack, sample_video, tmp_path, output_dir
):
    from .browser import chromium_page

    world = World(sample_video)
    big = tmp_path / "too-big.mp4"
    big.write_bytes(Path(sample_video).read_bytes() + b"\0" * (2 * 1024**2))
    session = stack_session(world.editor)
    access_log = small_limit_stack.root / "gunicorn-access.log"
    add_url = reverse("private_video:add")
    with chromium_page(output_dir, session_cookie=session.cookies["sessionid"],
                       base_url=small_limit_stack.base_url) as page:
        page.goto(small_limit_stack.url(add_url))
        # The page uploads resumably: one tus upload per file it sends.
        tus_url = reverse("private_video:tus_create")
        log_before = access_log.read_text()
        page.set_input_files("[data-file-input]", [str(big), str(sample_video)])
        page.wait_for_function(
            "document.querySelectorAll('.video-upload__item.is-done, .video-upload__item.is-error').length === 2"
        )
        items = page.locator(".video-upload__item")
        assert items.nth(0).locator("[data-state]").inner_text() == (
            "Refused: the largest video you can upload is 1.0\xa0MB."
        )
        assert items.nth(1).locator("[data-state]").inner_text() == "Uploaded: sample"
    # Only the file that fits was sent.
    time.sleep(0.5)
    log = access_log.read_text()
    assert log.count(f"POST {tus_url} HTTP") == log_before.count(f"POST {tus_url} HTTP") + 1
    assert log.count(f"POST {add_url}") == log_before.count(f"POST {add_url}")
    assert list(Video.objects.filter(collection=world.a).values_list("title", flat=True)) == ["sample", A_TITLE]
