"""media_access's seams for a site: the ``video_served`` signal (the playback
log is one of its receivers), the ``check_video_access`` hook (it can refuse
what the policy allowed, never allow what it refused), and published
playlists and storyboard cues read from storage once, by storage name."""

import pytest
from django.contrib.auth.models import Group
from django.core.files.storage import storages
from django.test import Client, override_settings
from django.urls import reverse
from wagtail import hooks

from media_access import decisions, published
from media_access.models import PlaybackLogEntry, ViewerGrant
from media_access.policy import Outcome
from media_access.signals import video_served
from transcoding.profiles import Rung

from .helpers import make_user, make_video, make_video_page
from .media_cache import transcoded_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(sample_video):
    decisions.cache().clear()
    members = Group.objects.create(name="Members")
    viewer = make_user("viewer", groups=[members])
    video = make_video(sample_video, title="Seams")
    page = make_video_page(video, title="Seams page")
    ViewerGrant.objects.create(page=page, group=members)
    client = Client()
    client.force_login(viewer)
    return page, video, viewer, client


def watch_url(page, video, name="original"):
    return reverse("media_access:watch", args=[page.pk, video.pk, name])


def test_a_receiver_sees_the_served_video(world):
    page, video, viewer, client = world
    seen = []

    def receiver(sender, **kwargs):
        seen.append((sender, kwargs))

    video_served.connect(receiver)
    try:
        response = client.get(watch_url(page, video))
        outsider = Client()
        outsider.force_login(make_user("outsider"))
        refused = outsider.get(watch_url(page, video))
    finally:
        video_served.disconnect(receiver)
    assert response.status_code == 200 and response.has_header("X-Accel-Redirect")
    assert refused.status_code == 403
    # Once, for the served request only; a refusal serves nothing.
    assert len(seen) == 1
    sender, kwargs = seen[0]
    assert sender is type(video)
    assert kwargs["video"].pk == video.pk and kwargs["page"].pk == page.pk
    assert kwargs["rendition"] == "original"
    assert kwargs["user"] == viewer and kwargs["request"].path == watch_url(page, video)
    assert kwargs["decision"].allowed


def test_the_playback_log_is_a_receiver(world):
    page, video, viewer, client = world
    assert video_served.disconnect(dispatch_uid="media_access_playback_log")
    try:
        assert client.get(watch_url(page, video)).status_code == 200
        assert not PlaybackLogEntry.objects.exists()
    finally:
        from media_access.access_log import log_served

        video_served.connect(log_served, dispatch_uid="media_access_playback_log")
    other = Client()
    other.force_login(viewer)
    assert other.get(watch_url(page, video)).status_code == 200
    entry = PlaybackLogEntry.objects.get()
    assert (entry.video_id, entry.page_id, entry.user_id, entry.allowed) == (video.pk, page.pk, viewer.pk, True)


def refuse(request, page, video):
    return Outcome.FORBIDDEN


def test_a_refusing_hook_means_403_and_no_bytes(world):
    page, video, viewer, client = world
    # Remembered first: the hook must still be asked on the next request.
    assert client.get(watch_url(page, video)).has_header("X-Accel-Redirect")
    with hooks.register_temporarily("check_video_access", refuse):
        response = client.get(watch_url(page, video), HTTP_RANGE="bytes=0-99")
        download = client.get(reverse("media_access:download", args=[page.pk, video.pk, "original"]))
        playback = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
        with override_settings(MEDIA_ACCESS_SERVE_MODE="django"):
            streamed = client.get(watch_url(page, video))
    for refused in (response, download, streamed):
        assert refused.status_code == 403
        assert not refused.has_header("X-Accel-Redirect")
        assert not refused.streaming and refused.content == b"You do not have access to this video.\n"
    assert playback.status_code == 403 and "token" not in playback.json()
    entry = PlaybackLogEntry.objects.filter(allowed=False).first()
    assert entry is not None and entry.reason == "check_video_access"
    # Without the hook, served again.
    assert client.get(watch_url(page, video)).has_header("X-Accel-Redirect")


