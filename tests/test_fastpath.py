"""The player's endpoints on the remembered-decision fast path (views.playback).

The playback JSON, the playlists (master, media, subtitles), the chapters
track, the position and the watch beacon remember an allowed decision as
/watch/ does (decisions.py states the invariant). Here: a repeat request
costs at most two statements (the decision scopes, plus the signed-in
viewer's resume position for the JSON, or the viewing row for a beacon) and
never touches the session table; and every way of taking access away ends
the remembered answer of every kind on the very next request.

Statements are counted from the database driver on SQLite (the scope read
goes through the driver's own cursor, which Django does not count) and
through Django on PostgreSQL; transaction control (savepoints) is left out.
"""

import json
from contextlib import contextmanager

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.urls import reverse

from media_access import decisions, hls, published
from media_access.models import PlaybackPosition, Viewing, ViewerGrant
from private_video.captions import import_caption, set_chapters

from .driver_statements import driver_statements
from .helpers import make_user
from .test_captions_delivery import ARABIC_VTT, add_captions, granted_page, transcoded

# make test-postgres runs this module on PostgreSQL too.
pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "--")


@contextmanager
def statements():
    """Every statement run meanwhile, transaction control left out."""
    with driver_statements(connection) as seen:
        yield seen
    seen[:] = [sql for sql in seen if not sql.lstrip().upper().startswith(TRANSACTION_CONTROL)]


def unsigned(tracks):
    """Caption entries with their signed URL cut to the file it names."""
    return [{**track, "src": track["src"].split("/", 4)[4]} for track in tracks]


@pytest.fixture
def world(tmp_path):
    published.forget()
    decisions.cache().clear()
    hls.forget_shared_facts()
    video = transcoded(tmp_path, duration=2)
    page, members = granted_page(video)
    # A second grant keeps the page restricted when the group's goes.
    ViewerGrant.objects.create(page=page, user=make_user("other"))
    french, _ = add_captions(video)
    set_chapters(video, [(0, "One"), (1, "Two")])
    user = make_user("viewer", groups=[members])
    viewer = Client()
    viewer.force_login(user)
    return page, video, members, user, viewer, french


def url(kind, page, video, caption=None):
    args = [page.pk, video.pk]
    if kind == "json":
        return reverse("media_access:playback", args=args)
    if kind == "master":
        return reverse("media_access:hls_playlist", args=[*args, "hls-master"])
    if kind == "media":
        return reverse("media_access:hls_playlist", args=[*args, "hls-90p"])
    if kind == "subtitles":
        return reverse("media_access:hls_playlist", args=[*args, f"hls-subs-{caption.pk}"])
    if kind == "chapters":
        return reverse("media_access:chapters", args=args)
    if kind == "position":
        return reverse("media_access:playback_position", args=args)
    if kind == "beacon":
        return reverse("media_access:watch_beacon", args=args)
    raise AssertionError(kind)


def ask(client, kind, page, video, caption=None, played=1.0):
    if kind == "position":
        return client.post(url(kind, page, video), {"position": "1.5"})
    if kind == "beacon":
        body = {"session": "fastpath-1", "ranges": [[0, played]], "duration": video.duration}
        return client.post(url(kind, page, video), json.dumps(body), content_type="application/json")
    return client.get(url(kind, page, video, caption))


KINDS = ("json", "master", "media", "subtitles", "chapters", "position", "beacon")
OK = {"json": 200, "master": 200, "media": 200, "subtitles": 200, "chapters": 200, "position": 204, "beacon": 204}


def warm(viewer, page, video, caption):
    """Every kind asked twice: the second answer comes from memory (≤ 2 statements)."""
    for kind in KINDS:
        assert ask(viewer, kind, page, video, caption).status_code == OK[kind], kind
        with statements() as seen:
            response = ask(viewer, kind, page, video, caption)
        assert response.status_code == OK[kind], kind
        assert len(seen) <= 2, (kind, seen)


def watch_once(client, page, video):
    """One allowed /watch/ request of the player's progressive file: the
    per-process work (the trigger count, the scope pruning) and the
    playback log's record are done before anything is counted."""
    from media_access.files import best_playback_name

    response = client.get(reverse("media_access:watch", args=[page.pk, video.pk, best_playback_name(video)]))
    assert response.status_code == 200, response.status_code


def test_a_repeat_request_of_every_kind_costs_at_most_two_statements_and_no_session_write(world):
    page, video, _, user, viewer, french = world
    # Per process, not per request: the trigger count and the scope pruning.
    watch_once(viewer, page, video)
    for kind in KINDS:
        first = ask(viewer, kind, page, video, french)
        assert first.status_code == OK[kind], kind
        with statements() as seen:
            again = ask(viewer, kind, page, video, french, played=1.0)
        assert again.status_code == OK[kind], kind
        assert len(seen) <= 2, (kind, seen)
        assert any("private_video_access_decisionscope" in sql for sql in seen), (kind, seen)
        assert not any("django_session" in sql or "auth_user" in sql for sql in seen), (kind, seen)
        if kind == "json":
            # The signed-in viewer's own position is still read, and the answer is a fresh one.
            assert any("playbackposition" in sql for sql in seen), seen
            assert again.json()["resume"]["position"] is None
            # The same tracks; each answer signs its own expiry second (and token).
            assert unsigned(again.json()["captions"]) == unsigned(first.json()["captions"])
            assert again.json()["chapters"] == first.json()["chapters"]
        elif kind != "beacon" and kind != "position":
            assert again.content == first.content or kind in ("media", "subtitles"), kind
    # What the remembered answers wrote is the viewer's own.
    assert PlaybackPosition.objects.get(user=user, video=video).position == 1.5
    viewing = Viewing.objects.get(video=video)
    assert viewing.user == user and viewing.watched == 1


