"""HTTP hardening through the real stack (the shipped nginx template in front
of gunicorn): request body limits per location, bounded byte ranges, one of
each header on every answer, plain-text denials, and 404s that say nothing
about which ids exist."""

import http.client
import socket
import time
from pathlib import Path

import pytest
from django.conf import settings

from media_access.tokens import VideoToken, video_prefix

from .helpers import csrf_token, make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MiB = 1024 * 1024


def fetch(stack, method, path, *, headers=None, session=None, body=None):
    """One request with the path as written; the answer's headers as a list,
    duplicates kept (requests would join them into one)."""
    headers = dict(headers or {})
    if session is not None and session.cookies:
        headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=20)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def header(headers, name):
    values = [value for key, value in headers if key.lower() == name.lower()]
    assert len(values) <= 1, (name, values)
    return values[0] if values else None


def assert_no_duplicate_headers(label, headers):
    # Set-Cookie is one header per cookie (RFC 6265 forbids folding them):
    # the playback JSON sets the CSRF and the viewer cookie. Each cookie once.
    names = [
        f"set-cookie {value.split('=', 1)[0]}" if key.lower() == "set-cookie" else key.lower()
        for key, value in headers
    ]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, (label, duplicates, headers)


def assert_plain_denial(label, headers):
    assert header(headers, "Content-Type").startswith("text/plain"), (label, headers)
    assert header(headers, "X-Content-Type-Options") == "nosniff", (label, headers)


