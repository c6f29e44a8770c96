"""media_access through the real stack: nginx (shipped config) in front of gunicorn.

Exact statuses, headers and bytes for playback, ranges, every denial, the
internal location, awkward filenames and revocation.
"""

import http.client
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group
from django.utils import timezone
from wagtail.models import PageViewRestriction

from media_access.models import PlaybackLogEntry, ViewerGrant

from .helpers import make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct horse battery"


def watch_path(page, video, rendition="original"):
    return f"/watch/{page.pk}/{video.pk}/{rendition}/"


@pytest.fixture
def world(sample_video):
    viewers = Group.objects.create(name="Viewers")
    others = Group.objects.create(name="Others")
    alice = make_user("alice", groups=[viewers])
    bob = make_user("bob", groups=[others])
    carol = make_user("carol")
    video = make_video(sample_video, title="Launch")
    other_video = make_video(sample_video, title="Elsewhere")
    page = make_video_page(video, title="Launch page")
    other_page = make_video_page(other_video, title="Other page")
    ViewerGrant.objects.create(page=page, group=viewers)
    ViewerGrant.objects.create(page=page, user=carol, expires_at=timezone.now() - timedelta(hours=1))
    data = Path(settings.PRIVATE_MEDIA_ROOT, video.file.name).read_bytes()
    return SimpleNamespace(
        viewers=viewers, others=others, alice=alice, bob=bob, carol=carol, video=video,
        other_video=other_video, page=page, other_page=other_page, data=data,
    )


def assert_private_file_response(response):
    assert response.headers["Content-Type"] == "video/mp4"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if response.status_code == 200:
        assert response.headers["Accept-Ranges"] == "bytes"
    assert "X-Accel-Redirect" not in response.headers
    assert "X-Accel-Buffering" not in response.headers
    assert "Expires" not in response.headers
    assert "Set-Cookie" not in response.headers


def assert_denial_leaks_nothing(response, data):
    assert "X-Accel-Redirect" not in response.headers
    assert "ETag" not in response.headers
    assert "Content-Range" not in response.headers
    assert "Accept-Ranges" not in response.headers
    assert response.headers["Cache-Control"] == "private, no-store"
    assert len(response.content) < 200
    assert data[:16] not in response.content
    assert b"ftyp" not in response.content


# --- playback -------------------------------------------------------------------


def test_full_get_streams_exact_bytes_through_nginx(stack, world):
    session = stack_session(world.alice)
    response = session.get(stack.url(watch_path(world.page, world.video)))
    assert response.status_code == 200
    assert response.content == world.data
    assert response.headers["Content-Length"] == str(len(world.data))
    assert response.headers["Content-Disposition"] == (
        "inline; filename=\"sample.mp4\"; filename*=UTF-8''sample.mp4"
    )
    assert_private_file_response(response)
    # The security headers nginx drops on the internal redirect are added back.
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert response.headers["Referrer-Policy"] == "same-origin"


RANGES = [
    # (Range header, first byte, last byte); negative numbers count from the end.
    ("bytes=0-1", 0, 1),
    ("bytes=1000-2999", 1000, 2999),
    ("bytes=-500", -500, -1),
    ("bytes=2000-", 2000, -1),
]


def test_range_requests(stack, world):
    size = len(world.data)
    session = stack_session(world.alice)
    for header, first, last in RANGES:
        first, last = first % size, last % size
        response = session.get(stack.url(watch_path(world.page, world.video)), headers={"Range": header})
        assert response.status_code == 206, header
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}", header
        assert response.headers["Content-Length"] == str(last - first + 1), header
        assert response.content == world.data[first : last + 1], header
        assert_private_file_response(response)


def test_unsatisfiable_range_is_416(stack, world):
    size = len(world.data)
    session = stack_session(world.alice)
    response = session.get(
        stack.url(watch_path(world.page, world.video)), headers={"Range": f"bytes={size}-"}
    )
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"
    assert world.data[:16] not in response.content
    assert "X-Accel-Redirect" not in response.headers


