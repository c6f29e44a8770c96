"""Hostile probes against the editor and upload side, through the real stack
(nginx in front of gunicorn). Each test is one attack that once worked (or
that a reviewer expected might) and the answer it must get now.

- A page editor copies (or aliases) a page holding a video they may not
  choose into a public part of the tree: the copy view and the admin API's
  page actions (copy, create_alias, revert_to_page_revision) need choose
  permission on every video the new content would hold.
- A preview posting a forged video id renders no player for it.
- A download is named with the stored (detected) extension, not the one the
  uploader typed.
- The CSRF-exempt upload views (they run their own CSRF check after the size
  check) refuse cross-site posts: no token, a forged header token, a
  multipart body; a chunked body with no Content-Length still meets nginx's
  limit.
"""

import json
import re
import select
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from wagtail.models import (
    Collection,
    GroupPagePermission,
    Page,
    PageViewRestriction,
)
from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

from cms.models import IndexPage, VideoPage
from private_video.models import Video

from .helpers import collection_group, home_page, make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def world(sample_video):
    """A members-only section (login restriction) holding a page with a video of
    the private collection; a page editor with add/change/publish on the whole
    site but no video rights; a chooser who may also choose private videos."""
    root = Collection.get_first_root_node()
    private = root.add_child(name="Private")
    home = home_page()
    page_editors = Group.objects.create(name="Page editors")
    page_editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=page_editors, page=home,
            permission=Permission.objects.get(codename=f"{permission_type}_page"),
        )
    choosers = collection_group("Private choosers", private, "choose_video")
    secret = make_video(sample_video, title="Secret", collection=private)
    public_video = make_video(sample_video, title="Public clip")
    members = IndexPage(title="Members", slug="members")
    home.add_child(instance=members)
    members.save_revision().publish()
    PageViewRestriction.objects.create(page=members, restriction_type=PageViewRestriction.LOGIN)
    vault = make_video_page(secret, title="Vault", parent=members)
    return SimpleNamespace(
        home=home, members=members, vault=vault, secret=secret, public_video=public_video,
        editor=make_user("editor", groups=[page_editors]),
        chooser=make_user("chooser", groups=[page_editors, choosers]),
        admin=make_user("boss", superuser=True),
        data=Path(settings.PRIVATE_MEDIA_ROOT, secret.file.name).read_bytes(),
    )


def csrf_session(stack, user, url="/admin/"):
    session = stack_session(user)
    response = session.get(stack.url(url), timeout=30)
    assert response.status_code == 200, response.text[:500]
    return session, session.cookies["csrftoken"]


def anonymous_watch(stack, page, video):
    return stack_session(None).get(
        stack.url(f"/watch/{page.pk}/{video.pk}/original/"), headers={"Range": "bytes=0-63"}, timeout=30,
        allow_redirects=False,
    )


def pages_holding(video):
    return set(VideoPage.objects.filter(video=video).values_list("pk", flat=True))


def assert_no_new_copy(world, before):
    assert pages_holding(world.secret) == before
    assert not Page.objects.filter(slug="vault-copy").exists()


# --- copying a page is choosing its videos ---------------------------------------------


@pytest.mark.parametrize("alias", [False, True], ids=["copy", "alias"])
def test_copy_view_refuses_a_page_holding_a_video_the_editor_may_not_choose(stack, world, alias):
    # Before: the editor (page rights only) copied the members-only page to the
    # public home page, published, and anyone could fetch the private original.
    session, token = csrf_session(stack, world.editor)
    before = pages_holding(world.secret)
    data = {
        "csrfmiddlewaretoken": token, "new_title": "Vault copy", "new_slug": "vault-copy",
        "new_parent_page": world.home.pk, "publish_copies": "on",
    }
    if alias:
        data["alias"] = "on"
    response = session.post(stack.url(f"/admin/pages/{world.vault.pk}/copy/"), data=data,
                            headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=True)
    assert "may not choose" in response.text, response.text[:2000]
    assert_no_new_copy(world, before)
    # The copy form itself is refused too (nothing to fill in that could succeed).
    form = session.get(stack.url(f"/admin/pages/{world.vault.pk}/copy/"), timeout=30)
    assert "may not choose" in form.text and 'name="new_slug"' not in form.text


