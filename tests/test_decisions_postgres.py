"""Remembered media decisions on PostgreSQL (media_access/decisions.py): what
scoped values buy where many viewers and writers share one database.

Run under deploy/scripts/with-test-postgres (make test-postgres); skipped on SQLite.
"""

import time

import pytest
from django.contrib.auth.models import Group
from django.db import OperationalError, connection, connections

from media_access import decisions
from media_access.models import DecisionScope

from .driver_statements import driver_statements
from .helpers import granted_viewer, make_user, make_video, make_video_page

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: run under deploy/scripts/with-test-postgres")


@pytest.fixture
def sent():
    """Every statement the driver sends (the decision read bypasses Django's
    wrapper, so CaptureQueriesContext would not see it)."""
    with driver_statements(connection) as statements:
        yield statements


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
def test_a_remembered_request_is_one_primary_key_read(client, sample_video, sent):
    """Steady state: one statement per allowed, remembered media request (no
    health check before it either), and its plan reads the key's index, not
    the table: with a realistic number of scope rows and no statistics at all
    (a fresh table), and in the generic plan a prepared statement keeps."""
    now = int(time.time())
    DecisionScope.objects.bulk_create(
        [DecisionScope(key=f"s:filler{n:06d}", value=n, touched=now) for n in range(20000)]
    )
    decisions.cache().clear()
    decisions.recheck_triggers()
    viewer, viewers, page, video, url = granted_viewer(
        sample_video, client, video_title="Counted", page_title="Counted page")
    first = client.get(url)
    assert first.status_code == 200 and first.has_header("X-Accel-Redirect")
    for _ in range(3):
        sent.clear()
        response = client.get(url)
        assert response.status_code == 200 and response["X-Accel-Redirect"] == first["X-Accel-Redirect"]
        assert len(sent) == 1, sent
    sql = sent[0]
    # The generic plan does not depend on the values; one per placeholder (5: schema, p:, v:, s:, u:).
    params = [f"s:filler{n:06d}" for n in range(sql.count("%s"))]
    assert len(params) == 5, sql
    assert decisions.SCOPE_TABLE in sql and "SELECT 1" not in sql
    numbered = sql
    for n in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${n}", 1)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE counted_read AS {numbered}")
        cursor.execute("EXPLAIN EXECUTE counted_read(" + ", ".join(["%s"] * len(params)) + ")", list(params))
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE counted_read")
    assert "Seq Scan" not in plan and f"Index Scan using {decisions.SCOPE_TABLE}_" in plan, plan
    assert plan.count("Index Scan") == len(params), plan
    decisions.cache().clear()


@pytest.mark.django_db
def test_triggers_are_counted_per_process_not_per_request(client, sample_video, sent):
    """No pg_trigger query on a remembered request; after recheck_triggers()
    (what TRIGGER_RECHECK_SECONDS does by itself) the next request counts
    them once."""
    decisions.cache().clear()
    viewer, viewers, page, video, url = granted_viewer(sample_video, client)
    assert client.get(url).status_code == 200
    sent.clear()
    assert client.get(url).status_code == 200
    assert len(sent) == 1 and not any("pg_trigger" in sql for sql in sent), sent
    decisions.recheck_triggers()
    sent.clear()
    assert client.get(url).status_code == 200
    # The table list (which triggers there should be), the count, the scope read.
    assert len([sql for sql in sent if "pg_trigger" in sql]) == 1, sent
    assert len(sent) == 3, sent
    sent.clear()
    assert client.get(url).status_code == 200
    assert len(sent) == 1, sent
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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_pooler_that_loses_prepared_statements_costs_speed_not_answers(client, sample_video, sent):
    """A connection pooler in transaction mode hands the next statement to a
    server session that never saw the prepared read (here: the server forgets
    it behind the driver's back). The read is refused once, the process then
    reads unprepared, and viewers keep their answers: allowed stays allowed
    (one statement per request again), a viewer taken out of the granted group
    is refused at once."""
    decisions.cache().clear()
    viewer, viewers, page, video, url = granted_viewer(sample_video, client)
    assert client.get(url).status_code == 200
    sent.clear()
    assert client.get(url).status_code == 200
    assert decisions._prepare["ok"] and len(sent) == 1, sent
    with connection.cursor() as cursor:
        # In autocommit the read is the server's prepared statement, made once per connection.
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        prepared = dict(cursor.fetchall())
    assert decisions.SCOPE_TABLE in prepared["private_video_scope_read_5"], prepared
    try:
        with connection.cursor() as cursor:
            # What a pooler's other server session looks like to the driver.
            cursor.execute("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")
        sent.clear()
        assert client.get(url).status_code == 200
        assert not decisions._prepare["ok"]
        sent.clear()
        assert client.get(url).status_code == 200
        assert len(sent) == 1 and decisions.SCOPE_TABLE in sent[0], sent
        viewer.groups.remove(viewers)
        assert client.get(url).status_code == 403
    finally:
        decisions._prepare["ok"] = True
        decisions.cache().clear()