def test_head_has_headers_and_no_body(stack, world):
    session = stack_session(world.alice)
    response = session.head(stack.url(watch_path(world.page, world.video)))
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(world.data))
    assert response.content == b""
    assert_private_file_response(response)


def test_if_range_validates_against_the_file(stack, world):
    session = stack_session(world.alice)
    url = stack.url(watch_path(world.page, world.video))
    etag = session.head(url).headers["ETag"]
    same = session.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert same.status_code == 206 and same.content == world.data[10:20]
    stale = session.get(url, headers={"Range": "bytes=10-19", "If-Range": '"stale-etag"'})
    assert stale.status_code == 200 and stale.content == world.data


def test_other_methods_are_405(stack, world):
    session = stack_session(world.alice)
    for method in ("POST", "PUT", "DELETE"):
        response = session.request(method, stack.url(watch_path(world.page, world.video)))
        assert response.status_code == 405, method
        assert "X-Accel-Redirect" not in response.headers
        assert world.data[:16] not in response.content


# --- denials -------------------------------------------------------------------


CONDITIONALS = [
    {},
    {"Range": "bytes=0-1"},
    {"If-None-Match": "*", "If-Modified-Since": "Sun, 01 Jan 2090 00:00:00 GMT"},
    {"If-Match": "*", "If-Range": "*", "Range": "bytes=0-"},
]


def test_anonymous_is_sent_to_login(stack, world):
    path = watch_path(world.page, world.video)
    for headers in CONDITIONALS:
        response = requests.get(stack.url(path), headers=headers, allow_redirects=False)
        assert response.status_code == 302, headers
        assert response.headers["Location"] == f"/login/?next={path}"
        assert_denial_leaks_nothing(response, world.data)


def test_wrong_group_is_403(stack, world):
    session = stack_session(world.bob)
    for headers in CONDITIONALS:
        response = session.get(
            stack.url(watch_path(world.page, world.video)), headers=headers, allow_redirects=False
        )
        assert response.status_code == 403, headers
        assert response.content == b"You do not have access to this video.\n"
        assert_denial_leaks_nothing(response, world.data)


def test_expired_grant_is_403(stack, world):
    response = stack_session(world.carol).get(
        stack.url(watch_path(world.page, world.video)), headers={"Range": "bytes=0-1"}
    )
    assert response.status_code == 403
    assert_denial_leaks_nothing(response, world.data)


def test_page_password_is_required_even_with_a_grant(stack, world):
    restriction = PageViewRestriction.objects.create(
        page=world.page, restriction_type=PageViewRestriction.PASSWORD, password="swordfish"
    )
    session = stack_session(world.alice)
    url = stack.url(watch_path(world.page, world.video))
    denied = session.get(url, allow_redirects=False)
    assert denied.status_code == 403
    assert_denial_leaks_nothing(denied, world.data)

    # Wrong password, then the right one, through Wagtail's own form.
    form_url = stack.url(f"/_util/authenticate_with_password/{restriction.pk}/{world.page.pk}/")
    page_html = session.get(stack.url(world.page.url)).text
    assert "password" in page_html.lower()
    token = session.cookies.get("csrftoken")
    wrong = session.post(
        form_url,
        data={"password": "wrong", "return_url": world.page.url, "csrfmiddlewaretoken": token},
        headers={"Referer": stack.url(world.page.url)},
        allow_redirects=False,
    )
    assert wrong.status_code == 200
    assert session.get(url, allow_redirects=False).status_code == 403
    right = session.post(
        form_url,
        data={"password": "swordfish", "return_url": world.page.url, "csrfmiddlewaretoken": token},
        headers={"Referer": stack.url(world.page.url)},
        allow_redirects=False,
    )
    assert right.status_code == 302
    allowed = session.get(url, headers={"Range": "bytes=0-1"})
    assert allowed.status_code == 206 and allowed.content == world.data[:2]