def test_copy_view_lets_an_editor_who_may_choose_copy(stack, world):
    session, token = csrf_session(stack, world.chooser)
    response = session.post(stack.url(f"/admin/pages/{world.vault.pk}/copy/"), data={
        "csrfmiddlewaretoken": token, "new_title": "Vault copy", "new_slug": "vault-copy",
        "new_parent_page": world.home.pk, "publish_copies": "on",
    }, headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False)
    assert response.status_code == 302, response.text[:2000]
    copy = VideoPage.objects.get(slug="vault-copy")
    assert copy.video_id == world.secret.pk and copy.live


def test_recursive_copy_checks_the_videos_of_every_subpage(stack, world):
    # The members section itself holds no video; its child does.
    session, token = csrf_session(stack, world.editor)
    before = pages_holding(world.secret)
    response = session.post(stack.url(f"/admin/pages/{world.members.pk}/copy/"), data={
        "csrfmiddlewaretoken": token, "new_title": "Members copy", "new_slug": "members-copy",
        "new_parent_page": world.home.pk, "publish_copies": "on", "copy_subpages": "on",
    }, headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=True)
    assert "may not choose" in response.text, response.text[:2000]
    assert pages_holding(world.secret) == before
    assert not Page.objects.filter(slug="members-copy").exists()


@pytest.mark.parametrize("action,payload", [
    ("copy", lambda w: {"destination_page_id": w.home.pk, "slug": "vault-copy", "keep_live": True}),
    ("create_alias", lambda w: {"destination_page_id": w.home.pk, "update_slug": "vault-copy"}),
    ("copy", lambda w: {"destination_page_id": w.home.pk, "slug": "vault-copy", "keep_live": False}),
], ids=["copy", "alias", "copy-draft"])
def test_admin_api_page_actions_cannot_copy_an_unchoosable_video(stack, world, action, payload):
    # The admin API (/admin/api/main/pages/<id>/action/<name>/) runs Wagtail's
    # page actions without the copy view or the page form.
    session, token = csrf_session(stack, world.editor)
    before = pages_holding(world.secret)
    response = session.post(
        stack.url(f"/admin/api/main/pages/{world.vault.pk}/action/{action}/"),
        data=json.dumps(payload(world)),
        headers={"Content-Type": "application/json", "X-CSRFToken": token,
                 "Referer": stack.url("/admin/")}, timeout=30,
    )
    assert response.status_code == 403, (response.status_code, response.text[:500])
    assert "may not choose" in response.text
    assert_no_new_copy(world, before)
    copy = Page.objects.filter(slug="vault-copy").first()
    assert copy is None
    watched = anonymous_watch(stack, world.vault, world.secret)
    # The members-only page itself still sends an anonymous visitor to sign in.
    assert watched.status_code in (302, 403), watched.status_code
    assert world.data[:64] not in watched.content


def test_admin_api_copy_works_for_an_editor_who_may_choose(stack, world):
    session, token = csrf_session(stack, world.chooser)
    response = session.post(
        stack.url(f"/admin/api/main/pages/{world.vault.pk}/action/copy/"),
        data=json.dumps({"destination_page_id": world.home.pk, "slug": "vault-copy", "keep_live": True}),
        headers={"Content-Type": "application/json", "X-CSRFToken": token,
                 "Referer": stack.url("/admin/")}, timeout=30,
    )
    assert response.status_code == 201, response.text[:500]
    assert VideoPage.objects.get(slug="vault-copy").video_id == world.secret.pk


