"""Captions, chapters and the chosen poster as media_access delivers them:
the playback JSON, the master playlist's SUBTITLES group (parsed with the
`m3u8` package), each caption's VOD media playlist whose one segment is the
signed WebVTT file (fetched through the real nginx), and the chapters track.
Everything behind the page policy first; an outsider gets no caption bytes."""

import math
import time

import m3u8
import pytest
import requests
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from media_access import published
from media_access.models import ViewerGrant
from media_access.tokens import url_prefix, video_prefix
from private_video.captions import import_caption, set_chapters
from private_video.layout import poster_name
from private_video.tracks import Caption, Chapter
from transcoding.models import Rendition
from transcoding.profiles import Rung
from transcoding.testmedia import make_test_video

from .helpers import make_user, make_video, make_video_page, stack_session
from .media_cache import transcoded_video

TINY_LADDER = [Rung(180, 300), Rung(90, 150)]

# Accents, CJK, right-to-left text and an emoji, as editors upload them.
FRENCH_SRT = (
    "1\n00:00:00,000 --> 00:00:02,000\nÉté à Noël, ça déçoit ? 🎬\n\n"
    "2\n00:00:02,000 --> 00:00:04,000\n日本語の字幕\n"
).encode()
ARABIC_VTT = "WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nمرحبا بالعالم\n".encode()


def transcoded(tmp_path, name="clip", duration=4):
    """A 320x180 clip transcoded to TINY_LADDER: for real once per run and
    duration, then a copy of that video (its own key, rows and files; see
    tests/media_cache.py). Transcoding itself is tested in test_transcoding_*."""
    return transcoded_video(tmp_path / f"{name}.mp4", title=name,
                            clip=dict(duration=duration, width=320, height=180),
                            settings=dict(TRANSCODING_LADDER=TINY_LADDER))


def granted_page(video, title="Captioned"):
    page = make_video_page(video, title=title)
    members, _ = Group.objects.get_or_create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    return page, members


def add_captions(video):
    french = import_caption(
        video, FRENCH_SRT, "fr.srt", language="fr", kind="subtitles", label="Français", is_default=True
    )
    arabic = import_caption(video, ARABIC_VTT, "ar.vtt", language="ar", kind="captions", label="العربية")
    return french, arabic


def stored_bytes(field_file):
    with field_file.storage.open(field_file.name, "rb") as handle:
        return handle.read()


def playback_url(page, video):
    return reverse("media_access:playback", args=[page.pk, video.pk])


def hls_url(page, video, name):
    return reverse("media_access:hls_playlist", args=[page.pk, video.pk, name])


@pytest.fixture
def world(tmp_path):
    published.forget()
    video = transcoded(tmp_path)
    page, members = granted_page(video)
    french, arabic = add_captions(video)
    viewer = Client()
    viewer.force_login(make_user("viewer", groups=[members]))
    outsider = Client()
    outsider.force_login(make_user("outsider"))
    return page, video, french, arabic, viewer, outsider


# --- the playback JSON ------------------------------------------------------------------


@pytest.mark.django_db
def test_playback_json_lists_caption_objects_chapters_and_signed_urls(world):
    page, video, french, arabic, viewer, _ = world
    set_chapters(video, [(0, "Intro"), (2.5, "Le cœur <du> sujet")])
    # A captions rendition from before captions were their own objects is no longer listed.
    Rendition.objects.create(
        video=video, name="captions-de", kind=Rendition.Kind.CAPTIONS,
        file=video_prefix(video) + "old/captions.vtt", content_type="text/vtt",
    )

    data = viewer.get(playback_url(page, video)).json()

    prefix = url_prefix()
    captions = data["captions"]
    # Default first, then by language: the same order as the master's SUBTITLES group.
    assert [(c["id"], c["srclang"], c["label"], c["kind"], c["default"]) for c in captions] == [
        (french.pk, "fr", "Français", "subtitles", True),
        (arabic.pk, "ar", "العربية", "captions", False),
    ]
    for caption, row in zip(captions, (french, arabic)):
        assert caption["src"].startswith(prefix) and caption["src"].endswith(row.file.name)
        assert video_prefix(video) in caption["src"]
    assert data["chapters"] == {
        "src": reverse("media_access:chapters", args=[page.pk, video.pk]),
        "items": [{"start": 0.0, "title": "Intro"}, {"start": 2.5, "title": "Le cœur <du> sujet"}],
    }
    # The transcoder's poster until the editor picks one.
    poster = video.renditions.get(kind=Rendition.Kind.POSTER)
    assert data["poster"].endswith(poster.file.name)