def test_login_restriction_on_an_ancestor_applies(stack, world, sample_video):
    from cms.models import IndexPage

    from .helpers import home_page

    section = home_page().add_child(instance=IndexPage(title="Members", slug="members"))
    page = make_video_page(world.video, title="Members video", parent=section)
    PageViewRestriction.objects.create(page=section, restriction_type=PageViewRestriction.LOGIN)
    url = stack.url(watch_path(page, world.video))
    assert requests.get(url, allow_redirects=False).status_code == 302
    response = stack_session(world.bob).get(url, headers={"Range": "bytes=0-1"})
    assert response.status_code == 206 and response.content == world.data[:2]


def test_not_found_answers_are_identical(stack, world, sample_video):
    draft = make_video_page(world.video, title="Draft", live=False)
    session = stack_session(world.alice)
    paths = [
        watch_path(draft, world.video),  # unpublished page
        watch_path(world.page, world.other_video),  # video not on that page
        watch_path(world.other_page, world.video),  # another page's id
        f"/watch/{world.page.pk}/999999/original/",  # no such video
        f"/watch/999999/{world.video.pk}/original/",  # no such page
        watch_path(world.page, world.video, "mp4-9000p"),  # no such rendition
    ]
    responses = [session.get(stack.url(p), allow_redirects=False) for p in paths]
    responses.append(requests.get(stack.url(watch_path(draft, world.video)), allow_redirects=False))
    for path, response in zip(paths + ["anonymous draft"], responses):
        assert response.status_code == 404, path
        assert response.content == b"Not found.\n", path
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert_denial_leaks_nothing(response, world.data)


def test_editor_may_watch_an_unpublished_page(stack, world):
    editor = make_user("editor", superuser=True)
    draft = make_video_page(world.video, title="Draft", live=False)
    response = stack_session(editor).get(
        stack.url(watch_path(draft, world.video)), headers={"Range": "bytes=0-1"}
    )
    assert response.status_code == 206 and response.content == world.data[:2]


def test_revocation_applies_to_the_next_range_request(stack, world):
    session = stack_session(world.alice)
    url = stack.url(watch_path(world.page, world.video))
    first = session.get(url, headers={"Range": "bytes=0-1023"})
    assert first.status_code == 206 and first.content == world.data[:1024]
    world.alice.groups.remove(world.viewers)
    second = session.get(url, headers={"Range": "bytes=1024-2047"})
    assert second.status_code == 403
    assert_denial_leaks_nothing(second, world.data)


def test_grant_can_be_revoked_by_deleting_it(stack, world):
    grant = ViewerGrant.objects.create(page=world.page, user=world.bob)
    session = stack_session(world.bob)
    url = stack.url(watch_path(world.page, world.video))
    assert session.get(url, headers={"Range": "bytes=0-1"}).status_code == 206
    grant.delete()
    assert session.get(url, headers={"Range": "bytes=0-1"}).status_code == 403


def test_download_needs_its_own_permission(stack, world):
    path = watch_path(world.page, world.video) + "download/"
    refused = stack_session(world.alice).get(stack.url(path))
    assert refused.status_code == 403
    assert_denial_leaks_nothing(refused, world.data)
    logged = PlaybackLogEntry.objects.get(username="alice")
    assert (logged.allowed, logged.reason) == (False, "no_download")
    ViewerGrant.objects.create(page=world.page, user=world.bob, can_download=True)
    response = stack_session(world.bob).get(stack.url(path))
    assert response.status_code == 200
    assert response.content == world.data
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=\"sample.mp4\"; filename*=UTF-8''sample.mp4"
    )