def test_admin_api_revert_cannot_bring_back_an_unchoosable_video(stack, world):
    # An admin once put the secret on the public page, then replaced it. The
    # editor (no video rights) reverts to the old revision through the API and
    # publishes: the form's choose check never runs on that path.
    page = make_video_page(world.secret, title="Launch")
    old_revision = page.latest_revision
    page = VideoPage.objects.get(pk=page.pk)
    page.video = world.public_video
    page.save_revision(user=world.admin).publish()
    session, token = csrf_session(stack, world.editor)
    headers = {"Content-Type": "application/json", "X-CSRFToken": token, "Referer": stack.url("/admin/")}
    response = session.post(
        stack.url(f"/admin/api/main/pages/{page.pk}/action/revert_to_page_revision/"),
        data=json.dumps({"revision_id": old_revision.pk}), headers=headers, timeout=30,
    )
    assert response.status_code == 403, (response.status_code, response.text[:500])
    assert "may not choose" in response.text
    published = session.post(stack.url(f"/admin/api/main/pages/{page.pk}/action/publish/"),
                             data="{}", headers=headers, timeout=30)
    assert published.status_code in (200, 403), published.text[:500]
    page = VideoPage.objects.get(pk=page.pk)
    assert page.video_id == world.public_video.pk
    assert page.get_latest_revision_as_object().video_id == world.public_video.pk
    watched = anonymous_watch(stack, page, world.secret)
    assert watched.status_code == 404 and world.data[:64] not in watched.content


# --- preview ----------------------------------------------------------------------------


def test_preview_with_a_forged_video_id_renders_no_player_for_it(stack, world):
    page = make_video_page(world.public_video, title="Launch")
    session, token = csrf_session(stack, world.editor, f"/admin/pages/{page.pk}/edit/")
    data = nested_form_data({
        "title": "Launch", "slug": page.slug, "video": world.secret.pk, "intro": rich_text(""),
        "body": streamfield([("video", {"video": world.secret.pk, "caption": ""})]),
        "viewer_grants": inline_formset([]), "comments": inline_formset([]),
    })
    data["csrfmiddlewaretoken"] = token
    preview_url = stack.url(f"/admin/pages/{page.pk}/edit/preview/")
    response = session.post(preview_url, data=data, headers={"Referer": stack.url("/admin/")}, timeout=30)
    assert response.status_code == 200
    assert response.json()["is_valid"] is False
    shown = session.get(preview_url, timeout=30)
    assert f"/{world.secret.pk}/" not in shown.text.replace(f"/{page.pk}/", "/PAGE/")
    assert "Secret" not in shown.text
    # And the playback JSON for it, as a previewing editor, is still a 404.
    playback = session.get(stack.url(f"/playback/{page.pk}/{world.secret.pk}/"), timeout=30)
    assert playback.status_code == 404 and b"token" not in playback.content


# --- download names ---------------------------------------------------------------------


def test_download_is_named_with_the_stored_extension(stack, world, sample_video, tmp_path):
    # An MP4 uploaded as "clip.exe": stored as .mp4, and downloaded as clip.mp4,
    # never as an .exe typed video/mp4.
    disguised = tmp_path / "clip.exe"
    disguised.write_bytes(Path(sample_video).read_bytes())
    video = make_video(disguised, title="Disguised")
    assert video.original_filename == "clip.exe" and video.file.name.endswith(".mp4")
    page = make_video_page(video, title="Disguised page")
    session = stack_session(world.admin)  # change permission: may download
    response = session.get(stack.url(f"/watch/{page.pk}/{video.pk}/original/download/"), timeout=30)
    assert response.status_code == 200, response.text[:300]
    assert response.content == disguised.read_bytes()
    assert response.headers["Content-Type"] == "video/mp4"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;"), disposition
    assert 'filename="clip.mp4"' in disposition and "clip.mp4" in disposition.split("filename*=")[1]
    assert ".exe" not in disposition


# --- CSRF on the CSRF-exempt upload views ------------------------------------------------


