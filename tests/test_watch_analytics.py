"""Watch analytics (issue 14): the player's beacon (behind the policy, CSRF
token in the body, hostile bodies refused and nothing stored, merged
idempotently), the numbers per video, the admin report with its SVG and CSV,
who may see it, and the retention cleanup."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Collection

from media_access import analytics, published
from media_access.models import Viewing, ViewerGrant
from media_access.tasks import delete_watch_analytics_task
from private_video import get_video_model

from .helpers import collection_group, make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db

POLICY_REFUSAL = b"You do not have access to this video.\n"
SESSION = "a1b2c3d4e5f6a7b8"


@pytest.fixture
def world(sample_video):
    """A 4 s video on a page only the group's members may watch."""
    published.forget()
    video = make_video(sample_video, title="Compliance training")
    page = make_video_page(video, title="Training page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer, members


def signed_in(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def beacon_info(client, page, video):
    response = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 200, response.content
    info = response.json()["analytics"]
    assert info["url"] == reverse("media_access:watch_beacon", args=[page.pk, video.pk])
    return info


def send(client, info, ranges, *, duration=None, session=SESSION, csrf="from-info", content_type="text/plain",
         **extra):
    body = {"session": session, "ranges": ranges, "duration": duration}
    if csrf == "from-info":
        body["csrf"] = info["csrf_token"]
    elif csrf is not None:
        body["csrf"] = csrf
    return client.post(info["url"], json.dumps(body), content_type=content_type, **extra)


def seconds_of(viewing):
    return analytics.bits_to_ranges(analytics.from_bytes(viewing.seconds))


def set_duration(video, seconds):
    get_video_model().objects.filter(pk=video.pk).update(duration=seconds)
    video.refresh_from_db()


# ---- the beacon ---------------------------------------------------------------------


def test_beacon_merges_played_seconds_once(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    info = beacon_info(client, page, video)
    duration = video.duration

    response = send(client, info, [[0.2, 1.6]], duration=duration)
    assert response.status_code == 204 and response.content == b""
    assert response["Cache-Control"] == "private, no-store"
    viewing = Viewing.objects.get()
    assert (viewing.user, viewing.page, viewing.video, viewing.session) == (viewer, page.page_ptr, video, SESSION)
    # Second i counts when i + 0.5 was played: [0.2, 1.6) covers 0 and 1.
    assert seconds_of(viewing) == [(0, 2)] and viewing.watched == 2
    assert viewing.duration == video.duration

    # The same beacon again (sendBeacon retried, a pagehide after a timer): nothing changes.
    before = viewing.updated_at
    assert send(client, info, [[0.2, 1.6]], duration=duration).status_code == 204
    viewing = Viewing.objects.get()
    assert seconds_of(viewing) == [(0, 2)] and viewing.watched == 2 and viewing.updated_at == before

    # The player sends everything played so far; new seconds are added, old ones stay.
    assert send(client, info, [[0.2, 1.6], [2.4, duration]], duration=duration).status_code == 204
    # A later beacon that forgot earlier ranges (a reloaded source) takes nothing away.
    assert send(client, info, [[2.4, 3.0]], duration=duration).status_code == 204
    viewing = Viewing.objects.get()
    assert seconds_of(viewing) == [(0, 4)] and viewing.watched == 4

    # JSON with its own type (fetch, or a Blob) is the same beacon.
    assert send(client, info, [[0, 1]], duration=duration, content_type="application/json").status_code == 204
    # Another playback (a new page load) of the same viewer is another viewing.
    assert send(client, info, [[0, 1]], duration=duration, session="ffffffff00000000").status_code == 204
    assert Viewing.objects.count() == 2
    assert set(Viewing.objects.values_list("viewer", flat=True)) == {viewing.viewer}


def test_the_merge_is_one_read_and_at_most_one_write(world):
    page, video, viewer, _ = world
    args = {"video": video, "page": page, "user": viewer, "viewer": "v" * 64, "session": SESSION,
            "duration": 4.0}

    def statements(ranges):
        with CaptureQueriesContext(connection) as queries:
            analytics.record(ranges=ranges, **args)
        return [q["sql"].split()[0].upper() for q in queries.captured_queries
                if not q["sql"].upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]

    assert statements([(0, 2)]) == ["SELECT", "INSERT"]
    assert statements([(0, 2)]) == ["SELECT"]  # nothing new: no write
    assert statements([(2, 4)]) == ["SELECT", "UPDATE"]
    assert seconds_of(Viewing.objects.get()) == [(0, 4)]


HOSTILE = {
    "not json": b"{'session': 1",
    "not utf-8": b"\xff\xfe{}",
    "a list": [],
    "no session": {"ranges": [[0, 1]], "duration": 4},
    "session with a quote": {"session": "abc'defgh\"", "ranges": [[0, 1]], "duration": 4},
    "session too short": {"session": "abc", "ranges": [[0, 1]], "duration": 4},
    "session too long": {"session": "a" * 65, "ranges": [[0, 1]], "duration": 4},
    "NaN start": '{"session": "%s", "ranges": [[NaN, 1]], "duration": 4}' % SESSION,
    "Infinity end": '{"session": "%s", "ranges": [[0, Infinity]], "duration": 4}' % SESSION,
    "huge number": '{"session": "%s", "ranges": [[0, 1e999]], "duration": 4}' % SESSION,
    "NaN duration": '{"session": "%s", "ranges": [[0, 1]], "duration": NaN}' % SESSION,
    "no duration": {"session": SESSION, "ranges": [[0, 1]]},
    "zero duration": {"session": SESSION, "ranges": [], "duration": 0},
    "not this video's duration": {"session": SESSION, "ranges": [[0, 1]], "duration": 36000},
    "string number": {"session": SESSION, "ranges": [["0", "1"]], "duration": 4},
    "boolean number": {"session": SESSION, "ranges": [[False, True]], "duration": 4},
    "negative start": {"session": SESSION, "ranges": [[-1, 1]], "duration": 4},
    "end past the video": {"session": SESSION, "ranges": [[0, 60]], "duration": 4},
    "start after end": {"session": SESSION, "ranges": [[3, 1]], "duration": 4},
    "three numbers": {"session": SESSION, "ranges": [[0, 1, 2]], "duration": 4},
    "a number, not a pair": {"session": SESSION, "ranges": [1], "duration": 4},
    "ranges an object": {"session": SESSION, "ranges": {"0": 1}, "duration": 4},
    "too many ranges": {"session": SESSION, "ranges": [[i / 100, i / 100 + 0.001] for i in range(257)],
                        "duration": 4},
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_beacons_are_refused_and_store_nothing(world, name):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    info = beacon_info(client, page, video)
    body = HOSTILE[name]
    if isinstance(body, (dict, list)):
        body = dict(body, csrf=info["csrf_token"]) if isinstance(body, dict) else body
        body = json.dumps(body)
    # The CSRF token in a header (as fetch would send it), so bodies without it reach the validation.
    response = client.post(info["url"], body, content_type="text/plain", HTTP_X_CSRFTOKEN=info["csrf_token"])
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("text/plain") and response.content.strip()
    assert not Viewing.objects.exists()


def test_a_large_body_is_refused_before_it_is_parsed(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    info = beacon_info(client, page, video)
    body = json.dumps({"session": SESSION, "ranges": [[0, 1]], "duration": video.duration,
                       "csrf": info["csrf_token"], "padding": "x" * 20_000})
    response = client.post(info["url"], body, content_type="text/plain")
    assert response.status_code == 413
    assert not Viewing.objects.exists()


def test_without_a_valid_csrf_token_nothing_is_stored(world):
    page, video, viewer, _ = world
    client = signed_in(viewer)
    info = beacon_info(client, page, video)
    for csrf in (None, "", "x" * 64, info["csrf_token"][:-2] + "zz"):
        response = send(client, info, [[0, 4]], duration=video.duration, csrf=csrf)
        assert response.status_code == 403 and b"CSRF" in response.content, csrf
    # Another site's page posting with the viewer's cookies and a token it cannot know,
    # or even the right one from another origin: refused.
    response = send(client, info, [[0, 4]], duration=video.duration, HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not Viewing.objects.exists()

    # The token in the X-CSRFToken header instead of the body is as good.
    response = send(client, info, [[0, 4]], duration=video.duration, csrf=None,
                    HTTP_X_CSRFTOKEN=info["csrf_token"])
    assert response.status_code == 204
    assert Viewing.objects.get().watched == 4


def test_a_viewer_the_policy_refuses_stores_nothing(world, sample_video):
    page, video, viewer, members = world
    token = "a" * 32  # a well-formed CSRF secret, as cookie and body field: CSRF passes, the view decides
    url = reverse("media_access:watch_beacon", args=[page.pk, video.pk])
    info = {"url": url, "csrf_token": token}

    outsider = signed_in(make_user("outsider"))
    outsider.cookies["csrftoken"] = token
    anonymous = Client(enforce_csrf_checks=True)
    anonymous.cookies["csrftoken"] = token
    for client in (outsider, anonymous):
        refused = send(client, info, [[0, 4]], duration=video.duration)
        assert refused.status_code == 403 and refused.content == POLICY_REFUSAL

    # The video on a page that does not show it: not found.
    other_page = make_video_page(make_video(sample_video, title="Other"), title="Other page")
    client = signed_in(viewer)
    mine = beacon_info(client, page, video)
    elsewhere = dict(mine, url=reverse("media_access:watch_beacon", args=[other_page.pk, video.pk]))
    assert send(client, elsewhere, [[0, 4]], duration=video.duration).status_code == 404

    # Revoked: the next beacon is refused.
    viewer.groups.remove(members)
    refused = send(client, mine, [[0, 4]], duration=video.duration)
    assert refused.status_code == 403 and refused.content == POLICY_REFUSAL
    assert not Viewing.objects.exists()

    # Not a way in either: GET.
    assert client.get(url).status_code == 405


def test_anonymous_viewers_are_told_apart_by_an_hmac_never_the_session_key_or_ip(sample_video):
    published.forget()
    video = make_video(sample_video, title="Open")
    page = make_video_page(video, title="Open page")  # no grants: anyone may watch

    first = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.7")
    first.session.save()  # a session too, to show its key is not what is stored
    info = beacon_info(first, page, video)
    assert send(first, info, [[0, 2]], duration=video.duration).status_code == 204
    assert send(first, info, [[0, 2]], duration=video.duration, session="bbbbbbbbbbbbbbbb").status_code == 204
    second = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.7")
    info2 = beacon_info(second, page, video)
    assert send(second, info2, [[0, 1]], duration=video.duration).status_code == 204

    rows = list(Viewing.objects.order_by("pk"))
    assert [row.user for row in rows] == [None, None, None]
    # One browser, two playbacks: one viewer. Another browser: another viewer.
    assert rows[0].viewer == rows[1].viewer != rows[2].viewer
    for row in rows:
        assert len(row.viewer) == 64 and int(row.viewer, 16) >= 0
    # Nothing a cookie could be rebuilt from, and no address, in any column.
    secrets = [first.session.session_key, "203.0.113.7", "127.0.0.1"]
    secrets += [cookie.value for client in (first, second) for cookie in client.cookies.values()]
    for row in rows:
        stored = " ".join(str(getattr(row, f.attname)) for f in Viewing._meta.concrete_fields)
        for secret in secrets:
            assert secret not in stored
    assert not any("ip" in f.name.split("_") or "addr" in f.name for f in Viewing._meta.fields)
    assert analytics.video_stats(video).unique_viewers == 2


# ---- the numbers --------------------------------------------------------------------


@pytest.fixture
def watched(sample_video):
    """A 10 s video (its probed duration set so) with known viewings:
    ann twice (0-5, 4-10: all of it), bob 0-3, dan 1-10 (exactly 90 %),
    eve 0-8 (80 %), an anonymous browser 2.6-6.4 (seconds 3, 4 and 5)."""
    published.forget()
    video = make_video(sample_video, title="Ten seconds")
    set_duration(video, 10.0)
    page = make_video_page(video, title="Ten page")
    plays = [("ann", [[0, 5]]), ("ann", [[4, 10]]), ("bob", [[0, 3]]), ("dan", [[1, 10]]),
             ("eve", [[0.4, 8.2]]), (None, [[2.6, 6.4]])]
    users = {}
    for number, (name, ranges) in enumerate(plays):
        if name is None:
            client = Client(enforce_csrf_checks=True)
        else:
            if name not in users:
                users[name] = make_user(name)
                users[name].first_name = name.title()
                users[name].save()
            client = signed_in(users[name])
        info = beacon_info(client, page, video)
        assert send(client, info, ranges, duration=10.0, session=f"session{number:04d}").status_code == 204
    return video, users


def test_numbers_on_known_ranges(watched):
    video, users = watched
    stats = analytics.video_stats(video)
    assert stats.seconds == 10 and stats.viewings == 6
    # Unique viewers per second: ann all; bob 0-2; dan 1-9; eve 0-7; the anonymous one 3-5.
    assert stats.curve == [3, 4, 4, 4, 4, 4, 3, 3, 2, 2]
    # Viewings per second: ann's two overlap at second 4.
    assert stats.viewings_curve == [3, 4, 4, 4, 5, 4, 3, 3, 2, 2]
    assert stats.unique_viewers == 5
    assert stats.total_watch_seconds == 5 + 6 + 3 + 9 + 8 + 3
    by_label = {row.label: (row.seconds, row.percent, row.completed, row.viewings) for row in stats.viewers}
    anonymous = [label for label in by_label if label.startswith("anonymous-")]
    assert by_label == {
        "ann": (10, 100.0, True, 2), "dan": (9, 90.0, True, 1), "eve": (8, 80.0, False, 1),
        "bob": (3, 30.0, False, 1), anonymous[0]: (3, 30.0, False, 1),
    }
    assert stats.completed_viewers == 2 and stats.completion == pytest.approx(2 / 5)
    # Most watched first.
    assert [row.label for row in stats.viewers][:3] == ["ann", "dan", "eve"]


def test_report_page_chart_numbers_and_csv(watched, admin_client):
    video, users = watched
    url = reverse("media_access_reports:video_analytics", args=[video.pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    html = response.content.decode()
    assert "<svg" in html and "data-audience-chart" in html and 'data-audience-curve d="M0,' in html
    assert 'data-unique-viewers>5<' in html and 'data-viewings>6<' in html
    assert 'data-total-watch-seconds="34"' in html and "40.0 % (2/5)" in html
    assert 'data-viewer="dan"' in html and 'data-percent="90.0"' in html
    # The step path rises to the peak (4 viewers: the top of the plot) and ends at the baseline.
    path = html.split('data-audience-curve d="', 1)[1].split('"', 1)[0]
    plot_height = analytics.CHART_HEIGHT - 2 * analytics.CHART_PAD
    assert "V0.00" in path and path.endswith(f"V{plot_height}Z")

    viewers = list(csv.reader(io.StringIO(admin_client.get(url, {"format": "csv"}).content.decode())))
    assert viewers[0] == ["viewer", "user_id", "name", "seconds_watched", "duration_seconds", "percent_watched",
                          "watched_90_percent", "viewings", "last_watched"]
    rows = {row[0]: row for row in viewers[1:]}
    assert rows["ann"][1:8] == [str(users["ann"].pk), "Ann", "10", "10", "100.0", "yes", "2"]
    assert rows["dan"][3:7] == ["9", "10", "90.0", "yes"]
    assert rows["eve"][3:7] == ["8", "10", "80.0", "no"]
    assert len(rows) == 5

    curve_response = admin_client.get(url, {"format": "csv", "data": "curve"})
    assert curve_response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in curve_response["Content-Disposition"]
    curve = list(csv.reader(io.StringIO(curve_response.content.decode())))
    assert curve[0] == ["second", "viewers", "viewings"]
    assert [int(row[1]) for row in curve[1:]] == [3, 4, 4, 4, 4, 4, 3, 3, 2, 2]
    assert [int(row[2]) for row in curve[1:]] == [3, 4, 4, 4, 5, 4, 3, 3, 2, 2]


def test_csv_cells_never_start_a_formula(sample_video, admin_client):
    published.forget()
    video = make_video(sample_video, title="Formula")
    page = make_video_page(video, title="Formula page")
    evil = make_user("=HYPERLINK(1)")
    evil.first_name = "+cmd"
    evil.save()
    client = signed_in(evil)
    assert send(client, beacon_info(client, page, video), [[0, 4]], duration=video.duration).status_code == 204
    text = admin_client.get(reverse("media_access_reports:video_analytics", args=[video.pk]),
                            {"format": "csv"}).content.decode()
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[0] == "'=HYPERLINK(1)" and row[2] == "'+cmd"


def test_empty_report(sample_video, admin_client):
    video = make_video(sample_video, title="Unwatched")
    response = admin_client.get(reverse("media_access_reports:video_analytics", args=[video.pk]))
    assert response.status_code == 200
    assert b"data-analytics-empty" in response.content and b"<svg" in response.content


def test_report_only_for_users_who_may_change_that_video(watched, sample_video, client):
    video, users = watched
    root = Collection.get_first_root_node()
    mine = root.add_child(name="Mine")
    theirs = root.add_child(name="Theirs")
    Video = get_video_model()
    Video.objects.filter(pk=video.pk).update(collection=mine)
    other = make_video(sample_video, title="Theirs", collection=theirs)
    editors = collection_group("Mine editors", mine, "change_video")
    choosers = collection_group("Theirs choosers", theirs, "choose_video")
    editor = make_user("editor", groups=[editors, choosers])

    client.force_login(editor)
    report = reverse("media_access_reports:video_analytics", args=[video.pk])
    assert client.get(report).status_code == 200
    assert client.get(report, {"format": "csv"}).status_code == 200
    # Another collection's video (choose is not change), and an id that does not exist: the same 404.
    for pk in (other.pk, 999_999):
        url = reverse("media_access_reports:video_analytics", args=[pk])
        assert client.get(url).status_code == 404
        assert client.get(url, {"format": "csv"}).status_code == 404

    # Reports → Watch analytics lists the watched videos this user may change, and only those.
    Viewing.objects.create(video=other, page=None, viewer="f" * 64, session=SESSION, duration=4.0,
                           seconds=b"\x0f", watched=4)
    index = client.get(reverse("media_access_reports:video_analytics_index"))
    assert index.status_code == 200
    assert f'<tr data-video="{video.pk}">'.encode() in index.content
    assert f'data-video="{other.pk}"'.encode() not in index.content and b"Theirs" not in index.content
    row = index.content.decode().split(f'<tr data-video="{video.pk}">', 1)[1].split("</tr>", 1)[0]
    assert f'href="{report}"' in row and "<td>5</td>" in row and "<td>6</td>" in row
    # (the admin's sidebar is JSON props)
    assert b'"url": "/admin/reports/video-playback/videos/analytics/"' in client.get("/admin/").content

    # The edit page links to it.
    edit = client.get(reverse("private_video:edit", args=[video.pk]))
    assert edit.status_code == 200
    assert f'href="{report}"'.encode() in edit.content and b"data-video-analytics-panel" in edit.content

    # A viewer without admin access (ann watched it) and an anonymous visitor: no report.
    client.force_login(users["ann"])
    assert client.get(report).status_code in (302, 403)
    assert b"ann" not in client.get(report, {"format": "csv"}).content
    client.logout()
    response = client.get(report, {"format": "csv"})
    assert response.status_code == 302 and "login" in response["Location"]


# ---- retention ----------------------------------------------------------------------


def test_retention_deletes_old_viewings(watched, settings):
    from django.core.management import call_command

    video, users = watched
    now = timezone.now()
    rows = list(Viewing.objects.order_by("pk"))
    Viewing.objects.filter(pk=rows[0].pk).update(updated_at=now - timedelta(days=366))
    Viewing.objects.filter(pk=rows[1].pk).update(updated_at=now - timedelta(days=364))
    out = io.StringIO()
    call_command("delete_watch_analytics", stdout=out)
    assert "Deleted 1 viewing(s) older than 365 day(s)." in out.getvalue()
    assert not Viewing.objects.filter(pk=rows[0].pk).exists()
    assert Viewing.objects.count() == len(rows) - 1

    settings.MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS = 30
    Viewing.objects.filter(pk=rows[2].pk).update(updated_at=now - timedelta(days=31))
    # The same as a background task (the immediate backend in the tests).
    result = delete_watch_analytics_task.enqueue()
    assert result.return_value == 2  # rows[1] (364 days) and rows[2] (31 days)
    assert Viewing.objects.count() == len(rows) - 3
    # What is left was updated within the period.
    assert all(row.updated_at > now - timedelta(days=1) for row in Viewing.objects.all())


@pytest.mark.parametrize("value", [0, -5, "a year", True])
def test_a_bad_retention_setting_is_a_system_check_error(settings, value):
    from media_access.checks import check_settings

    settings.MEDIA_ACCESS_ANALYTICS_RETENTION_DAYS = value
    errors = [e for e in check_settings() if "ANALYTICS_RETENTION_DAYS" in e.msg]
    assert [e.id for e in errors] == ["private_video_access.E006"]