@pytest.mark.django_db
def test_the_editors_poster_wins_over_the_transcoders(world):
    page, video, _, _, viewer, _ = world
    name = video.poster_file.storage.save(poster_name(video.key, "abc123"), ContentFile(b"\xff\xd8\xff chosen"))
    type(video).objects.filter(pk=video.pk).update(poster_file=name)
    data = viewer.get(playback_url(page, video)).json()
    assert data["poster"].startswith(url_prefix()) and data["poster"].endswith(name)


@pytest.mark.django_db
def test_no_chapters_and_no_captions_say_so(tmp_path):
    video = transcoded(tmp_path, "plain", duration=2)
    page, members = granted_page(video, "Plain")
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    data = client.get(playback_url(page, video)).json()
    assert data["captions"] == [] and data["chapters"] is None
    master = m3u8.loads(client.get(hls_url(page, video, "hls-master")).content.decode())
    assert master.media and all(media.type == "AUDIO" for media in master.media)
    assert all(playlist.stream_info.subtitles is None for playlist in master.playlists)


@pytest.mark.django_db
def test_more_captions_and_chapters_cost_no_more_queries(world, django_assert_num_queries):
    page, video, _, _, viewer, _ = world
    set_chapters(video, [(0, "One")])
    # Once per process: the trigger count and the scope pruning (test_query_counts lists the 14).
    viewer.get(reverse("media_access:watch", args=[page.pk, video.pk, "original"]))
    with django_assert_num_queries(14) as one:
        viewer.get(playback_url(page, video))
    for language in ("de", "es", "it"):
        import_caption(video, ARABIC_VTT, "x.vtt", language=language, kind="subtitles", label=language)
    set_chapters(video, [(0, "One"), (1, "Two"), (2, "Three")])
    with django_assert_num_queries(len(one.captured_queries)):
        data = viewer.get(playback_url(page, video)).json()
    assert len(data["captions"]) == 5 and len(data["chapters"]["items"]) == 3


# --- the master playlist and the subtitle playlists --------------------------------------


@pytest.mark.django_db
def test_master_has_the_subtitles_group_and_every_variant_names_it(world):
    page, video, french, arabic, viewer, _ = world
    for query in ("", "?level=hls-90p"):
        response = viewer.get(hls_url(page, video, "hls-master") + query)
        assert response.status_code == 200
        assert response["Cache-Control"] == "private, no-store"
        master = m3u8.loads(response.content.decode(), uri=f"http://testserver{hls_url(page, video, 'hls-master')}")
        subtitles = [media for media in master.media if media.type == "SUBTITLES"]
        assert [(m.group_id, m.name, m.language, m.default, m.autoselect, m.forced) for m in subtitles] == [
            ("subs", "Français", "fr", "YES", "YES", "NO"),
            ("subs", "العربية", "ar", "NO", "YES", "NO"),
        ]
        # Relative URIs resolve to the policy-checked playlist view.
        assert [m.absolute_uri for m in subtitles] == [
            f"http://testserver{hls_url(page, video, f'hls-subs-{french.pk}')}",
            f"http://testserver{hls_url(page, video, f'hls-subs-{arabic.pk}')}",
        ]
        assert "transcribes-spoken-dialog" in subtitles[1].characteristics
        assert master.playlists and all(p.stream_info.subtitles == "subs" for p in master.playlists)
        assert all(p.stream_info.audio for p in master.playlists)  # the audio group is kept
    assert len(master.playlists) == 1  # ?level= still holds a native player to one rung


