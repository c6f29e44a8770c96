"""Signed URLs bound to the viewer's browser (issue 14): the secure_link hash
covers a random per-browser cookie (MEDIA_ACCESS_VIEWER_COOKIE, ``pv_viewer``),
so a URL copied out of one browser is refused in another, by nginx alone,
on hls.js and on native HLS; and Django's own check (the S3 and no-nginx
path) refuses it the same way.

Through the real stack: two Chromium contexts, both allowed viewers; A plays,
and the segment and caption URLs of A's network log are refused from B and
from a plain client without A's cookie, and served to A and to a client with
A's cookie. Without a stack: one token per cookie, the cookie's attributes,
forged cookies refused without a 500, the signed view's check, the name's check.
"""

import contextlib
import re
import time
from http.cookies import SimpleCookie

import pytest
import requests
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from media_access import checks, tokens
from media_access.models import ViewerGrant
from media_access.nginx import render_nginx_config
from media_access.tokens import VideoToken, secure_link_token, video_prefix
from transcoding.profiles import Rung

from .browser import CHROMIUM, CHROMIUM_ARGS
from .helpers import make_user, make_video_page, stack_session
from .media_cache import transcoded_video

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

COOKIE = "pv_viewer"
LADDER = [Rung(180, 300), Rung(90, 150)]
BYTERANGE = re.compile(r"#EXT-X-BYTERANGE:(\d+)@(\d+)\s*\n(/stream/\S+)")
# Two browsers' cookies, as tokens.new_viewer makes them.
ALICE = "A" * 10 + "lice_viewer-0123456789"
BOB = "B" * 10 + "ob_viewer-012345678901"


def transcoded_page(tmp_path, *, duration=4, segment_seconds=2):
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / "bound.mp4", title="Bound",
                             clip=dict(duration=duration, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=LADDER, TRANSCODING_SEGMENT_SECONDS=segment_seconds,
                                           TRANSCODING_KEYFRAME_SECONDS=min(2, segment_seconds)))
    page = make_video_page(video, title="Bound page")
    members, _ = Group.objects.get_or_create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    return page, video, members


def add_caption(video):
    from private_video.captions import import_caption

    text = "WEBVTT\n\n00:00:00.000 --> 00:00:30.000\nBound caption\n"
    return import_caption(video, text.encode(), "en.vtt", language="en", kind="captions", label="English",
                          is_default=True)


@pytest.fixture
def world(tmp_path):
    page, video, members = transcoded_page(tmp_path)
    add_caption(video)
    alice = make_user("alice", groups=[members])
    bob = make_user("bob", groups=[members])
    return page, video, alice, bob


def signed_client(user, viewer=None):
    client = Client()
    client.force_login(user)
    if viewer is not None:
        client.cookies[COOKIE] = viewer
    return client


def set_cookies(response):
    """The response's Set-Cookie headers, parsed (name -> Morsel)."""
    parsed = SimpleCookie()
    for morsel in response.cookies.values():
        parsed.load(morsel.OutputString())
    return parsed


def token_of(url):
    _, _, value, expires, name = url.split("/", 4)
    return value, int(expires), name


# --- Django: the token, the cookie --------------------------------------------------


def test_each_browser_gets_its_own_token_for_the_same_video(world):
    page, video, alice, bob = world
    prefix = video_prefix(video)
    answers = {}
    for viewer in (ALICE, BOB):
        response = signed_client(alice, viewer).get(f"/playback/{page.pk}/{video.pk}/")
        assert response.status_code == 200
        # A valid cookie is kept: no Set-Cookie for it.
        assert COOKIE not in response.cookies
        token = response.json()["token"]
        assert token["value"] == secure_link_token(prefix, token["expires"], viewer)
        # The cookie is never in the JSON (it is HttpOnly; scripts have no use for it).
        assert viewer not in response.content.decode()
        answers[viewer] = token
    assert answers[ALICE]["value"] != answers[BOB]["value"]
    # Same expiry second, different cookie: different token (so the cookie is in the hash).
    same_second = int(time.time()) + 300
    assert secure_link_token(prefix, same_second, ALICE) != secure_link_token(prefix, same_second, BOB)

    # Every URI of a media playlist and of a caption playlist is signed for the cookie it was asked with.
    for viewer in (ALICE, BOB):
        client = signed_client(bob, viewer)
        for name in ("hls-90p", f"hls-subs-{video.captions.get().pk}"):
            response = client.get(f"/hls/{page.pk}/{video.pk}/{name}.m3u8")
            assert response.status_code == 200
            uris = [line for line in response.content.decode().splitlines() if line.startswith("/stream/")]
            uris += re.findall(r'URI="(/stream/[^"]+)"', response.content.decode())
            assert uris, name
            for uri in uris:
                value, expires, _ = token_of(uri)
                assert value == secure_link_token(prefix, expires, viewer), (name, uri)