def _multipart(fields, files):
    boundary = "----probe7d3f"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: video/mp4\r\n\r\n".encode() + content + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("how", ["no-token", "forged-header", "forged-field", "evil-origin"])
@pytest.mark.parametrize("url", ["/admin/videos/new/", "/admin/videos/chooser/create/", "EDIT"])
def test_csrf_exempt_upload_views_refuse_cross_site_posts(stack, world, sample_video, how, url):
    target = make_video(sample_video, title="Target")
    if url == "EDIT":
        url = f"/admin/videos/edit/{target.pk}/"
    session, token = csrf_session(stack, world.admin)
    count = Video.objects.count()
    fields = {"title": "Cross-site", "collection": Collection.get_first_root_node().pk, "tags": ""}
    headers = {"Referer": stack.url("/admin/"), "X-Requested-With": "XMLHttpRequest"}
    if how == "forged-header":
        headers["X-CSRFToken"] = "A" * 64
    elif how == "forged-field":
        fields["csrfmiddlewaretoken"] = "B" * 64
    elif how == "evil-origin":
        # A real token, but the browser says the form came from elsewhere.
        fields["csrfmiddlewaretoken"] = token
        headers = {"Origin": "https://evil.example", "Referer": "https://evil.example/form"}
    body, content_type = _multipart(fields, {"file": ("x.mp4", Path(sample_video).read_bytes())})
    headers["Content-Type"] = content_type
    response = session.post(stack.url(url), data=body, headers=headers, timeout=30, allow_redirects=False)
    assert response.status_code == 403, (how, url, response.status_code, response.text[:300])
    assert "CSRF" in response.text
    assert Video.objects.count() == count
    target.refresh_from_db()
    assert target.title == "Target"


# small_limit_stack (1M upload limit): tests/conftest.py, shared with other modules.


def test_chunked_upload_without_content_length_meets_the_nginx_limit(small_limit_stack, world):
    # No Content-Length, so the view's header check cannot see the size: nginx
    # counts the chunks against the upload URL's client_max_body_size. (From
    # a user who may upload: anyone else is refused before any chunk is read.)
    from django.test import override_settings

    from private_video.validation import max_upload_request_size

    stack = small_limit_stack
    with override_settings(PRIVATE_VIDEO_MAX_UPLOAD_SIZE=1 << 20):
        limit = max_upload_request_size()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=60) as sock:
        sock.sendall(
            f"POST /admin/videos/new/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            f"Cookie: sessionid={stack_session(world.admin).cookies['sessionid']}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"a" * (1 << 20)
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        sent = 0
        answer = b""
        # Blocking sends (a short send timeout fails on a busy machine); after
        # each chunk, read whatever nginx has answered without waiting.
        # Loopback socket buffers hold several MiB the client has "sent" but
        # nginx has not read yet: the 413 must come while the client is still
        # sending, within that slack of the limit, not after the whole body.
        slack = 12 << 20
        sock.settimeout(10)
        while sent <= limit + slack and not answer:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError, TimeoutError, socket.timeout):
                break  # nginx stopped reading: its answer is waiting
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                answer += sock.recv(65536)
        try:
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        except (TimeoutError, ConnectionResetError, socket.timeout):
            pass
    assert answer.startswith(b"HTTP/1.1 413 "), (sent, answer[:300])
    assert sent <= limit + slack


# --- huge picture sizes ----------------------------------------------------------------


def _raw_avi_claiming(folder, side):
    """A 47 KB AVI of 64×64 grey rawvideo frames whose headers (avih and the
    stream's BITMAPINFOHEADER) claim ``side``×``side``: for rawvideo ffmpeg
    takes the picture size from the container."""
    import struct
    import subprocess

    small = folder / "raw.avi"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=s=64x64:d=2:r=5", "-c:v", "rawvideo", "-pix_fmt", "gray", str(small)],
                   check=True, timeout=60)
    data = bytearray(small.read_bytes())
    struct.pack_into("<II", data, data.find(b"avih") + 8 + 32, side, side)
    struct.pack_into("<ii", data, data.find(b"strf") + 8 + 4, side, side)
    path = folder / f"huge{side}.avi"
    path.write_bytes(bytes(data))
    return path


