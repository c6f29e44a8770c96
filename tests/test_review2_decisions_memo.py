"""Review 2, hostile: the memos added to media serving (media_access/responses.py
``_local_headers``, conf.py ``setting()``) and the PostgreSQL scope read that
bypasses Django's cursor and health check (decisions.py ``_read_postgres``).

The memo tests run on SQLite and PostgreSQL; the others only on PostgreSQL
(deploy/scripts/with-test-postgres, make test-postgres)."""

from urllib.parse import quote

import pytest
from django.core.files.base import ContentFile
from django.db import connection, connections
from django.urls import reverse

from media_access import decisions, responses
from media_access.conf import setting

from .helpers import granted_viewer, make_user, make_video, make_video_page

pytestmark = pytest.mark.postgres


def url(page, video, rendition="original", download=False):
    name = "media_access:download" if download else "media_access:watch"
    return reverse(name, args=[page.pk, video.pk, rendition])


def accel(name):
    return setting("ACCEL_PREFIX") + quote(name, safe="/")


# --- the X-Accel header memo -------------------------------------------------------------


@pytest.mark.django_db
def test_the_header_memo_never_answers_one_file_for_another(client, sample_video):
    """Two videos, inline and attachment, HEAD and GET, then a renamed
    original, a replaced file and a replaced rendition: every answer names
    its own file and its own disposition, also after the memo holds them all."""
    from transcoding.models import Rendition

    responses._local_headers.clear()
    boss = make_user("memo-boss", superuser=True)
    client.force_login(boss)
    first, second = make_video(sample_video, title="First"), make_video(sample_video, title="Second")
    first.original_filename, second.original_filename = "first.mp4", "second.mp4"
    first.save(), second.save()
    assert first.file.name != second.file.name
    first_page, second_page = make_video_page(first, title="P1"), make_video_page(second, title="P2")

    def check(response, video, name, attachment=False):
        assert response.status_code == 200, response.status_code
        assert response["X-Accel-Redirect"] == accel(name)
        kind = "attachment" if attachment else "inline"
        assert response["Content-Disposition"].startswith(f'{kind}; filename="{video.original_filename}"')

    for _ in range(2):  # the second round is answered from the memo
        check(client.get(url(first_page, first)), first, first.file.name)
        check(client.head(url(first_page, first)), first, first.file.name)
        check(client.get(url(first_page, first, download=True)), first, first.file.name, attachment=True)
        check(client.get(url(second_page, second)), second, second.file.name)
        check(client.head(url(second_page, second, download=True)), second, second.file.name, attachment=True)
    assert len(responses._local_headers) == 4

    # Renamed: the new name at once, inline and attachment.
    first.original_filename = "renamed.mp4"
    first.save()
    check(client.get(url(first_page, first)), first, first.file.name)
    check(client.get(url(first_page, first, download=True)), first, first.file.name, attachment=True)
    # The file replaced by another stored file: nginx is sent to the new one.
    old_name = first.file.name
    first.file.save("replacement.mp4", ContentFile(b"\x00" * 64), save=True)
    assert first.file.name != old_name
    check(client.get(url(first_page, first)), first, first.file.name)
    # A rendition replaced under the same rendition name.
    rendition = Rendition(video=second, name="mp4-360p", kind=Rendition.Kind.MP4, content_type="video/mp4", size=64)
    rendition.file.save("clip-360p.mp4", ContentFile(b"\x01" * 64), save=False)
    rendition.save()
    response = client.get(url(second_page, second, "mp4-360p"))
    assert response["X-Accel-Redirect"] == accel(rendition.file.name)
    old_rendition = rendition.file.name
    rendition.file.save("clip-360p-new.mp4", ContentFile(b"\x02" * 64), save=True)
    assert rendition.file.name != old_rendition
    response = client.get(url(second_page, second, "mp4-360p"))
    assert response["X-Accel-Redirect"] == accel(rendition.file.name)
    responses._local_headers.clear()


@pytest.mark.django_db
def test_a_changed_accel_prefix_is_not_hidden_by_the_memo(client, sample_video, settings):
    boss = make_user("prefix-boss", superuser=True)
    client.force_login(boss)
    video = make_video(sample_video)
    page = make_video_page(video)
    assert client.get(url(page, video))["X-Accel-Redirect"].startswith("/_private/")
    settings.MEDIA_ACCESS_ACCEL_PREFIX = "/_elsewhere/"
    assert client.get(url(page, video))["X-Accel-Redirect"] == "/_elsewhere/" + quote(video.file.name, safe="/")
    settings.MEDIA_ACCESS_SERVE_MODE = "django"
    response = client.get(url(page, video))
    assert not response.has_header("X-Accel-Redirect") and response.status_code == 200


# --- the PostgreSQL scope read -----------------------------------------------------------


def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: run under deploy/scripts/with-test-postgres")


@pytest.fixture
def granted(client, sample_video):
    postgres_only()
    decisions.cache().clear()
    viewer, viewers, page, video, path = granted_viewer(sample_video, client)
    yield client, viewer, viewers, path
    decisions.cache().clear()
    decisions._prepare["ok"] = True


def other_session():
    other = connections.create_connection("default")
    other.set_autocommit(True)
    return other


def revoke_from_another_session(viewer):
    """Take the viewer out of every group, committed by another session."""
    other = other_session()
    try:
        with other.cursor() as cursor:
            cursor.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [viewer.pk])
    finally:
        other.close()


def request_boundary():
    """What gunicorn's request_started does between requests (the test client skips it)."""
    connection.close_at = None  # a persistent connection (CONN_MAX_AGE > 0)
    connection.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_revocation_from_another_session_applies_to_the_next_request(granted):
    """The prepared read sees another session's committed change at once."""
    client, viewer, viewers, path = granted
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert decisions._prepare["ok"]
    revoke_from_another_session(viewer)
    request_boundary()
    assert client.get(path).status_code == 403


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_killed_connection_is_reconnected_and_a_revocation_still_applies(granted):
    """The server ends the worker's connection (restart, idle timeout) while a
    revocation commits: the read fails, nothing remembered is used, Django's
    health check reconnects, and the viewer is refused; the next viewer is
    served normally on the new connection."""
    client, viewer, viewers, path = granted
    for _ in range(3):
        assert client.get(path).status_code == 200
    other = other_session()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
        request_boundary()
        assert client.get(path).status_code == 200  # reconnected, not a 500
        assert client.get(path).status_code == 200
        with other.cursor() as cursor:
            cursor.execute("DELETE FROM auth_user_groups WHERE user_id = %s", [viewer.pk])
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    finally:
        other.close()
    request_boundary()
    assert client.get(path).status_code == 403
    request_boundary()
    assert client.get(path).status_code == 403


@pytest.mark.django_db
def test_a_lost_prepared_statement_inside_a_transaction_is_not_a_500(granted):
    """With the request inside a transaction (ATOMIC_REQUESTS, or a view in
    transaction.atomic), a pooler that lost the prepared read must cost
    speed, not the answer: the refused EXECUTE may not leave the
    transaction aborted for the policy's queries that follow."""
    client, viewer, viewers, path = granted
    assert connection.in_atomic_block
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")
    response = client.get(path)
    assert response.status_code == 200
    assert client.get(path).status_code == 200
