"""Query counts pinned on the hot paths (exact numbers, measured on SQLite).

A change that adds a query here fails, on purpose: look at the new query,
and if it is needed, change the number and the comment that lists them.
"""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test import RequestFactory
from django.urls import reverse
from wagtail.models import Collection, GroupCollectionPermission

from cms.models import VideoPage
from media_access import decisions
from media_access.models import ViewerGrant
from media_access.policy import Outcome, can_watch

from .helpers import make_user, make_video, make_video_page

pytestmark = pytest.mark.django_db


@pytest.fixture
def granted(sample_video):
    """A viewer granted a page through a group, as most viewers are."""
    decisions.cache().clear()
    viewers = Group.objects.create(name="Viewers")
    viewer = make_user("viewer", groups=[viewers])
    video = make_video(sample_video, title="Counted")
    page = make_video_page(video, title="Counted page")
    ViewerGrant.objects.create(page=page, group=viewers)
    return viewer, page, video


def test_a_remembered_media_request_costs_one_small_query(client, django_assert_num_queries, granted):
    viewer, page, video = granted
    client.force_login(viewer)
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    first = client.get(url)  # runs the whole policy, remembers the decision, logs the playback
    assert first.status_code == 200 and first.has_header("X-Accel-Redirect")

    # On SQLite the one query (the decision scopes, with the schema version)
    # goes through the driver's own cursor, which Django does not count; the
    # driver's trace does. On PostgreSQL it is a Django query.
    sqlite = connection.vendor == "sqlite"
    statements = []
    if sqlite:
        connection.connection.set_trace_callback(
            lambda sql: None if sql.startswith("--") else statements.append(sql)
        )
    try:
        with django_assert_num_queries(0 if sqlite else 1):
            # No session, user, page, video, grant or playback-log query: all remembered.
            response = client.get(url)
    finally:
        if sqlite:
            connection.connection.set_trace_callback(None)
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == first["X-Accel-Redirect"]
    if sqlite:
        assert len(statements) == 1 and "private_video_access_decisionscope" in statements[0], statements


def test_can_watch_for_a_granted_viewer(django_assert_num_queries, granted):
    viewer, page, video = granted
    request = RequestFactory().get("/")
    request.user = viewer  # the session and user are the middleware's, not the policy's
    request.session = SessionStore()
    page = VideoPage.objects.get(pk=page.pk)
    with django_assert_num_queries(6):
        # 1. the page as stored (the object a template passes may be a
        #    draft's or an old revision's, rendered in the admin)
        # 2. whether the video is the page's own content (its main video)
        # 3. the page's ancestors and aliases (for view restrictions up the tree)
        # 4. the view restrictions on them
        # 5. the page's viewer grants
        # 6. the user's group ids (to match group grants)
        decision = can_watch(request, page, video)
    assert decision.outcome is Outcome.ALLOWED and decision.reason == "grant"


def test_playback_json(client, django_assert_num_queries, granted):
    viewer, page, video = granted
    client.force_login(viewer)
    # Once per process: the trigger count and the scope pruning.
    client.get(reverse("media_access:watch", args=[page.pk, video.pk, "original"]))
    with django_assert_num_queries(14):
        # (SQLite: the decision scopes through the driver's cursor, not counted)
        # 1. the page, 2. the video (by id, never from the path)
        # 3. whether the video is the page's own content
        # 4. ancestors and aliases, 5. view restrictions, 6. viewer grants
        # 7. the session, 8. the user, 9. the user's group ids
        # 10. the video's renditions (sources, levels, poster, storyboard)
        # 11. its caption tracks, 12. its chapters (one query each, however many)
        # 13. the session's expiry (the decision is remembered until then)
        # 14. the viewer's own resume position
        response = client.get(reverse("media_access:playback", args=[page.pk, video.pk]))
    assert response.status_code == 200 and "token" in response.json()


ADMIN_LISTING_QUERIES = 11


@pytest.mark.parametrize("videos", [1, 6])
def test_admin_video_listing(client, django_assert_num_queries, sample_video, videos):
    """The same number of queries for one video or many: nothing per row."""
    for n in range(videos):
        make_video(sample_video, title=f"Listed {n}")
    client.force_login(make_user("boss", superuser=True))
    with django_assert_num_queries(ADMIN_LISTING_QUERIES):
        # 1. session, 2. user, 3. the user's admin profile
        # 4. count of the videos listed, 5. locales
        # 6.-7. pages for the admin menu's explorer
        # 8. collections (the filter)
        # 9. the page of videos (with their collection joined)
        # 10. their tags (one prefetch), 11. their transcode jobs (one prefetch)
        response = client.get(reverse("private_video:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert all(f"Listed {n}" in html for n in range(videos))


EDITOR_LISTING_QUERIES = 13


@pytest.mark.parametrize("videos", [1, 6])
def test_admin_video_listing_for_a_collection_editor(client, django_assert_num_queries, sample_video, videos):
    """An editor with rights on one collection: the permission filter costs a
    fixed number of queries, not one per video."""
    archive = Collection.get_first_root_node().add_child(name="Archive")
    editors = Group.objects.create(name="Archive editors")
    editors.permissions.add(Permission.objects.get(codename="access_admin"))
    for codename in ("add_video", "change_video"):
        GroupCollectionPermission.objects.create(
            group=editors, collection=archive, permission=Permission.objects.get(codename=codename)
        )
    for n in range(videos):
        make_video(sample_video, title=f"Archived {n}", collection=archive)
    make_video(sample_video, title="Elsewhere")
    client.force_login(make_user("editor", groups=[editors]))
    with django_assert_num_queries(EDITOR_LISTING_QUERIES):
        # 1. session, 2. user, 3.-4. the user's own and group permissions
        # 5. the user's admin profile, 6. the group's collection permissions
        # 7. count of the videos the editor may see, 8. locales
        # 9. the group's page permissions (admin menu)
        # 10. the collections the editor may filter by
        # 11. the page of videos, 12. their tags, 13. their transcode jobs
        response = client.get(reverse("private_video:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert all(f"Archived {n}" in html for n in range(videos)) and "Elsewhere" not in html
