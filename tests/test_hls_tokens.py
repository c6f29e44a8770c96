"""Signed HLS URLs through the real stack (the shipped nginx template, gunicorn):
playlists only after the policy, rendition bytes only with a valid token for
that video, and nothing at all for forged, expired, foreign or revoked ones."""

import re
import time

import pytest
import requests
from django.contrib.auth.models import Group

from media_access.models import ViewerGrant
from media_access.tokens import VideoToken, secure_link_token, url_prefix, video_prefix
from transcoding.profiles import Rung

from .conftest import SHORT_TOKEN_LIFETIME
from .helpers import make_user, make_video_page, stack_session
from .media_cache import transcoded_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TINY_LADDER = [Rung(180, 300), Rung(90, 150)]
BYTERANGE = re.compile(r"#EXT-X-BYTERANGE:(\d+)@(\d+)\s*\n(/stream/\S+)")


def transcoded_page(tmp_path, name="clip", duration=4):
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / f"{name}.mp4", title=name,
                             clip=dict(duration=duration, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=TINY_LADDER))
    page = make_video_page(video, title=f"Page {name}")
    members, _ = Group.objects.get_or_create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    return page, video, members


@pytest.fixture
def granted(tmp_path):
    page, video, members = transcoded_page(tmp_path)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer


def first_segment(stack, session, page, video, rung="hls-90p"):
    response = session.get(stack.url(f"/hls/{page.pk}/{video.pk}/{rung}.m3u8"))
    assert response.status_code == 200, response.text
    length, offset, url = BYTERANGE.search(response.text).groups()
    return url, int(offset), int(length), response.text


def viewer_cookie(session):
    """Only the viewer cookie the session's browser was given (signed URLs are bound to it), not the session."""
    return {"pv_viewer": session.cookies["pv_viewer"]}


# A browser's viewer cookie, for tokens the tests issue themselves.
VIEWER = "test-viewer-" + "x" * 20


class ViewerClient:
    """requests.get with a browser's viewer cookie on every request."""

    def __init__(self, viewer):
        self.viewer = viewer

    def get(self, url, **kwargs):
        return requests.get(url, cookies={"pv_viewer": self.viewer}, **kwargs)


def rendition_bytes(video, name):
    rendition = video.renditions.get(name=name)
    with rendition.file.open("rb") as handle:
        return handle.read()


def assert_denied_without_bytes(response):
    assert response.status_code == 403, (response.status_code, response.headers)
    assert response.content == b""
    assert response.headers.get("Content-Length", "0") == "0"


def test_viewer_gets_signed_playlists_and_nginx_serves_the_byte_ranges(stack, granted):
    page, video, viewer = granted
    session = stack_session(viewer)

    info = session.get(stack.url(f"/playback/{page.pk}/{video.pk}/"))
    assert info.status_code == 200
    assert info.headers["Cache-Control"] == "private, no-store"
    data = info.json()
    assert data["sources"][0] == {
        "type": "application/vnd.apple.mpegurl", "src": f"/hls/{page.pk}/{video.pk}/hls-master.m3u8",
    }
    assert data["sources"][1]["type"] == "video/mp4"
    assert [level["height"] for level in data["levels"]] == [90, 180]
    assert data["token"]["lifetime"] == 300
    assert 290 <= data["token"]["expires"] - time.time() <= 301
    assert data["duration"] == pytest.approx(4, abs=0.2)
    assert data["storyboard"]["cues"][0]["start"] == 0

    master = session.get(stack.url(data["sources"][0]["src"]))
    assert master.status_code == 200
    assert master.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8" in master.text
    assert f"/hls/{page.pk}/{video.pk}/hls-180p.m3u8" in master.text

    url, offset, length, playlist = first_segment(stack, session, page, video)
    assert url.startswith(f"{url_prefix()}") and video_prefix(video) in url
    assert "#EXT-X-ENDLIST" in playlist and 'URI="/stream/' in playlist
    # nginx answers the byte range itself: a fresh client with only the viewer
    # cookie (no session), and gunicorn never sees the request.
    before = stack.log_text("gunicorn-access")
    segment = requests.get(
        stack.url(url), headers={"Range": f"bytes={offset}-{offset + length - 1}"}, cookies=viewer_cookie(session)
    )
    assert segment.status_code == 206
    assert segment.content == rendition_bytes(video, "hls-90p-media")[offset:offset + length]
    assert segment.headers["Content-Type"] == "video/iso.segment"
    assert "private" in segment.headers["Cache-Control"]
    assert "/stream/" not in (stack.root / "gunicorn-access.log").read_text()[len(before):]

    poster = requests.get(stack.url(data["poster"]), cookies=viewer_cookie(session))
    assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff"
    sprite = requests.get(stack.url(data["storyboard"]["url"]), cookies=viewer_cookie(session))
    assert sprite.status_code == 200 and sprite.headers["Content-Type"] == "image/jpeg"