def _upload(stack, session, name, data):
    url = stack.url("/admin/videos/new/")
    page = session.get(url, timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return session.post(url, data={"csrfmiddlewaretoken": token}, files={"file": (name, data, "video/mp4")},
                        headers={"Accept": "application/json", "Referer": url}, timeout=120)


def test_a_30000_pixel_square_frame_header_is_refused_at_upload(stack, world, tmp_path):
    # ffprobe itself will not size a frame that large (av_image_check_size).
    path = _raw_avi_claiming(tmp_path, 30000)
    count = Video.objects.count()
    response = _upload(stack, stack_session(world.admin), "huge.avi", path.read_bytes())
    assert response.status_code == 400, response.text[:500]
    assert "has no picture size" in response.json()["error_message"]
    assert Video.objects.count() == count


def test_a_16000_pixel_square_source_fails_its_job_readably(world, tmp_path):
    # Under ffprobe's own bound, so the upload's probe accepts it; the job
    # refuses it (TRANSCODING_MAX_SOURCE_PIXELS) with a sentence, makes no
    # rendition and keeps the original, and the worker carries on.
    from django.core.files.base import ContentFile
    from django.test import override_settings

    from transcoding.models import TranscodeJob
    from transcoding.profiles import Rung
    from transcoding.tasks import enqueue_transcode

    data = _raw_avi_claiming(tmp_path, 16000).read_bytes()
    video = Video(title="Huge", original_filename="huge.avi", file_size=len(data))
    video.file.save("huge.avi", ContentFile(data), save=False)
    video.save()
    started = time.monotonic()
    with override_settings(TRANSCODING_LADDER=[Rung(144, 300)], TRANSCODING_PROGRESSIVE_HEIGHT=144):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.FAILED, job.status
    assert "16000×16000" in job.error and "pixels per frame" in job.error, job.error
    assert video.renditions.count() == 0
    assert video.file.storage.exists(video.file.name)
    assert time.monotonic() - started < 60


# --- granting yourself downloads ----------------------------------------------------------


def _grant_post(token, page, video, grants, initial=0):
    data = nested_form_data({
        "title": page.title, "slug": page.slug, "video": video.pk, "intro": rich_text(""),
        "body": streamfield([]),
        "viewer_grants": inline_formset(grants, initial=initial),
        "comments": inline_formset([]),
    })
    data["csrfmiddlewaretoken"] = token
    data["action-publish"] = "action-publish"
    return data


def test_page_editor_cannot_grant_themselves_downloads_of_a_video_they_may_not_change(stack, world):
    # The page (with the private video, put there by an admin) is the editor's
    # to edit and publish, and they may manage who watches it; but a grant
    # that allows downloads hands out the original, which needs change
    # permission on the video. Before: the editor added a download grant for
    # themselves, published, and downloaded the whole original.
    page = make_video_page(world.secret, title="Launch")
    session, token = csrf_session(stack, world.editor, f"/admin/pages/{page.pk}/edit/")
    response = session.post(stack.url(f"/admin/pages/{page.pk}/edit/"), data=_grant_post(
        token, page, world.secret, [{"user": world.editor.username, "group": "", "expires_at": "", "can_download": "on"}]),
        headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False)
    assert response.status_code == 200, response.status_code
    assert "may not allow downloads" in response.text
    assert not page.viewer_grants.exists()
    download = session.get(stack.url(f"/watch/{page.pk}/{world.secret.pk}/original/download/"),
                           allow_redirects=False, timeout=30)
    assert download.status_code == 403 and world.data[:64] not in download.content
    # A viewing grant (no download) is still the page editor's to give.
    response = session.post(stack.url(f"/admin/pages/{page.pk}/edit/"), data=_grant_post(
        token, page, world.secret, [{"user": world.editor.username, "group": "", "expires_at": ""}]),
        headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False)
    assert response.status_code == 302, response.text[:3000]
    assert list(page.viewer_grants.values_list("user_id", "can_download")) == [(world.editor.pk, False)]


def test_a_download_grant_made_by_someone_allowed_may_be_kept(stack, world):
    from media_access.models import ViewerGrant

    page = make_video_page(world.secret, title="Launch")
    grant = ViewerGrant.objects.create(page=page, group=Group.objects.get(name="Private choosers"),
                                       can_download=True)
    session, token = csrf_session(stack, world.editor, f"/admin/pages/{page.pk}/edit/")
    kept = {"id": grant.pk, "user": "", "group": grant.group_id, "expires_at": "", "can_download": "on"}
    response = session.post(stack.url(f"/admin/pages/{page.pk}/edit/"), data=_grant_post(
        token, page, world.secret, [kept], initial=1), headers={"Referer": stack.url("/admin/")}, timeout=30,
        allow_redirects=False)
    assert response.status_code == 302, response.text[:3000]
    # But not pointed at someone else (themselves): that is a new download grant.
    response = session.post(stack.url(f"/admin/pages/{page.pk}/edit/"), data=_grant_post(
        token, page, world.secret, [{**kept, "group": "", "user": world.editor.username}], initial=1),
        headers={"Referer": stack.url("/admin/")}, timeout=30, allow_redirects=False)
    assert response.status_code == 200 and "may not allow downloads" in response.text
    grant.refresh_from_db()
    assert (grant.user_id, grant.group_id, grant.can_download) == (None, grant.group_id, True)


# --- video-sized bodies only from users who may upload ---------------------------------------


def _announce(stack, path, length, cookie=None, timeout=3.0):
    """Announce a ``length``-byte POST body, send none of it, wait for an
    answer: None if nginx waits for the body (it would read and buffer it)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall((
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            + (f"Cookie: {cookie}\r\n" if cookie else "")
            + "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode())
        try:
            return sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return None


def test_upload_urls_take_no_body_from_visitors_who_may_not_upload(stack, world, sample_video):
    # Before: anyone, signed in or not, could make nginx read and buffer to
    # disk a body of up to the upload limit (8 GiB by default) on each upload
    # URL, before Django sent them to sign in.
    target = make_video(sample_video, title="Target")
    paths = ["/admin/videos/new/", "/admin/videos/chooser/create/", f"/admin/videos/edit/{target.pk}/"]
    page_editor = stack_session(world.editor)  # admin access, page rights, no video rights
    for who, cookie in (("anonymous", None), ("page editor", f"sessionid={page_editor.cookies['sessionid']}")):
        for path in paths:
            answer = _announce(stack, path, 64 << 20, cookie)
            assert answer is not None, f"{who}: nginx waited for the body of {path}"
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 403 "), (who, path, head[:200])
            assert b"\r\nContent-Type: text/plain" in head and b"\r\nX-Content-Type-Options: nosniff" in head
    # Someone who may upload: nginx takes the body (and waits for it).
    uploader = stack_session(world.admin)
    for path in paths:
        assert _announce(stack, path, 64 << 20, f"sessionid={uploader.cookies['sessionid']}") is None, path
    # GET keeps Django's answers: the sign-in redirect, the upload page.
    response = stack_session(None).get(stack.url("/admin/videos/new/"), allow_redirects=False, timeout=30)
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]
    assert uploader.get(stack.url("/admin/videos/new/"), timeout=30).status_code == 200


# --- the CSRF-exempt upload views over HTTPS: the Referer check -------------------------------

# certificate and tls_stack: tests/conftest.py (session fixtures, shared with test_nginx_tls).

@pytest.mark.parametrize("url", ["/admin/videos/new/", "/admin/videos/chooser/create/"])
def test_over_https_a_foreign_referer_is_refused_by_the_upload_views(tls_stack, certificate, world,
                                                                   sample_video, url):
    # Behind TLS Django checks the Referer of a POST without Origin (HTTPS
    # semantics); the upload views run that check themselves. A real token
    # and cookie, but the form came from another site.
    cert, _ = certificate
    session = stack_session(world.admin)
    session.get(tls_stack.url("/admin/"), timeout=30, verify=str(cert))
    token = session.cookies["csrftoken"]
    count = Video.objects.count()
    body, content_type = _multipart(
        {"csrfmiddlewaretoken": token, "collection": Collection.get_first_root_node().pk},
        {"file": ("x.mp4", Path(sample_video).read_bytes())},
    )
    for referer in ("https://evil.example/upload", "http://127.0.0.1/", None):
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if referer:
            headers["Referer"] = referer
        response = session.post(tls_stack.url(url), data=body, headers=headers, timeout=60,
                                allow_redirects=False, verify=str(cert))
        assert response.status_code == 403 and "CSRF" in response.text, (referer, response.status_code)
    assert Video.objects.count() == count
    # Control: the same request from the site's own pages goes through.
    headers = {"Content-Type": content_type, "Accept": "application/json", "Referer": tls_stack.url("/admin/")}
    response = session.post(tls_stack.url(url), data=body, headers=headers, timeout=60,
                            allow_redirects=False, verify=str(cert))
    assert response.status_code == 200, response.text[:500]
    assert Video.objects.count() == count + 1


# --- wrong methods and forged ids through nginx -------------------------------------------------


def test_wrong_methods_and_forged_ids_tell_nothing_about_another_collections_video(stack, world):
    # An editor with every video right on collection A only, against the
    # private collection's video: the same answer as for an id that does not exist.
    a = Collection.get_first_root_node().add_child(name="A")
    editor_a = make_user("editor-a", groups=[collection_group(
        "A editors", a, "add_video", "change_video", "choose_video")])
    session, token = csrf_session(stack, editor_a)
    secret, missing = world.secret.pk, 987654321
    post = {"csrfmiddlewaretoken": token}
    headers = {"Referer": stack.url("/admin/")}
    probes = [
        ("GET", "/admin/video-processing/{}/rerun/", 405), ("POST", "/admin/video-processing/{}/processing/", 405),
        ("GET", "/admin/videos/edit/{}/", 404), ("GET", "/admin/videos/usage/{}/", 404),
        ("GET", "/admin/videos/history/{}/", 404), ("GET", "/admin/videos/delete/{}/", 404),
        ("POST", "/admin/videos/delete/{}/", 404), ("POST", "/admin/video-processing/{}/rerun/", 404),
        ("GET", "/admin/video-processing/{}/processing/", 404), ("GET", "/admin/videos/chooser/chosen/{}/", 404),
    ]
    for method, template, expected in probes:
        answers = []
        for pk in (secret, missing):
            response = session.request(method, stack.url(template.format(pk)), data=post if method == "POST" else None,
                                       headers=headers, timeout=30, allow_redirects=False)
            # The same page but for the id in the path and the per-request masked CSRF token.
            body = response.content.replace(f"/{pk}/".encode(), b"/ID/")
            body = re.sub(rb'("CSRF_TOKEN": "|name="csrfmiddlewaretoken" value=")[A-Za-z0-9]+', rb"\1T", body)
            answers.append((response.status_code, response.headers.get("Content-Type"), body))
            assert "Secret" not in response.text, (method, template)
        assert answers[0][0] == expected, (method, template, answers[0][0])
        assert answers[0] == answers[1], (method, template)
    # Non-numeric and negative ids never reach a view.
    for path in ("/admin/videos/edit/abc/", "/admin/videos/edit/-1/", f"/admin/videos/edit/{secret}.0/"):
        assert session.get(stack.url(path), timeout=30, allow_redirects=False).status_code == 404, path
    world.secret.refresh_from_db()
    assert world.secret.title == "Secret" and Video.objects.filter(pk=secret).exists()
