"""The playback JSON and playlists without a stack: token format, playlist
rewriting, and the runserver fallback (no nginx, so no signed URLs)."""

import base64
import hashlib

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from media_access import hls
from media_access.models import ViewerGrant
from media_access.tokens import secure_link_token, video_prefix
from transcoding.profiles import Rung

from .helpers import make_user, make_video_page
from .media_cache import transcoded_video

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_token_is_nginx_secure_link_md5_of_expiry_prefix_viewer_and_secret():
    viewer = "V" * 32
    digest = hashlib.md5(b"1700000000videos/ab/" + b"c" * 32 + b"/renditions/" + b"V" * 32 + b" s3cret").digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert secure_link_token("videos/ab/" + "c" * 32 + "/renditions/", 1700000000, viewer, secret="s3cret") == expected
    assert len(expected) == 22


def test_rewrite_refuses_a_playlist_naming_an_unknown_file():
    text = '#EXTM3U\n#EXT-X-MAP:URI="hls-90p-media",BYTERANGE="800@0"\n#EXTINF:2.0,\nhls-90p-media\n'
    assert hls.rewrite_playlist(text, lambda name: "/x/" + name) == (
        '#EXTM3U\n#EXT-X-MAP:URI="/x/hls-90p-media",BYTERANGE="800@0"\n#EXTINF:2.0,\n/x/hls-90p-media\n'
    )
    with pytest.raises(LookupError):
        hls.rewrite_playlist(text, lambda name: None)


@pytest.fixture
def granted(tmp_path):
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / "clip.mp4", title="clip", clip=dict(duration=3, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=[Rung(90, 150)]))
    page = make_video_page(video)
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    return page, video, client


def test_media_playlist_signs_every_uri_for_this_video_only(granted):
    page, video, client = granted
    response = client.get(f"/hls/{page.pk}/{video.pk}/hls-90p.m3u8")
    assert response.status_code == 200
    uris = [line for line in response.content.decode().splitlines() if line and not line.startswith("#")]
    media = video.renditions.get(name="hls-90p-media").file.name
    assert uris and all(uri.endswith(media) and video_prefix(video) in uri for uri in uris)
    # Each URI is a valid token for that folder and this browser's viewer
    # cookie, set by this answer (whatever second it was issued in).
    viewer = response.cookies["pv_viewer"].value
    for uri in uris:
        _, _, value, expires, name = uri.split("/", 4)
        assert value == secure_link_token(video_prefix(video), int(expires), viewer) and name == media
    # Not playlists: the media file, unknown names, the master's siblings by another name.
    for name in ("hls-90p-media", "poster", "hls-1080p"):
        assert client.get(f"/hls/{page.pk}/{video.pk}/{name}.m3u8").status_code == 404


@override_settings(MEDIA_ACCESS_SERVE_MODE="django")
def test_without_nginx_the_same_signed_urls_are_checked_and_served_by_django(granted):
    page, video, client = granted
    data = client.get(f"/playback/{page.pk}/{video.pk}/").json()
    assert [source["type"] for source in data["sources"]] == ["application/vnd.apple.mpegurl", "video/mp4"]
    assert data["poster"].startswith("/stream/")
    # Another client: only the viewer cookie the JSON set, not the session.
    anonymous = Client()
    assert anonymous.get(data["poster"]).status_code == 403
    anonymous.cookies["pv_viewer"] = client.cookies["pv_viewer"].value
    response = anonymous.get(data["poster"])
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    poster = video.renditions.get(name="poster")
    with poster.file.open("rb") as handle:
        assert b"".join(response.streaming_content if response.streaming else [response.content]) == handle.read()
    parts = data["poster"].split("/")
    parts[2] = ("A" if parts[2][0] != "A" else "B") + parts[2][1:]
    forged = anonymous.get("/".join(parts))
    assert forged.status_code == 403 and forged.content == b""