def test_a_browser_without_the_cookie_gets_one_with_tokens_signed_for_it(world):
    page, video, alice, _ = world
    prefix = video_prefix(video)
    for path in (f"/playback/{page.pk}/{video.pk}/", f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8",
                 f"/hls/{page.pk}/{video.pk}/hls-master.m3u8"):
        for secure in (False, True):
            response = signed_client(alice).get(path, secure=secure)
            assert response.status_code == 200, path
            morsel = response.cookies[COOKIE]
            viewer = morsel.value
            assert tokens.valid_viewer(viewer) and len(viewer) >= 22
            assert morsel["httponly"] is True
            assert morsel["samesite"] == "Lax"
            assert morsel["path"] == "/"
            assert bool(morsel["secure"]) is secure
            # A browser-session cookie: no expiry, no max-age.
            assert not morsel["expires"] and not morsel["max-age"]
            # Caching unchanged: private, never stored, and varies by cookie.
            assert response["Cache-Control"] == "private, no-store"
            assert "Cookie" in response["Vary"]
            body = response.content.decode()
            if path.startswith("/playback/"):
                token = response.json()["token"]
                assert token["value"] == secure_link_token(prefix, token["expires"], viewer)
            elif "hls-90p" in path:
                for uri in re.findall(r"^/stream/\S+$", body, flags=re.M):
                    value, expires, _ = token_of(uri)
                    assert value == secure_link_token(prefix, expires, viewer)
    # Two browsers without the cookie get two different ones.
    first = signed_client(alice).get(f"/playback/{page.pk}/{video.pk}/").cookies[COOKIE].value
    second = signed_client(alice).get(f"/playback/{page.pk}/{video.pk}/").cookies[COOKIE].value
    assert first != second


FORGED_COOKIES = [
    "short",                       # too short to be unguessable
    "x" * 65,                      # too long
    "a" * 21 + " b",               # a space
    "abc;def=ghi" + "x" * 20,      # cookie syntax
    '"' + "q" * 30 + '"',          # quoted
    "é" * 30,                      # not ASCII
    "<script>alert(1)</script>" + "x" * 10,
    "../../" + "x" * 20,
    "x" * 25 + "\\r\\nSet-Cookie: evil=1",
]


