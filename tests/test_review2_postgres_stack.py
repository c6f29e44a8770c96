"""Review 2, hostile: remembered decisions on PostgreSQL through real nginx
and gunicorn with kept connections (DATABASE_CONN_MAX_AGE, as docs/deploy.md
recommends), the only setup where the scope read goes through the driver's
prepared statement (media_access/decisions.py ``_read_postgres``); the other
stack tests keep no connection, so there it is always Django's cursor.

Run under deploy/scripts/with-test-postgres (make test-postgres); skipped on SQLite."""

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection, connections

from media_access.models import ViewerGrant

from .conftest import _start_stack
from .helpers import make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def start_kept_connection_worker(tmp_path_factory, stack_database_url, static_root, **extra_env):
    """One gunicorn worker keeping its PostgreSQL connection(s) between
    requests (DATABASE_CONN_MAX_AGE); skips the test on SQLite."""
    if not stack_database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only: run under deploy/scripts/with-test-postgres")
    return _start_stack(tmp_path_factory, stack_database_url, static_root, extra_env={
        "WEB_CONCURRENCY": "1", "DATABASE_CONN_MAX_AGE": "600", **extra_env})


@pytest.fixture(scope="module")
def kept_connection_worker(tmp_path_factory, stack_database_url, static_root):
    stack = start_kept_connection_worker(tmp_path_factory, stack_database_url, static_root)
    yield stack
    stack.stop()


def other_session():
    other = connections.create_connection("default")
    other.set_autocommit(True)
    return other


def kill_the_workers_connections():
    """What a database restart or an idle timeout does to a kept connection."""
    other = other_session()
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND pid <> %s AND backend_type = 'client backend'",
                [connection.connection.info.backend_pid])
            return cursor.rowcount
    finally:
        other.close()


@pytest.fixture
def world(sample_video):
    viewers = Group.objects.create(name="Viewers")
    alice = make_user("alice", groups=[viewers])
    video = make_video(sample_video, title="Kept")
    page = make_video_page(video, title="Granted")
    grant = ViewerGrant.objects.create(page=page, group=viewers)
    ViewerGrant.objects.create(page=page, user=make_user("carol"))  # keeps the page restricted
    data = Path(settings.PRIVATE_MEDIA_ROOT, video.file.name).read_bytes()
    return alice, viewers, page, video, grant, data


def fetch(stack, session, page, video):
    return session.get(stack.url(f"/watch/{page.pk}/{video.pk}/original/"),
                       headers={"Range": "bytes=0-99"}, allow_redirects=False, timeout=10)


def revoke_group(alice, viewers, grant, page):
    alice.groups.remove(viewers)


def revoke_grant(alice, viewers, grant, page):
    grant.delete()


def unpublish(alice, viewers, grant, page):
    page.unpublish()


def deactivate(alice, viewers, grant, page):
    alice.is_active = False
    alice.save()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("revoke", [revoke_group, revoke_grant, unpublish, deactivate],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("killed", [False, True], ids=["kept", "killed"])
def test_the_next_request_after_a_revocation_is_refused(kept_connection_worker, world, revoke, killed):
    stack = kept_connection_worker
    alice, viewers, page, video, grant, data = world
    session = stack_session(alice)
    for _ in range(3):
        response = fetch(stack, session, page, video)
        assert response.status_code == 206 and response.content == data[:100]
    revoke(alice, viewers, grant, page)
    if killed:
        assert kill_the_workers_connections() >= 1
    for _ in range(2):
        response = fetch(stack, session, page, video)
        assert_refused(response, data)


def assert_refused(response, data):
    """403/404, or for a deactivated viewer (signed out by it) the way to sign in."""
    if response.status_code == 302:
        assert "/login/" in response.headers["Location"], response.headers["Location"]
    else:
        assert response.status_code in (403, 404), response.status_code
    assert "X-Accel-Redirect" not in response.headers and data[:100] not in response.content