def send_headers_only(stack, path, length, timeout=3.0):
    """Announce a ``length``-byte body, send none of it, and wait for the
    answer: a limit checked on the headers answers at once; a location that
    accepts the body waits for it (None)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        started = time.monotonic()
        try:
            answer = sock.recv(65536)
        except socket.timeout:
            return None, time.monotonic() - started
    return answer, time.monotonic() - started


# --- request bodies ------------------------------------------------------------------


def test_large_bodies_are_refused_at_once_outside_the_video_upload(stack):
    # Anonymous, nothing sent but the headers: nginx answers 413 from the
    # Content-Length alone, without reading (or buffering) the body.
    for path, length in [("/login/", 20 * MiB), ("/", 20 * MiB), ("/watch/1/1/original/", 20 * MiB),
                         ("/playback/1/1/", 2 * MiB), ("/static/cms/css/site.css", 2 * MiB),
                         ("/admin/login/", 64 * MiB), ("/admin/pages/add/", 64 * MiB),
                         ("/admin/videos/", 64 * MiB), ("/admin/videos/delete/1/", 64 * MiB)]:
        answer, elapsed = send_headers_only(stack, path, length)
        assert answer is not None, f"{path}: nginx waited for a {length}-byte body"
        assert answer.startswith(b"HTTP/1.1 413 "), (path, answer[:200])
        assert elapsed < 2, (path, elapsed)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"\r\nContent-Type: text/plain" in head and b"\r\nX-Content-Type-Options: nosniff" in head
        assert b"<html" not in body


def test_small_bodies_still_reach_django(stack):
    # The login form and the admin (Wagtail's image and document uploads) keep
    # working. A valid CSRF cookie and token, so Django reads and parses the
    # whole body (a request refused before its body is read can meet a closed
    # upstream socket while nginx still writes it: a 502 that says nothing
    # about nginx's limits). The username comes after the filler: seeing it
    # again in the re-rendered form proves every byte got through.
    import requests

    for path, size in (("/login/", 512 * 1024), ("/admin/login/", 2 * MiB)):
        session = requests.Session()
        token = csrf_token(session, stack.url(path))
        body = (f"csrfmiddlewaretoken={token}&filler=".encode() + b"a" * size
                + b"&username=body-went-through&password=wrong")
        status, headers, answer = fetch(
            stack, "POST", path, session=session, body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Referer": stack.url(path)},
        )
        assert status == 200, (path, status, answer[:300])
        assert b'value="body-went-through"' in answer, path


def test_video_upload_endpoints_take_video_sized_bodies(stack, sample_video):
    video = make_video(sample_video, title="Replace me")
    body = b"x=" + b"a" * (48 * MiB)  # over the admin's limit, far under PRIVATE_VIDEO_MAX_UPLOAD_SIZE
    # From a user who may upload (nginx refuses anyone else before the body:
    # test_attack_probes.py::test_upload_urls_take_no_body_from_visitors_who_may_not_upload).
    uploader = stack_session(make_user("body-uploader", superuser=True))
    for path in ("/admin/videos/new/", "/admin/videos/chooser/create/", f"/admin/videos/edit/{video.pk}/"):
        status, headers, answer = fetch(stack, "POST", path, body=body, session=uploader,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        # Through nginx to Django, which refuses a POST without a CSRF token.
        assert status == 403 and b"CSRF verification failed" in answer, (path, status)
    # Only those URLs: their neighbours keep the admin's limit.
    for path in ("/admin/videos/new/x/", f"/admin/videos/edit/{video.pk}/x/", "/admin/videos/chooser/"):
        answer, _ = send_headers_only(stack, path, 48 * MiB)
        assert answer is not None and answer.startswith(b"HTTP/1.1 413 "), path


# --- ranges --------------------------------------------------------------------------


def many_ranges(count):
    return "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(count))


@pytest.fixture
def viewer_world(sample_video):
    viewer = make_user("viewer")
    video = make_video(sample_video, title="Ranges")
    page = make_video_page(video, title="Ranges page")
    data = Path(settings.PRIVATE_MEDIA_ROOT, video.file.name).read_bytes()
    return viewer, video, page, data


# The viewer cookie a player's browser holds; signed URLs are bound to it.
VIEWER = "hardening-" + "v" * 22
VIEWER_COOKIE = {"Cookie": f"pv_viewer={VIEWER}"}


def signed_rendition_file(video, name="1-test/hls-90p.m4s", size=64 * 1024):
    """A rendition file in the video's folder and the signed URL a player gets for it
    (what the transcoder and the playlist view make, without running them), for VIEWER."""
    storage_name = video_prefix(video) + name
    path = Path(settings.PRIVATE_MEDIA_ROOT, storage_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bytes(range(256)) * (size // 256)
    path.write_bytes(data)
    return VideoToken.issue(video, viewer=VIEWER).url_for(storage_name), data


def test_many_ranges_get_the_whole_file_not_a_multipart_answer(stack, viewer_world):
    viewer, video, page, data = viewer_world
    session = stack_session(viewer)
    path = f"/watch/{page.pk}/{video.pk}/original/"
    for count in (600, 2):
        status, headers, body = fetch(stack, "GET", path, session=session, headers={"Range": many_ranges(count)})
        # As if there were no Range header: the one file, once (what a plain GET gets).
        assert status == 200, (count, status)
        assert header(headers, "Content-Type") == "video/mp4"
        assert body == data and len(body) == len(data)
        assert b"multipart" not in body[:200]
    status, headers, body = fetch(stack, "GET", path, session=session, headers={"Range": "bytes=0-0"})
    assert status == 206 and body == data[:1]
    # Static files too.
    status, headers, body = fetch(stack, "GET", "/static/cms/css/site.css", headers={"Range": many_ranges(600)})
    assert status == 200 and "multipart" not in header(headers, "Content-Type")


def test_many_ranges_on_hls_segments(stack, viewer_world):
    url, media = signed_rendition_file(viewer_world[1])
    status, headers, body = fetch(stack, "GET", url, headers={"Range": many_ranges(600), **VIEWER_COOKIE})
    assert status == 200 and body == media
    assert header(headers, "Content-Type") == "video/iso.segment"


# --- one of each header; plain denials -------------------------------------------------


def test_no_answer_repeats_a_header(stack, viewer_world):
    viewer, video, page, data = viewer_world
    stranger = make_user("stranger")
    session, other = stack_session(viewer), stack_session(stranger)
    watch = f"/watch/{page.pk}/{video.pk}/original/"
    segment, _ = signed_rendition_file(video)
    offset, length = 100, 1000
    forged = segment.replace(segment.split("/")[2], "A" * 22)
    from media_access.models import ViewerGrant
    private_page = make_video_page(video, title="Private")
    from wagtail.models import PageViewRestriction
    PageViewRestriction.objects.create(page=private_page, restriction_type=PageViewRestriction.LOGIN)
    ViewerGrant.objects.create(page=private_page, user=viewer)
    private_watch = f"/watch/{private_page.pk}/{video.pk}/original/"
    answers = {
        "page": ("GET", "/", {}, None, 200),
        "admin login": ("GET", "/admin/login/", {}, None, 200),
        "static": ("GET", "/static/cms/css/site.css", {}, None, 200),
        "static 404": ("GET", "/static/no-such-file.css", {}, None, 404),
        "watch 200": ("GET", watch, {}, session, 200),
        "watch HEAD": ("HEAD", watch, {}, session, 200),
        "watch 206": ("GET", watch, {"Range": "bytes=0-9"}, session, 206),
        "watch 416": ("GET", watch, {"Range": f"bytes={len(data)}-"}, session, 416),
        "watch 404": ("GET", f"/watch/{page.pk}/999999/original/", {}, session, 404),
        "watch 302": ("GET", private_watch, {}, None, 302),
        "watch 403": ("GET", private_watch, {}, other, 403),
        "watch 405": ("POST", watch, {}, session, 405),
        "download 403": ("GET", watch + "download/", {}, session, 403),
        "playback 200": ("GET", f"/playback/{page.pk}/{video.pk}/", {}, session, 200),
        "playlist 404": ("GET", f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8", {}, session, 404),
        "segment 206": ("GET", segment, {"Range": f"bytes={offset}-{offset + length - 1}", **VIEWER_COOKIE}, None, 206),
        "segment 416": ("GET", segment, {"Range": "bytes=99999999-", **VIEWER_COOKIE}, None, 416),
        "token 403": ("GET", forged, {}, None, 403),
        "internal 404": ("GET", "/_private/" + video.file.name, {}, None, 404),
    }
    for label, (method, path, headers, who, expected) in answers.items():
        status, got, _ = fetch(stack, method, path, headers=headers, session=who)
        assert status == expected, (label, status)
        assert_no_duplicate_headers(label, got)
        if status in (403, 404, 405, 413, 416) and label not in ("watch 416", "segment 416", "static 404"):
            assert_plain_denial(label, got)
        if label.startswith(("watch", "download", "segment", "token", "playlist", "playback")):
            assert header(got, "X-Content-Type-Options") == "nosniff", label
    # Static files: one Cache-Control, long-lived and public.
    _, got, _ = fetch(stack, "GET", "/static/cms/css/site.css")
    assert header(got, "Cache-Control") == "public, max-age=2592000"


def test_forged_token_is_a_plain_text_403(stack, viewer_world):
    segment, _ = signed_rendition_file(viewer_world[1])
    token = segment.split("/")[2]
    for path in (segment.replace(token, "A" * 22), segment.replace(".m4s", ".jpg").replace(token, "B" * 22),
                 "/stream/not-a-token/poster.jpg"):
        status, headers, body = fetch(stack, "GET", path)
        assert status == 403 and body == b"", path
        assert header(headers, "Content-Type") == "text/plain", (path, headers)
        assert header(headers, "X-Content-Type-Options") == "nosniff", path
        assert header(headers, "Cache-Control") == "private, no-store", path


# --- 404s that do not tell ids apart -------------------------------------------------------


def test_not_found_is_the_same_whether_the_id_exists_or_not(stack, sample_video):
    from django.contrib.auth.models import Group

    from media_access.models import ViewerGrant

    video = make_video(sample_video, title="Listed")
    other_video = make_video(sample_video, title="Elsewhere")
    page = make_video_page(video, title="Listed page")
    make_video_page(other_video, title="Other page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("enumerator", groups=[members])
    missing = 987654
    variants = {
        "watch": "/watch/{page}/{video}/original/",
        "watch rendition": "/watch/{page}/{video}/mp4-180p/",
        "download": "/watch/{page}/{video}/original/download/",
        "playback": "/playback/{page}/{video}/",
        "hls master": "/hls/{page}/{video}/hls-master.m3u8",
        "hls rung": "/hls/{page}/{video}/hls-90p.m3u8",
    }
    for who in (stack_session(viewer), stack_session(None)):
        for label, template in variants.items():
            paths = [
                template.format(page=page.pk, video=other_video.pk),  # exists, not on this page
                template.format(page=page.pk, video=missing),  # no such video
                template.format(page=missing, video=video.pk),  # no such page
                template.format(page=missing, video=missing),
            ]
            answers = []
            for path in paths:
                status, headers, body = fetch(stack, "GET", path, session=who)
                assert status == 404, (label, path, status)
                answers.append((status, sorted((k, v) for k, v in headers if k.lower() != "date"), body))
            for path, answer in zip(paths[1:], answers[1:]):
                assert answer == answers[0], (label, path, answer, answers[0])