@pytest.mark.django_db
def test_subtitles_playlist_is_one_signed_vtt_segment(world):
    page, video, french, _, viewer, _ = world
    response = viewer.get(hls_url(page, video, f"hls-subs-{french.pk}"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apple.mpegurl"
    assert response["Cache-Control"] == "private, no-store"
    playlist = m3u8.loads(response.content.decode())
    assert playlist.is_endlist and playlist.playlist_type == "vod"
    assert playlist.target_duration == math.ceil(video.duration)
    [segment] = playlist.segments
    assert segment.duration == pytest.approx(video.duration, abs=0.001)
    assert segment.uri.startswith(url_prefix()) and segment.uri.endswith(french.file.name)
    assert video_prefix(video) in segment.uri


@pytest.mark.django_db
def test_a_caption_of_another_video_is_not_found(world, tmp_path):
    page, video, _, _, viewer, _ = world
    other = make_video(make_test_video(tmp_path / "other.mp4", duration=1, width=160, height=90), title="Other")
    foreign = import_caption(other, ARABIC_VTT, "x.vtt", language="en", kind="subtitles", label="English")
    # Even a row whose file sits in this video's folder: the id is looked up among this video's captions.
    Caption.objects.filter(pk=foreign.pk).update(file=world[2].file.name)
    for name in (f"hls-subs-{foreign.pk}", "hls-subs-999999", "hls-subs-"):
        response = viewer.get(hls_url(page, video, name))
        assert response.status_code == 404, name
        assert b"/stream/" not in response.content


@pytest.mark.django_db
def test_outsiders_and_anonymous_viewers_get_no_caption_urls(world):
    page, video, french, _, _, outsider = world
    for client in (outsider, Client()):
        data = client.get(playback_url(page, video))
        assert data.status_code == 403 and "captions" not in data.json()
        for name in ("hls-master", f"hls-subs-{french.pk}"):
            response = client.get(hls_url(page, video, name))
            assert response.status_code == 403 and b"/stream/" not in response.content
        chapters = client.get(reverse("media_access:chapters", args=[page.pk, video.pk]))
        assert chapters.status_code == 403


# --- the chapters track -------------------------------------------------------------------


@pytest.mark.django_db
def test_chapters_track_is_webvtt_with_escaped_titles(world, tmp_path):
    page, video, _, _, viewer, outsider = world
    url = reverse("media_access:chapters", args=[page.pk, video.pk])
    assert viewer.get(url).status_code == 404  # no chapters yet
    # Rows written directly: the track escapes whatever a title holds.
    Chapter.objects.create(video=video, start=0, title="Intro & <b>bold</b>", sort_order=0)
    Chapter.objects.create(video=video, start=2.25, title="Next --> part\nfaked 00:00:09.000 --> 00:00:10.000", sort_order=1)
    response = viewer.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/vtt; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store"
    assert response.content.decode() == (
        "WEBVTT\n\n"
        "chapter-1\n00:00:00.000 --> 00:00:02.250\nIntro &amp; &lt;b&gt;bold&lt;/b&gt;\n\n"
        f"chapter-2\n00:00:02.250 --> 00:00:0{video.duration:.3f}\n"
        "Next --&gt; part faked 00:00:09.000 --&gt; 00:00:10.000\n"
    )
    assert outsider.get(url).status_code == 403
    elsewhere = make_video(make_test_video(tmp_path / "elsewhere.mp4", duration=1, width=160, height=90))
    other_page = make_video_page(elsewhere, title="Elsewhere")
    assert viewer.get(reverse("media_access:chapters", args=[other_page.pk, video.pk])).status_code == 404


# --- through the real stack ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_subtitles_through_nginx(stack, tmp_path):
    video = transcoded(tmp_path, "stacked")
    page, members = granted_page(video, "Stacked")
    french, arabic = add_captions(video)
    set_chapters(video, [(0, "Début"), (2, "Fin")])
    chosen = video.poster_file.storage.save(poster_name(video.key, "feed01"), ContentFile(b"\xff\xd8\xff chosen"))
    type(video).objects.filter(pk=video.pk).update(poster_file=chosen)
    session = stack_session(make_user("viewer", groups=[members]))

    info = session.get(stack.url(playback_url(page, video)))
    assert info.status_code == 200, info.text
    data = info.json()
    master_src = data["sources"][0]["src"]
    master_response = session.get(stack.url(master_src))
    assert master_response.status_code == 200
    master = m3u8.loads(master_response.text, uri=stack.url(master_src))
    subtitles = {m.language: m for m in master.media if m.type == "SUBTITLES"}
    assert set(subtitles) == {"fr", "ar"}
    assert all(p.stream_info.subtitles == "subs" for p in master.playlists)

    before = stack.log_text("gunicorn-access")
    viewer = {"pv_viewer": session.cookies["pv_viewer"]}
    for caption in (french, arabic):
        playlist_response = session.get(subtitles[caption.language].absolute_uri)
        assert playlist_response.status_code == 200
        [segment] = m3u8.loads(playlist_response.text).segments
        # No session: nginx checks the token (bound to the viewer cookie) alone, and Python never sees it.
        vtt = requests.get(stack.url(segment.uri), cookies=viewer, timeout=10)
        assert vtt.status_code == 200
        assert vtt.content == stored_bytes(caption.file)
        assert vtt.headers["Content-Type"].startswith("text/vtt")
        assert "private" in vtt.headers["Cache-Control"]
        # The same file as the player's track list names; each signs its own expiry second.
        listed = next(c["src"] for c in data["captions"] if c["id"] == caption.pk)
        assert segment.uri.split("/", 4)[4] == listed.split("/", 4)[4]
    assert "Été à Noël" in stored_bytes(french.file).decode() and "🎬" in stored_bytes(french.file).decode()
    # The editor's poster, signed like the rest and sent by nginx.
    poster = requests.get(stack.url(data["poster"]), cookies=viewer, timeout=10)
    assert poster.status_code == 200 and poster.content == b"\xff\xd8\xff chosen"
    assert "/stream/" not in (stack.root / "gunicorn-access.log").read_text()[len(before):]
    chapters = session.get(stack.url(data["chapters"]["src"]))
    assert chapters.status_code == 200 and chapters.headers["Content-Type"] == "text/vtt; charset=utf-8"
    assert chapters.text.startswith("WEBVTT\n\nchapter-1\n00:00:00.000 --> 00:00:02.000\nDébut\n")

    # A token for this video opens nothing once it is forged or expired.
    src = data["captions"][0]["src"]
    _, _, token, expires, rest = src.split("/", 4)
    forged = f"/{url_prefix().strip('/')}/{'A' * 22}/{expires}/{rest}"
    expired = f"/{url_prefix().strip('/')}/{token}/{int(time.time()) - 10}/{rest}"
    for url in (forged, expired):
        response = requests.get(stack.url(url), cookies=viewer, timeout=10)
        assert response.status_code == 403 and response.content == b""

    # An outsider gets neither the playlists nor any URL to the caption file.
    outsider = stack_session(make_user("outsider"))
    assert outsider.get(stack.url(playback_url(page, video))).status_code == 403
    for uri in [master_src] + [m.absolute_uri for m in subtitles.values()]:
        response = outsider.get(uri if uri.startswith("http") else stack.url(uri))
        assert response.status_code == 403 and "/stream/" not in response.text
    assert outsider.get(stack.url(data["chapters"]["src"])).status_code == 403
    assert Caption.objects.filter(video=video).count() == 2