def test_the_original_is_a_download_once_a_rendition_can_stand_in_for_it(stack, world):
    """Inline or not, the original's bytes need the download right, except
    while the player plays the original itself (no MP4 rendition ready)."""
    from django.core.files.base import ContentFile

    from transcoding.models import Rendition

    alice = stack_session(world.alice)  # her grant does not allow downloads
    original = stack.url(watch_path(world.page, world.video))
    first = alice.get(original, headers={"Range": "bytes=0-1023"})
    assert first.status_code == 206 and first.content == world.data[:1024]  # the only thing to play
    assert alice.get(original, headers={"Range": "bytes=1024-2047"}).status_code == 206  # remembered

    rendition_bytes = b"\x00\x00\x00\x18ftypmp42" + b"r" * 4000
    rendition = Rendition(video=world.video, name="mp4-360p", kind=Rendition.Kind.MP4,
                          content_type="video/mp4", height=360, size=len(rendition_bytes))
    rendition.file.save("mp4-360p.mp4", ContentFile(rendition_bytes), save=False)
    rendition.save()

    # The very next request, on the decision the worker remembered: refused.
    refused = alice.get(original, headers={"Range": "bytes=0-1023"})
    assert refused.status_code == 403
    assert_denial_leaks_nothing(refused, world.data)
    # The playback report shows it as the refusal it was.
    assert PlaybackLogEntry.objects.filter(username="alice", allowed=False, reason="no_download").count() == 1
    playback = alice.get(stack.url(f"/playback/{world.page.pk}/{world.video.pk}/")).json()
    progressive = [source["src"] for source in playback["sources"] if source["type"] == "video/mp4"]
    assert progressive == [watch_path(world.page, world.video, "mp4-360p")] and playback["original"] is False
    played = alice.get(stack.url(progressive[0]))
    assert played.status_code == 200 and played.content == rendition_bytes

    # Whoever may download still gets it, inline and as a download.
    ViewerGrant.objects.create(page=world.page, user=world.bob, can_download=True)
    bob = stack_session(world.bob)
    inline = bob.get(original)
    assert inline.status_code == 200 and inline.content == world.data
    assert inline.headers["Content-Disposition"].startswith("inline")
    assert bob.get(original + "download/").content == world.data


def test_one_log_record_per_playback_session(stack, world):
    session = stack_session(world.alice)
    url = stack.url(watch_path(world.page, world.video))
    for start in range(0, 8192, 1024):
        assert session.get(url, headers={"Range": f"bytes={start}-{start + 1023}"}).status_code == 206
    for _ in range(3):
        assert stack_session(world.bob).get(url).status_code == 403
    allowed = PlaybackLogEntry.objects.filter(allowed=True)
    assert [(e.username, e.page_id, e.video_id) for e in allowed] == [
        ("alice", world.page.pk, world.video.pk)
    ]
    # Each of bob's requests came from a new session: one record each.
    denied = PlaybackLogEntry.objects.filter(allowed=False)
    assert denied.count() == 3
    assert {(e.username, e.reason) for e in denied} == {("bob", "no_grant")}


# --- the internal location -----------------------------------------------------------


def test_symlinks_in_the_private_root_are_not_followed(stack, world, tmp_path):
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"SECRET-OUTSIDE-THE-ROOT" * 100)
    link_name = f"videos/{world.video.key.hex[:2]}/{world.video.key.hex}/link.mp4"
    link = Path(settings.PRIVATE_MEDIA_ROOT) / link_name
    link.symlink_to(outside)
    world.video.file.name = link_name
    world.video.save()
    response = stack_session(world.alice).get(stack.url(watch_path(world.page, world.video)))
    assert response.status_code in (403, 404)
    assert b"SECRET" not in response.content
    assert "X-Accel-Redirect" not in response.headers