def test_a_hook_cannot_grant_what_the_policy_refused(world):
    page, video, viewer, client = world
    outsider = Client()
    outsider.force_login(make_user("outsider"))
    with hooks.register_temporarily("check_video_access", lambda request, page, video: Outcome.ALLOWED):
        response = outsider.get(watch_url(page, video))
        anonymous = Client().get(watch_url(page, video))
    assert response.status_code == 403 and not response.has_header("X-Accel-Redirect")
    assert anonymous.status_code == 302 and not anonymous.has_header("X-Accel-Redirect")


def test_a_hook_returning_none_changes_nothing(world):
    page, video, viewer, client = world
    calls = []

    def no_say(request, page, video):
        calls.append((request.user, page.pk, video.pk))

    without = client.get(watch_url(page, video))
    with hooks.register_temporarily("check_video_access", no_say):
        first = client.get(watch_url(page, video))
        second = client.get(watch_url(page, video))
    for response in (first, second):
        assert response.status_code == 200
        assert response["X-Accel-Redirect"] == without["X-Accel-Redirect"]
        assert response["Content-Disposition"] == without["Content-Disposition"]
    # Asked on every request (nothing is remembered past a hook), with the viewer's objects.
    assert calls == [(viewer, page.pk, video.pk)] * 2


def test_a_hook_answering_nonsense_serves_nothing(world):
    page, video, viewer, client = world
    client.raise_request_exception = False
    with hooks.register_temporarily("check_video_access", lambda request, page, video: "no"):
        response = client.get(watch_url(page, video))
    assert response.status_code == 500 and not response.has_header("X-Accel-Redirect")


# --- published playlists and cues: read once ---------------------------------------


@pytest.fixture
def transcoded(tmp_path):
    # Transcoded for real once per run, then copies (tests/media_cache.py).
    video = transcoded_video(tmp_path / "clip.mp4", title="Cached", clip=dict(duration=3, width=320, height=180),
                             settings=dict(TRANSCODING_LADDER=[Rung(90, 150)]))
    page = make_video_page(video)
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    client = Client()
    client.force_login(make_user("viewer", groups=[members]))
    return page, video, client


@pytest.fixture
def opens(monkeypatch):
    """The names the private storage opens, however it is reached."""
    opened = []
    storage_class = type(storages["private"])
    original = storage_class.open

    def counting_open(self, name, mode="rb"):
        opened.append(name)
        return original(self, name, mode)

    monkeypatch.setattr(storage_class, "open", counting_open)
    published.forget()
    yield opened
    published.forget()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_playlists_and_cues_are_read_from_storage_once(transcoded, opens):
    page, video, client = transcoded
    renditions = {r.kind: r for r in video.renditions.all()}
    Kind = type(video.renditions.first()).Kind
    urls = [
        reverse("media_access:playback", args=[page.pk, video.pk]),
        reverse("media_access:hls_playlist", args=[page.pk, video.pk, renditions[Kind.HLS_MASTER].name]),
        reverse("media_access:hls_playlist", args=[page.pk, video.pk, renditions[Kind.HLS_VIDEO].name]),
    ]
    first = [client.get(url) for url in urls]
    assert [response.status_code for response in first] == [200, 200, 200]
    assert first[0].json()["storyboard"]["cues"]
    read_once = sorted(opens)
    assert read_once == sorted(
        renditions[kind].file.name for kind in (Kind.STORYBOARD_VTT, Kind.HLS_MASTER, Kind.HLS_VIDEO)
    )
    second = [client.get(url) for url in urls]
    assert sorted(opens) == read_once  # nothing more read from storage
    # The same cues and sprite file (each answer signs the sprite's URL for its own second).
    again, before = second[0].json()["storyboard"], first[0].json()["storyboard"]
    assert again["cues"] == before["cues"]
    assert again["url"].split("/", 4)[4] == before["url"].split("/", 4)[4]
    assert second[1].content == first[1].content
    # The media playlist's URIs carry a fresh token each time, from the same text.
    assert second[2].content.count(b"\n") == first[2].content.count(b"\n")
