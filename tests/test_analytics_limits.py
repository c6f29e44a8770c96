"""Watch analytics' bounds (hostile review 8): numbers past float's range,
the new viewings one viewer may start an hour, videos longer than the
bitmap, a report that does not grow in queries, and the playback log's
anonymous session told apart by the viewer cookie, never stored as an address."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from media_access import analytics, published
from media_access.access_log import forget_recent, session_id
from media_access.models import PlaybackLogEntry, ViewerGrant, Viewing
from media_access.views.analytics import BadBeacon, parse_beacon
from private_video import get_video_model

from .helpers import make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(sample_video):
    published.forget()
    video = make_video(sample_video, title="Compliance training")
    page = make_video_page(video, title="Training page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer


def beacon_client(viewer, page, video):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(viewer)
    response = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 200
    return client, response.json()["analytics"]


def post(client, info, session, ranges, duration):
    body = json.dumps({"session": session, "ranges": ranges, "duration": duration, "csrf": info["csrf_token"]})
    return client.post(info["url"], body, content_type="text/plain")


def set_duration(video, seconds):
    get_video_model().objects.filter(pk=video.pk).update(duration=seconds)
    video.refresh_from_db()


# ---- numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1" + "0" * 400, "-" + "1" + "0" * 400, "1" + "0" * 5000])
def test_an_integer_past_floats_range_is_a_400(world, text):
    page, video, viewer = world
    client, info = beacon_client(viewer, page, video)
    body = '{"session": "abcdefgh12", "ranges": [[%s, 1]], "duration": %r, "csrf": "%s"}' % (
        text, video.duration, info["csrf_token"])
    # (The header too: past 4300 digits json.loads refuses the body, token and all.)
    response = client.post(info["url"], body, content_type="text/plain", HTTP_X_CSRFTOKEN=info["csrf_token"])
    assert response.status_code == 400 and response.content.strip()
    assert not Viewing.objects.exists()


def test_parse_beacon_refuses_huge_integers_with_a_clear_message():
    with pytest.raises(BadBeacon, match="finite number"):
        parse_beacon({"session": "abcdefgh12", "ranges": [], "duration": 10 ** 400}, 60.0)
    with pytest.raises(BadBeacon, match="finite number"):
        parse_beacon({"session": "abcdefgh12", "ranges": [[0, 10 ** 400]], "duration": 60.0}, 60.0)


# ---- long videos ---------------------------------------------------------------------


def test_a_long_video_counts_its_first_ten_hours(world):
    page, video, viewer = world
    eleven_hours = 11 * 3600.0
    set_duration(video, eleven_hours)
    client, info = beacon_client(viewer, page, video)
    assert post(client, info, "longplay01", [[0, 60], [10 * 3600 - 10, 10 * 3600 + 600]], eleven_hours).status_code == 204
    viewing = Viewing.objects.get()
    assert len(viewing.seconds) == analytics.MAX_SECONDS // 8  # the bitmap stays bounded
    assert viewing.watched == 70 and viewing.duration == eleven_hours
    stats = analytics.video_stats(video)
    assert stats.seconds == analytics.MAX_SECONDS and stats.counts_part and stats.duration == eleven_hours
    assert len(stats.curve) == analytics.MAX_SECONDS and stats.curve[0] == 1 and stats.curve[-1] == 1
    assert stats.viewers[0].seconds == 70
    # The report says it covers part of the video, and its chart ends there.
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("boss", "boss@example.com", "x"))
    report = admin.get(reverse("media_access_reports:video_analytics", args=[video.pk])).content.decode()
    assert "data-counts-part" in report and f"data-chart-seconds>{analytics.MAX_SECONDS} s<" in report


def test_without_a_probed_duration_only_a_plausible_one_is_taken():
    parse_beacon({"session": "abcdefgh12", "ranges": [[0, 60]], "duration": 20 * 3600.0}, None)
    with pytest.raises(BadBeacon):
        parse_beacon({"session": "abcdefgh12", "ranges": [[0, 60]], "duration": 1e12}, None)
    with pytest.raises(BadBeacon):  # the probed one still decides
        parse_beacon({"session": "abcdefgh12", "ranges": [[0, 60]], "duration": 11 * 3600.0}, 4.0)


# ---- viewings per viewer -------------------------------------------------------------


def test_new_viewings_beyond_the_hourly_cap_merge_into_the_latest(world, settings):
    settings.MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR = 3
    page, video, viewer = world
    set_duration(video, 10.0)
    client, info = beacon_client(viewer, page, video)
    for i in range(3):
        assert post(client, info, f"session{i:04d}", [[i, i + 1]], 10.0).status_code == 204
    assert Viewing.objects.count() == 3
    # Over the cap: answered as usual (a real player sees nothing), no new row,
    # and the seconds still count for this viewer.
    assert post(client, info, "session0003", [[5, 8]], 10.0).status_code == 204
    assert post(client, info, "session0004", [[9, 10]], 10.0).status_code == 204
    assert Viewing.objects.count() == 3
    latest = Viewing.objects.get(session="session0002")
    assert analytics.bits_to_ranges(analytics.from_bytes(latest.seconds)) == [(2, 3), (5, 8), (9, 10)]
    # An existing viewing still merges into itself.
    assert post(client, info, "session0000", [[4, 5]], 10.0).status_code == 204
    first = Viewing.objects.get(session="session0000")
    assert analytics.bits_to_ranges(analytics.from_bytes(first.seconds)) == [(0, 1), (4, 5)]
    stats = analytics.video_stats(video)
    assert stats.viewings == 3 and stats.viewers[0].seconds == 8


def test_the_cap_counts_the_last_hour_only(world, settings):
    settings.MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR = 2
    page, video, viewer = world
    args = {"video": video, "page": page, "user": viewer, "viewer": "v" * 64, "duration": 4.0}
    then = timezone.now() - timedelta(hours=2)
    analytics.record(session="old00001", ranges=[(0, 1)], now=then, **args)
    analytics.record(session="old00002", ranges=[(0, 1)], now=then, **args)
    analytics.record(session="new00001", ranges=[(0, 1)], **args)
    analytics.record(session="new00002", ranges=[(0, 1)], **args)
    analytics.record(session="new00003", ranges=[(1, 2)], **args)
    assert sorted(Viewing.objects.values_list("session", flat=True)) == [
        "new00001", "new00002", "old00001", "old00002"]
    # Another viewer has their own allowance.
    analytics.record(**dict(args, viewer="w" * 64), session="new00001", ranges=[(0, 1)])
    assert Viewing.objects.count() == 5


def test_an_over_cap_beacon_is_one_read_and_at_most_one_write(world, settings):
    settings.MEDIA_ACCESS_ANALYTICS_VIEWINGS_PER_HOUR = 1
    page, video, viewer = world
    args = {"video": video, "page": page, "user": viewer, "viewer": "v" * 64, "duration": 4.0}
    analytics.record(session="first001", ranges=[(0, 1)], **args)

    def statements(session, ranges):
        with CaptureQueriesContext(connection) as queries:
            analytics.record(session=session, ranges=ranges, **args)
        return [q["sql"].split()[0].upper() for q in queries.captured_queries
                if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]

    assert statements("second01", [(2, 3)]) == ["SELECT", "UPDATE"]
    assert statements("third001", [(2, 3)]) == ["SELECT"]
    assert Viewing.objects.count() == 1


# ---- the report ------------------------------------------------------------------------


def test_the_report_queries_do_not_grow_with_viewers(world):
    page, video, _viewer = world
    set_duration(video, 3600.0)
    users = [make_user(f"u{i}") for i in range(12)]
    for number, user in enumerate(users):
        for session in range(3):
            analytics.record(video=video, page=page, user=user, viewer=f"{number:064d}",
                             session=f"s{session:07d}", ranges=[(session * 100, session * 100 + 50)],
                             duration=3600.0)
    with CaptureQueriesContext(connection) as queries:
        stats = analytics.video_stats(video)
        labels = [row.label for row in stats.viewers]
    assert len(queries.captured_queries) <= 3
    assert stats.viewings == 36 and stats.unique_viewers == 12 and sorted(labels) == sorted(u.username for u in users)
    assert stats.total_watch_seconds == 36 * 50 and stats.peak == 12 and stats.curve[100] == 12
    assert stats.viewings_curve[0] == 12 and stats.curve[50] == 0


# ---- the playback log -------------------------------------------------------------------


def test_an_anonymous_session_is_the_viewer_cookie_and_never_a_plain_hash_of_the_address(sample_video):
    from django.test import RequestFactory

    factory = RequestFactory()
    agent = "Mozilla/5.0"
    one = factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT=agent, HTTP_COOKIE="pv_viewer=" + "a" * 32)
    two = factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT=agent, HTTP_COOKIE="pv_viewer=" + "b" * 32)
    bare = factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT=agent)
    assert session_id(one) != session_id(two)
    assert session_id(one) == session_id(factory.get("/", REMOTE_ADDR="10.0.0.9", HTTP_USER_AGENT="other",
                                                      HTTP_COOKIE="pv_viewer=" + "a" * 32))
    # Without a cookie: the address and agent, keyed (not a plain sha256 anyone can try addresses against).
    assert session_id(bare) == session_id(factory.get("/", REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT=agent))
    assert session_id(bare) != hashlib.sha256(f"a:127.0.0.1:{agent}".encode()).hexdigest()[:40]
    assert "127.0.0.1" not in session_id(bare)


def test_one_anonymous_browser_is_still_one_playback_session(sample_video):
    published.forget()
    forget_recent()
    video = make_video(sample_video, title="Open clip")
    page = make_video_page(video, title="Open page")
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT="Mozilla/5.0")
    assert client.get(reverse("media_access:playback", args=[page.pk, video.pk])).status_code == 200
    for _ in range(3):
        assert client.get(url).status_code == 200
    assert PlaybackLogEntry.objects.filter(video=video, allowed=True).count() == 1


def test_playback_log_entries_past_their_retention_are_deleted(world, settings):
    """The playback log is kept PLAYBACK_LOG_RETENTION_DAYS (365), like the
    watch analytics: by the command the housekeeping timer runs, or the task."""
    import io

    from django.core.management import call_command

    from media_access.tasks import delete_playback_log_task

    page, video, _ = world
    now = timezone.now()
    ages = {"old": 366, "recent": 364, "month": 31, "today": 0}
    rows = {name: PlaybackLogEntry.objects.create(
        session=name, page=page, video=video, allowed=True, started_at=now - timedelta(days=days))
        for name, days in ages.items()}
    out = io.StringIO()
    call_command("delete_playback_log", stdout=out)
    assert "Deleted 1 playback-log entry older than 365 day(s)." in out.getvalue()
    assert set(PlaybackLogEntry.objects.values_list("session", flat=True)) == {"recent", "month", "today"}

    settings.MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS = 30
    delete_playback_log_task.enqueue()  # the immediate backend in the tests
    assert list(PlaybackLogEntry.objects.values_list("session", flat=True)) == ["today"]
    assert PlaybackLogEntry.objects.get().pk == rows["today"].pk


def test_housekeeping_runs_every_step_when_the_first_fails_and_fails_at_the_end(world, settings, tmp_path):
    """The hourly unit runs `video_housekeeping`: an unusable upload staging
    folder (here a file where the folder should be) breaks expire_uploads,
    and the retentions still run; the command then fails, naming the step."""
    import io

    from django.core.management import CommandError, call_command

    from private_video.uploads.models import Upload

    page, video, viewer = world
    now = timezone.now()
    old = PlaybackLogEntry.objects.create(session="old", page=page, video=video, allowed=True,
                                          started_at=now - timedelta(days=400))
    kept = PlaybackLogEntry.objects.create(session="new", page=page, video=video, allowed=True, started_at=now)
    Viewing.objects.create(video=video, page=page, user=viewer, viewer="v1", session="s1", duration=10,
                           updated_at=now - timedelta(days=400))
    stale = Upload.objects.create(user=viewer, collection=video.collection, filename="a.mp4", length=10,
                                  backend=Upload.Backend.TUS, expires_at=now - timedelta(hours=1))
    not_a_folder = tmp_path / "staging"
    not_a_folder.write_text("a file where the staging folder should be")
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(not_a_folder)

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=r"1 of 3 housekeeping steps failed: expire_uploads\."):
        call_command("video_housekeeping", stdout=out, stderr=err)
    assert "expire_uploads failed: FileExistsError" in err.getvalue()
    # The steps after it ran.
    assert "Deleted 1 viewing(s) older than 365 day(s)." in out.getvalue()
    assert "Deleted 1 playback-log entry older than 365 day(s)." in out.getvalue()
    assert list(PlaybackLogEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not PlaybackLogEntry.objects.filter(pk=old.pk).exists()
    assert not Viewing.objects.exists()
    assert Upload.objects.filter(pk=stale.pk).exists()  # left for the next run, nothing lost

    # With the folder back, the same command succeeds and expires the upload.
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(tmp_path / "staging-ok")
    out = io.StringIO()
    call_command("video_housekeeping", stdout=out)
    assert "1 expired upload(s) removed." in out.getvalue()
    assert not Upload.objects.exists()


@pytest.mark.parametrize("value", [0, -5, "a year", True])
def test_a_bad_playback_log_retention_is_a_system_check_error(settings, value):
    from media_access.checks import check_settings

    settings.MEDIA_ACCESS_PLAYBACK_LOG_RETENTION_DAYS = value
    errors = [e for e in check_settings() if "PLAYBACK_LOG_RETENTION_DAYS" in e.msg]
    assert [e.id for e in errors] == ["private_video_access.E006"]
