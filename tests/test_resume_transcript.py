"""Resume (the viewer's own saved position, posted with the CSRF token the
playback JSON gives) and the page transcript (only for viewers who may watch)."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from wagtail.models import PageViewRestriction

from media_access import published
from media_access.models import PlaybackPosition, ViewerGrant
from private_video.captions import import_caption

from .helpers import make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db

# media_access's own refusal (a CSRF failure is Django's HTML page instead).
POLICY_REFUSAL = b"You do not have access to this video.\n"

CAPTION_SRT = (
    "1\n00:00:00,500 --> 00:00:02,000\nBonjour à tous 👋\n\n"
    "2\n00:00:02,000 --> 00:00:03,500\n&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt; قف\n\n"
    "3\n00:00:03,500 --> 00:00:04,000\n再见\n"
).encode()


@pytest.fixture
def world(sample_video):
    published.forget()
    video = make_video(sample_video, title="Resumable")
    page = make_video_page(video, title="Resumable page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    other = make_user("other", groups=[members])
    return page, video, viewer, other


def signed_in(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def playback(client, page, video):
    response = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 200, response.content
    return response.json()


def post_position(client, url, token, position, **extra):
    return client.post(url, {"position": position, "csrfmiddlewaretoken": token, **extra})


def test_resume_round_trip_with_the_json_csrf_token(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    resume = playback(client, page, video)["resume"]
    assert resume["position"] is None
    assert resume["url"] == reverse("media_access:playback_position", args=[page.pk, video.pk])

    response = post_position(client, resume["url"], resume["csrf_token"], "2.75")
    assert response.status_code == 204 and response.content == b""
    assert response["Cache-Control"] == "private, no-store"
    assert playback(client, page, video)["resume"]["position"] == 2.75
    assert PlaybackPosition.objects.get(user=viewer, video=video).position == 2.75


@pytest.mark.parametrize("sent, kept", [("-3", 0.0), ("1e9", "duration"), ("3.5", 3.5)])
def test_position_is_clamped_to_the_video(world, sent, kept):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    resume = playback(client, page, video)["resume"]
    assert post_position(client, resume["url"], resume["csrf_token"], sent).status_code == 204
    expected = video.duration if kept == "duration" else kept
    assert PlaybackPosition.objects.get(user=viewer, video=video).position == pytest.approx(expected)


@pytest.mark.parametrize("sent", ["nan", "inf", "", "7 s", "0x10"])
def test_a_position_that_is_not_a_number_is_refused_and_nothing_stored(world, sent):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    resume = playback(client, page, video)["resume"]
    response = post_position(client, resume["url"], resume["csrf_token"], sent)
    assert response.status_code == 400 and b"number of seconds" in response.content
    assert not PlaybackPosition.objects.exists()


def test_without_the_csrf_token_nothing_is_stored(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    url = playback(client, page, video)["resume"]["url"]
    for response in (client.post(url, {"position": "3"}), post_position(client, url, "x" * 64, "3")):
        assert response.status_code == 403 and b"CSRF" in response.content
    assert not PlaybackPosition.objects.exists()


def test_one_viewer_cannot_read_or_write_anothers_position(world):
    page, video, viewer, other = world
    mine = signed_in(viewer)
    resume = playback(mine, page, video)["resume"]
    assert post_position(mine, resume["url"], resume["csrf_token"], "3").status_code == 204

    theirs = signed_in(other)
    their_resume = playback(theirs, page, video)["resume"]
    assert their_resume["position"] is None  # not the viewer's 3.0
    # Naming the viewer in the form changes nothing: the row is the requester's.
    response = post_position(
        theirs, their_resume["url"], their_resume["csrf_token"], "1", user=str(viewer.pk), user_id=str(viewer.pk)
    )
    assert response.status_code == 204
    assert PlaybackPosition.objects.get(user=viewer, video=video).position == 3.0
    assert PlaybackPosition.objects.get(user=other, video=video).position == 1.0
    assert playback(mine, page, video)["resume"]["position"] == 3.0


def test_anonymous_outsider_and_wrong_page_store_nothing(world, sample_video):
    page, video, viewer, _ = world
    url = reverse("media_access:playback_position", args=[page.pk, video.pk])

    # Anonymous, with a valid CSRF token (so the view itself refuses), on a
    # page anyone may watch: no account, no position.
    open_video = make_video(sample_video, title="Open")
    open_page = make_video_page(open_video, title="Open page")
    anonymous = Client(enforce_csrf_checks=True)
    info = anonymous.get(reverse("media_access:playback", args=[open_page.pk, open_video.pk])).json()
    assert info["allowed"] and info["resume"] is None
    # A well-formed CSRF secret, as cookie and form field: CSRF passes, the view decides.
    token = "a" * 32
    anonymous.cookies["csrftoken"] = token
    open_url = reverse("media_access:playback_position", args=[open_page.pk, open_video.pk])
    for target in (open_url, url):
        refused = post_position(anonymous, target, token, "2")
        assert refused.status_code == 403 and refused.content == POLICY_REFUSAL  # not the CSRF failure page

    # Signed in without a grant: the policy says no.
    outsider = signed_in(make_user("outsider"))
    outsider.cookies["csrftoken"] = token
    refused = post_position(outsider, url, token, "2")
    assert refused.status_code == 403 and refused.content == POLICY_REFUSAL
    # The viewer, with the video on a page that does not hold it: not found.
    client = signed_in(viewer)
    resume = playback(client, page, video)["resume"]
    elsewhere = reverse("media_access:playback_position", args=[open_page.pk, video.pk])
    assert post_position(client, elsewhere, resume["csrf_token"], "2").status_code == 404
    assert not PlaybackPosition.objects.exists()

    # GET is not a way in either.
    assert client.get(url).status_code == 405


def test_revoked_viewer_can_no_longer_write(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    resume = playback(client, page, video)["resume"]
    viewer.groups.clear()
    refused = post_position(client, resume["url"], resume["csrf_token"], "2")
    assert refused.status_code == 403 and refused.content == POLICY_REFUSAL
    assert not PlaybackPosition.objects.exists()


# --- the transcript ----------------------------------------------------------------------


def test_transcript_for_a_viewer_who_may_watch(world):
    page, video, viewer, _ = world
    import_caption(video, b"WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nOther track\n", "en.vtt",
                   language="en", kind="subtitles", label="English")
    import_caption(video, CAPTION_SRT, "fr.srt", language="fr", kind="subtitles", label="Français",
                   is_default=True)
    client = Client()
    client.force_login(viewer)
    html = client.get(page.url).content.decode()
    assert '<details class="video-transcript"' in html
    assert "Transcript (Français)" in html and 'lang="fr"' in html
    # The default caption's cues, in order, with m:ss timestamps and their start for seeking.
    assert html.index("Bonjour à tous 👋") < html.index("再见")
    assert '<li class="video-transcript__cue" data-start="0.500"><span class="video-transcript__time">0:00</span>' in html
    assert 'data-start="3.500"><span class="video-transcript__time">0:03</span> <span class="video-transcript__text">再见' in html
    assert "Other track" not in html
    # Cue text is text: a caption cannot close the <details> or run a script.
    assert "<script>alert(1)" not in html
    assert "&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt; قف" in html


def test_no_transcript_for_anyone_else(world):
    page, video, viewer, _ = world
    import_caption(video, CAPTION_SRT, "fr.srt", language="fr", kind="subtitles", label="Français")
    outsider = Client()
    outsider.force_login(make_user("outsider"))
    for client in (outsider, Client()):
        html = client.get(page.url).content.decode()
        assert "video-transcript" not in html and "Bonjour" not in html

    # Behind Wagtail's page privacy too: a login page, never the cues.
    PageViewRestriction.objects.create(page=page, restriction_type=PageViewRestriction.LOGIN)
    response = Client().get(page.url)
    assert "Bonjour" not in response.content.decode()


def test_no_captions_no_transcript(world):
    page, video, viewer, _ = world
    client = Client()
    client.force_login(viewer)
    html = client.get(page.url).content.decode()
    assert "video-player" in html and "video-transcript" not in html
