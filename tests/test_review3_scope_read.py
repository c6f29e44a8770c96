"""Review 3, hostile: the PostgreSQL scope read on libpq (decisions._read_postgres,
_exec_scope_read). Run under deploy/scripts/with-test-postgres."""

from contextlib import contextmanager

import pytest
from django.db import connection

from media_access import decisions

from .test_review2_decisions_memo import (  # noqa: F401
    granted, other_session, request_boundary, revoke_from_another_session,
)

pytestmark = pytest.mark.postgres

SCOPE = decisions.SCOPE_TABLE


@contextmanager
def scope_table_locked():
    """Another session holds the scope table (as a migration would) and this
    connection waits 300 ms for a lock: the scope read fails with lock_timeout."""
    other = other_session()
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {SCOPE} IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        request_boundary()
        yield
    finally:
        other.rollback()
        other.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_failed_read_inside_atomic_requests_is_not_a_500(granted):
    """ATOMIC_REQUESTS: the read fails for a reason other than a dead
    connection (here lock_timeout while a migration holds the scope table):
    the invariant says "don't remember, run the policy", never a 500. A
    failed statement inside the request's transaction aborts it, and the
    policy's queries after it with it."""
    client, viewer, viewers, path = granted
    assert client.get(path).status_code == 200
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        with scope_table_locked():
            client.raise_request_exception = False
            assert client.get(path).status_code == 200
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_failure_in_autocommit_runs_the_policy(granted):
    client, viewer, viewers, path = granted
    assert client.get(path).status_code == 200
    with scope_table_locked():
        client.raise_request_exception = False
        assert client.get(path).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_atomic_requests_remembers_and_still_sees_a_revocation(granted):
    """Held: under ATOMIC_REQUESTS the (savepointed) read remembers, and a
    revocation committed by another session applies to the next request."""
    client, viewer, viewers, path = granted
    connection.settings_dict["ATOMIC_REQUESTS"] = True
    try:
        for _ in range(3):
            request_boundary()
            assert client.get(path).status_code == 200
        revoke_from_another_session(viewer)
        request_boundary()
        assert client.get(path).status_code == 403
    finally:
        connection.settings_dict["ATOMIC_REQUESTS"] = False


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_hostile_statement_under_the_reads_name_is_not_trusted(granted):
    """Held: the server session already has the read's name prepared with
    other SQL (answering every key with a constant): the PREPARE is refused
    and the read goes unprepared; a revocation still applies."""
    client, viewer, viewers, path = granted
    connection.close()
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute(
            "PREPARE private_video_scope_read_5(text, text, text, text, text) AS "
            "SELECT k, 1::bigint FROM unnest(ARRAY[$1, $2, $3, $4, $5]) AS k"
        )
    try:
        client.raise_request_exception = False
        assert client.get(path).status_code == 200
        assert client.get(path).status_code == 200
        revoke_from_another_session(viewer)
        request_boundary()
        assert client.get(path).status_code == 403
    finally:
        decisions._prepare["ok"] = True
        connection.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("cookie", ["\u00e9t\u00e9" * 10, "x" * 3000, "a'b\"c\\d;--", "\u00ff" * 300])
def test_odd_session_cookies_are_not_a_500(granted, cookie):
    """Held: non-ASCII, quote-laden and very long session keys (prepared and
    inlined reads) are an anonymous visitor, not an error."""
    client, viewer, viewers, path = granted
    client.logout()
    client.raise_request_exception = False
    expected = client.get(path).status_code
    assert expected != 500
    client.cookies["sessionid"] = cookie
    for atomic in (False, True):
        connection.settings_dict["ATOMIC_REQUESTS"] = atomic
        try:
            request_boundary()
            assert client.get(path).status_code == expected
        finally:
            connection.settings_dict["ATOMIC_REQUESTS"] = False


@pytest.mark.django_db
def test_a_failed_read_inside_an_open_transaction_is_not_a_500(granted):
    """Inside an open transaction (a view in transaction.atomic after other
    queries; here the test's own): the read fails (its table renamed away
    meanwhile, standing for any statement error) and the policy still runs
    on a usable transaction."""
    client, viewer, viewers, path = granted
    assert connection.in_atomic_block
    assert client.get(path).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {SCOPE} RENAME TO review3_away")
    try:
        client.raise_request_exception = False
        assert client.get(path).status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE review3_away RENAME TO {SCOPE}")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_prepare_threshold_none_means_never_prepared(granted):
    """Held: ``"prepare_threshold": None`` in OPTIONS (psycopg's switch, for a
    pooler without prepared statements): the server session never holds the
    read, and revocations still apply."""
    client, viewer, viewers, path = granted
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["prepare_threshold"] = None
    try:
        connection.close()
        for _ in range(3):
            request_boundary()
            assert client.get(path).status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'private_video%%'")
            assert cursor.fetchone()[0] == 0
        revoke_from_another_session(viewer)
        request_boundary()
        assert client.get(path).status_code == 403
    finally:
        options.pop("prepare_threshold", None)
        connection.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("reset", ["DEALLOCATE ALL", "DISCARD ALL"])
def test_prepared_statements_dropped_behind_the_drivers_back(granted, reset):
    """Held (answers): the server session loses the prepared read (a pool's
    reset, an admin): the next read falls back unprepared, the connection
    stays usable in autocommit, a revocation applies. Cost: the whole process
    reads unprepared from then on (_prepare["ok"] is process-wide)."""
    client, viewer, viewers, path = granted
    for _ in range(2):
        request_boundary()
        assert client.get(path).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(reset)
    request_boundary()
    assert client.get(path).status_code == 200
    assert connection.connection.autocommit
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    revoke_from_another_session(viewer)
    request_boundary()
    assert client.get(path).status_code == 403
    assert not decisions._prepare["ok"]