def test_forged_expired_and_foreign_tokens_get_403_and_no_bytes(stack, tmp_path, granted):
    page, video, viewer = granted
    other_page, other_video, _ = transcoded_page(tmp_path, name="other")
    session = stack_session(viewer)
    url, offset, length, _ = first_segment(stack, session, page, video)
    _, _, prefix_token, expires, rest = url.split("/", 4)
    ranged = {"Range": f"bytes={offset}-{offset + length - 1}"}
    # Every refusal below comes with the right viewer cookie: only the token is wrong.
    cookies = viewer_cookie(session)
    assert requests.get(stack.url(url), headers=ranged, cookies=cookies).status_code == 206

    # Forged: one character of the token changed; a token made with another secret.
    # (The first character: the last one carries only 2 bits of the digest.)
    forged = ("A" if prefix_token[0] != "A" else "B") + prefix_token[1:]
    assert_denied_without_bytes(
        requests.get(stack.url(f"/stream/{forged}/{expires}/{rest}"), headers=ranged, cookies=cookies)
    )
    prefix = video_prefix(video)
    wrong_secret = secure_link_token(prefix, int(expires), cookies["pv_viewer"], secret="x" * 64)
    assert_denied_without_bytes(requests.get(stack.url(f"/stream/{wrong_secret}/{expires}/{rest}"), cookies=cookies))
    # A later expiry under the same token: the expiry is signed.
    assert_denied_without_bytes(
        requests.get(stack.url(f"/stream/{prefix_token}/{int(expires) + 3600}/{rest}"), cookies=cookies)
    )

    # Expired: correctly signed, a second in the past.
    expired = VideoToken.issue(video, viewer=cookies["pv_viewer"], now=time.time() - 301, lifetime=300)
    assert_denied_without_bytes(requests.get(stack.url(expired.url_for(rest)), headers=ranged, cookies=cookies))

    # Another video's token on this video's files, and this token on the other's.
    foreign = VideoToken.issue(other_video, viewer=cookies["pv_viewer"])
    assert_denied_without_bytes(
        requests.get(stack.url(f"/stream/{foreign.value}/{foreign.expires}/{rest}"), headers=ranged, cookies=cookies)
    )
    other_file = other_video.renditions.get(name="hls-90p-media").file.name
    assert_denied_without_bytes(
        requests.get(stack.url(f"/stream/{prefix_token}/{expires}/{other_file}"), cookies=cookies)
    )


