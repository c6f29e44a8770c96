"""Remembered media decisions on PostgreSQL (media_access/decisions.py): what
scoped values buy where many viewers and writers share one database.

Run under deploy/scripts/with-test-postgres (make test-postgres); skipped on SQLite.
"""

import time

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError, connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from media_access import decisions
from media_access.models import DecisionScope, ViewerGrant

from .helpers import make_user, make_video, make_video_page

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: run under deploy/scripts/with-test-postgres")


def second_connection():
    """Another session on the same (test) database, outside Django's own."""
    other = connections.create_connection("default")
    other.set_autocommit(False)
    return other


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_writes_to_different_users_and_pages_do_not_wait_for_each_other(sample_video):
    """While one transaction holds changes to alice (her user row and, through
    the triggers, her u: scope row), another changes bob and a page and
    commits within its 1 s lock timeout. A change that touches alice's scope
    from another table (a new group membership) does wait: the scope row is
    the unit of locking, not one row for everything."""
    alice = make_user("alice")
    bob = make_user("bob")
    group = Group.objects.create(name="Viewers")
    page = make_video_page(make_video(sample_video), title="Elsewhere")
    first, second = second_connection(), second_connection()
    try:
        with first.cursor() as cursor:
            cursor.execute("UPDATE auth_user SET first_name = 'A' WHERE id = %s", [alice.pk])
        with second.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")
            started = time.monotonic()
            cursor.execute("UPDATE auth_user SET first_name = 'B' WHERE id = %s", [bob.pk])
            cursor.execute("UPDATE wagtailcore_page SET title = 'Renamed' WHERE id = %s", [page.pk])
            cursor.execute("UPDATE django_session SET expire_date = expire_date")
        second.commit()
        assert time.monotonic() - started < 1
        # The control: the same scope, reached through another table, waits.
        with second.cursor() as cursor:
            cursor.execute("SET lock_timeout = '1s'")
            with pytest.raises(OperationalError, match="lock timeout"):
                cursor.execute(
                    "INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s)", [alice.pk, group.pk]
                )
        second.rollback()
        first.commit()
    finally:
        first.close()
        second.close()
    assert DecisionScope.objects.filter(key=decisions.user_scope(bob.pk)).exists()
    assert DecisionScope.objects.filter(key=decisions.page_scope(page.pk)).exists()


@pytest.mark.django_db
def test_a_remembered_request_is_one_primary_key_read(client, sample_video):
    """Steady state: one query per allowed, remembered media request, and the
    planner answers it from the primary key's index (with a realistic
    number of scope rows and fresh statistics), not by scanning the table."""
    now = int(time.time())
    DecisionScope.objects.bulk_create(
        [DecisionScope(key=f"s:filler{n:06d}", value=n, touched=now) for n in range(20000)]
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {decisions.SCOPE_TABLE}")
    decisions.cache().clear()
    decisions.recheck_triggers()
    viewers = Group.objects.create(name="Viewers")
    viewer = make_user("viewer", groups=[viewers])
    video = make_video(sample_video, title="Counted")
    page = make_video_page(video, title="Counted page")
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(viewer)
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    first = client.get(url)
    assert first.status_code == 200 and first.has_header("X-Accel-Redirect")
    for _ in range(3):
        with CaptureQueriesContext(connection) as context:
            response = client.get(url)
        assert response.status_code == 200 and response["X-Accel-Redirect"] == first["X-Accel-Redirect"]
        assert len(context.captured_queries) == 1, context.captured_queries
    sql = context.captured_queries[0]["sql"]
    assert decisions.SCOPE_TABLE in sql
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"{decisions.SCOPE_TABLE}_pkey" in plan and "Seq Scan" not in plan, plan
    decisions.cache().clear()


@pytest.mark.django_db
def test_triggers_are_counted_per_process_not_per_request(client, sample_video):
    """No pg_trigger query on a remembered request; after recheck_triggers()
    (what TRIGGER_RECHECK_SECONDS does by itself) the next request counts
    them once."""
    decisions.cache().clear()
    viewers = Group.objects.create(name="Viewers")
    viewer = make_user("viewer", groups=[viewers])
    video = make_video(sample_video)
    page = make_video_page(video)
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(viewer)
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    assert not any("pg_trigger" in query["sql"] for query in context.captured_queries)
    decisions.recheck_triggers()
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    # The table list (which triggers there should be), the count, the scope read.
    assert len([query for query in context.captured_queries if "pg_trigger" in query["sql"]]) == 1
    assert len(context.captured_queries) == 3
    with CaptureQueriesContext(connection) as context:
        assert client.get(url).status_code == 200
    assert len(context.captured_queries) == 1
    decisions.cache().clear()


@pytest.mark.django_db
def test_a_trigger_disabled_behind_djangos_back_is_reported():
    """Not noticed per request (that was the pg_trigger count this design
    dropped): the database check names it, and migrate puts it back."""
    from django.core.checks import run_checks

    name = "private_video_access_policy_auth_user_groups"

    def e004():
        return [m for m in run_checks(databases=["default"]) if m.id == "private_video_access.E004"]

    assert e004() == []
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f'ALTER TABLE auth_user_groups DISABLE TRIGGER "{name}"')
    try:
        messages = e004()
        assert len(messages) == 1 and name in messages[0].msg
    finally:
        decisions.install_triggers()
    assert e004() == []