def test_one_kind_answers_from_anothers_entry(world):
    page, video, _, _, viewer, french = world
    watch_once(viewer, page, video)
    assert ask(viewer, "json", page, video).status_code == 200
    # The master was never asked, but the JSON's entry is for the same session, page and video.
    with statements() as seen:
        response = ask(viewer, "master", page, video)
    assert response.status_code == 200 and len(seen) <= 2, seen


def test_a_new_caption_or_chapter_shows_on_the_next_remembered_answer(world):
    page, video, _, _, viewer, french = world
    for kind in ("json", "master", "chapters"):
        ask(viewer, kind, page, video)
        ask(viewer, kind, page, video)
    import_caption(video, ARABIC_VTT, "de.vtt", language="de", kind="subtitles", label="Deutsch")
    set_chapters(video, [(0, "One"), (1, "Two"), (1.5, "Three")])
    data = ask(viewer, "json", page, video).json()
    assert [c["srclang"] for c in data["captions"]] == ["fr", "ar", "de"]
    assert [c["title"] for c in data["chapters"]["items"]] == ["One", "Two", "Three"]
    assert 'LANGUAGE="de"' in ask(viewer, "master", page, video).content.decode()
    assert "Three" in ask(viewer, "chapters", page, video).content.decode()


def test_another_viewers_first_request_reuses_the_videos_rows_until_they_change(world):
    page, video, members, _, viewer, _ = world
    watch_once(viewer, page, video)
    assert ask(viewer, "json", page, video).status_code == 200

    names = iter(("newcomer1", "newcomer2"))

    def newcomer():
        client = Client()
        client.force_login(make_user(next(names), groups=[members]))
        return client

    second = newcomer()
    with statements() as seen:
        data = ask(second, "json", page, video).json()
    # Its own decision (the policy runs for this session), not the video's renditions, captions or chapters again.
    assert data["allowed"] and not any(
        table in sql for sql in seen for table in ("rendition", "private_video_caption", "private_video_chapter")
    ), seen
    import_caption(video, ARABIC_VTT, "de.vtt", language="de", kind="subtitles", label="Deutsch")
    data = ask(newcomer(), "json", page, video).json()
    assert [c["srclang"] for c in data["captions"]] == ["fr", "ar", "de"]


def refused(response, kind, status):
    assert response.status_code == status, (kind, response.status_code)
    if kind == "json":
        assert response.json()["allowed"] is False and "token" not in response.json()
    else:
        assert b"/stream/" not in response.content and b"#EXTM3U" not in response.content


def revoke_grant(page, video, members, user, viewer):
    ViewerGrant.objects.filter(page=page, group=members).delete()
    return 403


def remove_from_group(page, video, members, user, viewer):
    user.groups.remove(members)
    return 403


def unpublish(page, video, members, user, viewer):
    page.unpublish()
    return 404


def log_out_elsewhere(page, video, members, user, viewer):
    # logout() deletes the session row; this browser still sends the old cookie.
    Session.objects.filter(session_key=viewer.cookies["sessionid"].value).delete()
    return 403


@pytest.mark.parametrize("revoke", [revoke_grant, remove_from_group, unpublish, log_out_elsewhere])
def test_a_revocation_ends_every_remembered_kind_on_the_next_request(world, revoke):
    page, video, members, user, viewer, french = world
    warm(viewer, page, video, french)
    status = revoke(page, video, members, user, viewer)
    for kind in KINDS:
        refused(ask(viewer, kind, page, video, french), kind, status)
    assert Viewing.objects.filter(video=video).get().watched == 1  # the refused beacon added nothing


def test_each_kind_alone_is_refused_on_the_next_request(world):
    """Not helped by another kind's refusal first: each kind warmed, access
    taken away, then only that kind asked."""
    page, video, members, user, viewer, french = world
    for kind in KINDS:
        grant = ViewerGrant.objects.create(page=page, user=user)
        ask(viewer, kind, page, video, french)
        with statements() as seen:
            assert ask(viewer, kind, page, video, french).status_code == OK[kind]
        assert len(seen) <= 2, (kind, seen)
        user.groups.remove(members)
        grant.delete()
        refused(ask(viewer, kind, page, video, french), kind, 403)
        user.groups.add(members)


def test_an_anonymous_viewer_of_an_open_page_is_remembered_without_a_session(tmp_path):
    from cms.models import VideoPage  # noqa: F401  (the site's page type, made by make_video_page)

    from .helpers import make_video_page

    published.forget()
    decisions.cache().clear()
    video = transcoded(tmp_path, "open", duration=2)
    page = make_video_page(video, title="Open")
    visitor = Client()
    watch_once(visitor, page, video)
    assert ask(visitor, "json", page, video).json()["resume"] is None
    with statements() as seen:
        data = ask(visitor, "json", page, video).json()
    assert data["allowed"] is True and data["resume"] is None and len(seen) <= 1, seen
    page.unpublish()
    assert ask(visitor, "json", page, video).status_code == 404