def raw_get(stack, path):
    """A request with the path exactly as written (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_internal_location_is_unreachable_directly(stack, world):
    name = world.video.file.name
    private_dir = Path(settings.PRIVATE_MEDIA_ROOT).name
    variants = [
        f"/_private/{name}",
        f"//_private/{name}",
        f"/_private//{name}",
        f"/_PRIVATE/{name}",
        f"/_Private/{name}",
        f"/_private./{name}",
        f"/_private%2F{name}",
        f"/%5Fprivate/{name}",
        f"/_priv%61te/{name}",
        f"/_private/../_private/{name}",
        f"/_private/%2e%2e/_private/{name}",
        f"/static/../_private/{name}",
        f"/static/%2e%2e/_private/{name}",
        f"/media/../{private_dir}/{name}",
        f"/media/%2e%2e/{private_dir}/{name}",
        f"/media../{private_dir}/{name}",
        f"/static/..%2f..%2f{private_dir}/{name}",
        f"/media/..%2F{private_dir}/{name}",
        f"/_private/{name}.",
    ]
    for path in variants:
        status, headers, body = raw_get(stack, path)
        assert status in (400, 404), (path, status)
        assert world.data[:16] not in body, path
        assert "X-Accel-Redirect" not in headers, path


FILENAMES = [
    ('my "quoted" clip.mp4', "inline; filename=\"my _quoted_ clip.mp4\"; filename*=UTF-8''my%20%22quoted%22%20clip.mp4"),
    ("semi;colon.mp4", "inline; filename=\"semi_colon.mp4\"; filename*=UTF-8''semi%3Bcolon.mp4"),
    ("evil\r\nSet-Cookie: pwned=1.mp4", "inline; filename=\"evilSet-Cookie: pwned=1.mp4\"; filename*=UTF-8''evilSet-Cookie%3A%20pwned%3D1.mp4"),
    ("Überraschung – café.mp4", "inline; filename=\"_berraschung _ caf_.mp4\"; filename*=UTF-8''%C3%9Cberraschung%20%E2%80%93%20caf%C3%A9.mp4"),
    ("🎬 trailer 日本.mp4", "inline; filename=\"_ trailer __.mp4\"; filename*=UTF-8''%F0%9F%8E%AC%20trailer%20%E6%97%A5%E6%9C%AC.mp4"),
]


def test_awkward_filenames_are_encoded(stack, world):
    session = stack_session(world.alice)
    for filename, expected in FILENAMES:
        world.video.original_filename = filename
        world.video.save()
        response = session.get(
            stack.url(watch_path(world.page, world.video)), headers={"Range": "bytes=0-1"}
        )
        assert response.status_code == 206, filename
        assert response.headers["Content-Disposition"] == expected
        assert "pwned" not in response.headers.get("Set-Cookie", "")
        assert response.content == world.data[:2]


def test_renditions_are_served_by_name(stack, world):
    from django.core.files.base import ContentFile

    from transcoding.models import Rendition

    playlist = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nhls-360p\n"
    files = {"mp4-360p": ("clip-360p.mp4", world.data[:5000], "video/mp4", Rendition.Kind.MP4),
             "hls-master": ("master.m3u8", playlist, "application/vnd.apple.mpegurl", Rendition.Kind.HLS_MASTER)}
    for name, (filename, content, content_type, kind) in files.items():
        rendition = Rendition(
            video=world.video, name=name, kind=kind, content_type=content_type, size=len(content)
        )
        rendition.file.save(filename, ContentFile(content), save=False)
        rendition.save()
    session = stack_session(world.alice)
    mp4 = session.get(stack.url(watch_path(world.page, world.video, "mp4-360p")), headers={"Range": "bytes=0-99"})
    assert mp4.status_code == 206 and mp4.content == world.data[:100]
    assert mp4.headers["Content-Type"] == "video/mp4"
    assert mp4.headers["Content-Disposition"] == "inline; filename=\"sample-mp4-360p.mp4\"; filename*=UTF-8''sample-mp4-360p.mp4"
    # Without the trailing slash too, so a playlist's relative sibling names resolve.
    master = session.get(stack.url(watch_path(world.page, world.video, "hls-master").rstrip("/")))
    assert master.status_code == 200 and master.content == playlist
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert master.headers["Cache-Control"] == "private, no-store"
    refused = stack_session(world.bob).get(stack.url(watch_path(world.page, world.video, "hls-master")))
    assert refused.status_code == 403 and b"EXTM3U" not in refused.content