def test_a_forged_cookie_is_replaced_never_hashed_or_echoed(world):
    page, video, alice, _ = world
    paths = (f"/playback/{page.pk}/{video.pk}/", f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8")
    for forged, path in ((forged, path) for forged in FORGED_COOKIES for path in paths):
        client = signed_client(alice)
        # The raw header, as a browser or a script would send it (not re-quoted by a cookie jar).
        raw = f"sessionid={client.cookies['sessionid'].value}; {COOKIE}={forged}"
        response = client.get(path, HTTP_COOKIE=raw)
        assert response.status_code == 200, (forged, path, response.status_code)
        viewer = response.cookies[COOKIE].value
        assert viewer != forged and tokens.valid_viewer(viewer)
        assert forged not in response.content.decode()
        assert all(forged not in value for value in response.headers.values())
        # What was signed is the new cookie, not the forged one.
        uri = re.search(r"/stream/[^\s\"]+", response.content.decode()).group(0)
        value, expires, _ = token_of(uri)
        assert value == secure_link_token(video_prefix(video), expires, viewer)
        assert value != secure_link_token(video_prefix(video), expires, forged)


def test_a_refusal_sets_no_viewer_cookie(world):
    page, video, _, _ = world
    stranger = signed_client(make_user("stranger"))
    for client in (Client(), stranger):
        response = client.get(f"/playback/{page.pk}/{video.pk}/")
        assert response.status_code == 403 and "token" not in response.json()
        assert COOKIE not in response.cookies
        assert client.get(f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8").status_code == 403


def test_tokens_are_never_issued_without_a_valid_viewer(world):
    _, video, _, _ = world
    for viewer in ("", None, "short", "x" * 65, "a b" * 10):
        with pytest.raises(ValueError):
            VideoToken.issue(video, viewer=viewer)


# --- Django's own check: the S3 path and runserver ----------------------------------


@override_settings(MEDIA_ACCESS_SERVE_MODE="django")
def test_the_signed_view_checks_the_viewer_cookie_itself(world):
    """What nginx hands over with STORAGE=s3 (and what runserver serves):
    the view checks the same hash, with the cookie read from the request."""
    page, video, alice, _ = world
    data = signed_client(alice, ALICE).get(f"/playback/{page.pk}/{video.pk}/").json()
    poster = data["poster"]
    with video.renditions.get(name="poster").file.open("rb") as handle:
        stored = handle.read()

    def fetch(viewer):
        client = Client()  # no session: nginx passes the viewer cookie alone
        if viewer is not None:
            client.cookies[COOKIE] = viewer
        return client.get(poster)

    served = fetch(ALICE)
    assert served.status_code == 200
    assert b"".join(served.streaming_content if served.streaming else [served.content]) == stored
    for other in (None, BOB, "short", ALICE + "x" * 50, ALICE[:-1] + "!"):
        refused = fetch(other)
        assert refused.status_code == 403 and refused.content == b"", other
        assert refused["Cache-Control"] == "private, no-store"


def test_the_s3_location_passes_the_viewer_cookie_and_never_the_session(settings):
    """With STORAGE=s3 nginx proxies /stream/ to the signed view: the Cookie it
    sends is rebuilt from the validated viewer cookie, nothing of the request's."""
    from media_access.nginx import nginx_context

    context = nginx_context()
    assert context["viewer_cookie"] == COOKIE
    config = render_nginx_config(s3={
        "location": "/_s3/", "content_types": [], "resolver": "", "origin": "http://127.0.0.1:9",
        "host": "127.0.0.1:9", "tls": False, "hostname": "127.0.0.1",
    }, private_root=None)
    stream = config[config.index("location ^~ /stream/"):config.index("location @media_token_denied")]
    assert 'proxy_set_header Cookie "pv_viewer=$media_viewer";' in stream
    assert 'secure_link_md5 "$media_expires$media_prefix$media_viewer ' in stream
    assert "$cookie_pv_viewer" not in stream  # only the validated copy is hashed or sent
    assert re.search(r'map \$cookie_pv_viewer \$media_viewer \{\s*default "";\s*"~\^\[A-Za-z0-9_-\]\{22,64\}\$" '
                     r"\$cookie_pv_viewer;\s*\}", config)


# --- the cookie's name ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["pv-viewer", "1viewer", "pv viewer", "", "pv;x", "é", "v" * 65, None])
def test_an_invalid_cookie_name_is_a_check_error_not_a_broken_config(settings, name):
    settings.MEDIA_ACCESS_VIEWER_COOKIE = name
    errors = [error for error in checks.check_settings() if error.id == "private_video_access.E007"]
    assert len(errors) == 1 and "MEDIA_ACCESS_VIEWER_COOKIE" in errors[0].msg
    with pytest.raises(ImproperlyConfigured):
        render_nginx_config()


def test_a_custom_cookie_name_is_used_by_django_and_rendered_for_nginx(settings, world):
    settings.MEDIA_ACCESS_VIEWER_COOKIE = "site_viewer_2"
    assert not [error for error in checks.check_settings() if error.id == "private_video_access.E007"]
    config = render_nginx_config()
    assert "map $cookie_site_viewer_2 $media_viewer" in config
    page, video, alice, _ = world
    client = signed_client(alice)
    client.cookies["site_viewer_2"] = ALICE
    response = client.get(f"/playback/{page.pk}/{video.pk}/")
    token = response.json()["token"]
    assert token["value"] == secure_link_token(video_prefix(video), token["expires"], ALICE)
    assert "site_viewer_2" not in response.cookies and COOKIE not in response.cookies


# --- through nginx --------------------------------------------------------------------


def changed_last_character(value):
    return value[:-1] + ("_" if value[-1] != "_" else "A")


def assert_refused(response):
    assert response.status_code == 403, (response.status_code, response.url)
    assert response.content == b""


@pytest.mark.integration
def test_nginx_refuses_a_copied_url_without_the_browsers_cookie(stack, world):
    page, video, alice, bob = world
    a, b = stack_session(alice), stack_session(bob)
    for session in (a, b):
        assert session.get(stack.url(f"/playback/{page.pk}/{video.pk}/")).status_code == 200
    assert a.cookies[COOKIE] != b.cookies[COOKIE]
    playlist = a.get(stack.url(f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8"))
    length, offset, url = BYTERANGE.search(playlist.text).groups()
    ranged = {"Range": f"bytes={offset}-{int(offset) + int(length) - 1}"}
    expected = video.renditions.get(name="hls-90p-media").file.open("rb").read()[int(offset):][:int(length)]

    before = stack.log_text("gunicorn-access")
    # A's browser, and a plain client holding only A's cookie: the bytes.
    for cookies in (a.cookies, {COOKIE: a.cookies[COOKIE]}):
        served = requests.get(stack.url(url), headers=ranged, cookies=cookies, timeout=10)
        assert served.status_code == 206 and served.content == expected
    # B's browser (allowed to watch, its own cookie), no cookie, a forged cookie,
    # A's cookie with a character changed, an empty one, A's session without A's cookie.
    refused = [
        b.cookies, {}, {COOKIE: "x" * 32}, {COOKIE: changed_last_character(a.cookies[COOKIE])}, {COOKIE: ""},
        {COOKIE: a.cookies[COOKIE] + "é"}, {"sessionid": a.cookies["sessionid"]},
    ]
    for cookies in refused:
        assert_refused(requests.get(stack.url(url), headers=ranged, cookies=cookies, timeout=10))
    # nginx decided all of it: no /stream/ request reached Python.
    assert "/stream/" not in stack.log_text("gunicorn-access")[len(before):]


@contextlib.contextmanager
def two_browsers(stack, alice, bob):
    """One Chromium, two contexts (separate cookie jars), each signed in."""
    from playwright.sync_api import sync_playwright

    sessions = []
    for user in (alice, bob):
        # Before Playwright's event loop starts: Django's ORM refuses to run inside it.
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            pages = []
            for session in sessions:
                context = browser.new_context(viewport={"width": 640, "height": 480})
                context.add_cookies([{"name": "sessionid", "value": session, "url": stack.base_url}])
                page = context.new_page()
                page.set_default_timeout(20_000)
                pages.append(page)
            yield pages
        finally:
            browser.close()


def browser_fetch(page, url, range_header=None):
    """A same-origin fetch() from inside that browser's page: its cookies go along."""
    return page.evaluate(
        """async ([url, range]) => {
            const response = await fetch(url, {headers: range ? {Range: range} : {}, cache: "no-store"});
            const body = new Uint8Array(await response.arrayBuffer());
            return {status: response.status, length: body.length};
        }""",
        [url, range_header],
    )


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.parametrize("engine", ["hlsjs", "native"])
def test_a_url_from_one_browsers_network_log_is_refused_in_another(stack, world, engine):
    page_obj, video, alice, bob = world
    page_url = stack.url(page_obj.url) + f"?player-engine={engine}"
    with two_browsers(stack, alice, bob) as (page_a, page_b):
        logs = {}
        for page in (page_a, page_b):
            seen = logs.setdefault(page, [])
            page.on("response", lambda response, seen=seen: seen.append(
                (response.status, response.url, response.request.headers.get("range"))
            ) if "/stream/" in response.url else None)
            page.goto(page_url)
            page.wait_for_function(f"document.querySelector('.video-player').dataset.engine === '{engine}'")
            page.evaluate("document.querySelector('.video-player video').muted = true")
            page.locator(".video-player__play").click()
            page.wait_for_function(
                "() => { const v = document.querySelector('.video-player video'); return v && v.currentTime > 1; }",
                timeout=30_000,
            )
        # Both are allowed viewers and play: every rendition file each fetched was served.
        for page, seen in logs.items():
            assert seen and all(status in (200, 206) for status, _, _ in seen), seen
        cookie_a = next(c for c in page_a.context.cookies() if c["name"] == COOKIE)
        cookie_b = next(c for c in page_b.context.cookies() if c["name"] == COOKIE)
        assert cookie_a["value"] != cookie_b["value"]
        assert cookie_a["httpOnly"] and cookie_a["sameSite"] == "Lax" and cookie_a["path"] == "/"
        assert cookie_a["expires"] == -1  # a browser-session cookie
        # Page scripts cannot read it (HttpOnly).
        assert COOKIE not in page_a.evaluate("document.cookie")

        segments = [(url, rng) for _, url, rng in logs[page_a] if url.endswith(".m4s")]
        assert segments, logs[page_a]
        copied = [segments[-1]]
        if engine == "hlsjs":
            # hls.js loads the default caption through the master's subtitles group.
            captions = [(url, None) for _, url, _ in logs[page_a] if url.endswith(".vtt")]
            assert captions, logs[page_a]
            copied.append(captions[0])
        for url, range_header in copied:
            own = browser_fetch(page_a, url, range_header)
            assert own["status"] in (200, 206) and own["length"] > 0, (url, own)
            assert browser_fetch(page_b, url, range_header) == {"status": 403, "length": 0}, url
            headers = {"Range": range_header} if range_header else {}
            assert_refused(requests.get(url, headers=headers, timeout=10))
            with_cookie = requests.get(url, headers=headers, cookies={COOKIE: cookie_a["value"]}, timeout=10)
            assert with_cookie.status_code in (200, 206) and len(with_cookie.content) == own["length"]
            # B's own cookie in a plain client: refused too.
            assert_refused(requests.get(url, headers=headers, cookies={COOKIE: cookie_b["value"]}, timeout=10))