def test_a_token_opens_only_its_videos_rendition_files(stack, granted):
    page, video, viewer = granted
    token = VideoToken.issue(video, viewer=VIEWER)
    base = f"/stream/{token.value}/{token.expires}/"
    # The token's own viewer cookie on every request: only the path is wrong.
    client = ViewerClient(VIEWER)
    assert client.get(stack.url(base + video.renditions.get(name="poster").file.name)).status_code == 200
    master = video.renditions.get(name="hls-master").file.name
    # Wrong path prefix: the original sits beside renditions/, outside the signed folder.
    assert_denied_without_bytes(client.get(stack.url(base + video.file.name)))
    # Playlists are Django's (they carry tokens); never served raw here.
    assert_denied_without_bytes(client.get(stack.url(base + master)))
    # Climbing out of the folder, encoded or not; a missing token; junk.
    parent = video_prefix(video) + "../original.mp4"
    assert_denied_without_bytes(client.get(stack.url(base + parent)))
    assert_denied_without_bytes(client.get(stack.url(base + parent.replace("..", "%2e%2e"))))
    assert_denied_without_bytes(client.get(stack.url("/stream/" + video.renditions.get(name="poster").file.name)))
    assert_denied_without_bytes(client.get(stack.url("/stream/")))
    # The private root itself stays internal.
    assert client.get(stack.url("/_private/" + video.file.name)).status_code == 404


def test_anonymous_and_ungranted_viewers_get_no_playlist_and_no_token(stack, granted):
    page, video, viewer = granted
    anonymous = requests.Session()
    denied = anonymous.get(stack.url(f"/playback/{page.pk}/{video.pk}/"))
    assert denied.status_code == 403
    assert denied.json()["reason"] == "login_required" and "/login/" in denied.json()["login_url"]
    assert "token" not in denied.json()
    for name in ("hls-master", "hls-90p"):
        response = anonymous.get(stack.url(f"/hls/{page.pk}/{video.pk}/{name}.m3u8"))
        assert response.status_code == 403 and "/stream/" not in response.text

    stranger = stack_session(make_user("stranger"))
    denied = stranger.get(stack.url(f"/playback/{page.pk}/{video.pk}/"))
    assert denied.status_code == 403 and denied.json()["reason"] == "forbidden"
    assert stranger.get(stack.url(f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8")).status_code == 403
    # A video that is not on the page: not found, whoever asks.
    assert stack_session(viewer).get(stack.url(f"/playback/{page.pk}/{video.pk + 999}/")).status_code == 404


# short_token_stack (tokens live this long): tests/conftest.py, shared with other modules.
SHORT_LIFETIME = SHORT_TOKEN_LIFETIME


def test_revoked_viewer_loses_access_once_the_token_lifetime_has_passed(short_token_stack, granted):
    """The documented bound, both sides of it: a token handed out before the
    revocation keeps working until its signed expiry (issue time plus
    MEDIA_ACCESS_TOKEN_LIFETIME), and not a second after. The expiry is read
    from the signed URL and the test waits for it; nothing depends on luck."""
    stack = short_token_stack
    page, video, viewer = granted
    session = stack_session(viewer)
    before_issue = int(time.time())
    url, offset, length, _ = first_segment(stack, session, page, video)
    expires = int(url.split("/")[3])
    # The stack's setting decides the lifetime (whole seconds, so allow one of rounding).
    assert before_issue + SHORT_LIFETIME <= expires <= int(time.time()) + SHORT_LIFETIME + 1
    ranged = {"Range": f"bytes={offset}-{offset + length - 1}"}
    expected = rendition_bytes(video, "hls-90p-media")[offset:offset + length]
    cookies = viewer_cookie(session)
    first = requests.get(stack.url(url), headers=ranged, cookies=cookies)
    assert first.status_code == 206 and first.content == expected

    viewer.groups.clear()
    # No new playlist, no new token, from the next request on.
    assert session.get(stack.url(f"/playback/{page.pk}/{video.pk}/")).status_code == 403
    assert session.get(stack.url(f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8")).status_code == 403
    # The token already handed out works until it expires. This must be checked
    # before the expiry: a machine too slow for that fails here, never skips it.
    still_valid = requests.get(stack.url(url), headers=ranged, cookies=cookies)
    checked_at = time.time()
    assert checked_at < expires, f"checked {checked_at - expires:.1f} s after the expiry: too slow to test the bound"
    assert still_valid.status_code == 206 and still_valid.content == expected

    # nginx compares whole seconds: one second past the expiry it must refuse.
    time.sleep(max(0.0, expires + 1.1 - time.time()))
    assert_denied_without_bytes(requests.get(stack.url(url), headers=ranged, cookies=cookies))
