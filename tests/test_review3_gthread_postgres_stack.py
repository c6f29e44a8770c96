"""Review 3, hostile: the libpq scope read under gunicorn's gthread worker (one
kept PostgreSQL connection per thread, DATABASE_CONN_MAX_AGE), through nginx.
Held: concurrent remembered requests answer correctly, and after a revocation
(with or without every kept connection killed) no thread serves a stale allow.

Run under deploy/scripts/with-test-postgres; skipped on SQLite."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from .helpers import stack_session
from .test_review2_postgres_stack import (  # noqa: F401
    assert_refused, fetch, kill_the_workers_connections, revoke_group, start_kept_connection_worker, world,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(scope="module")
def gthread_worker(tmp_path_factory, stack_database_url, static_root):
    stack = start_kept_connection_worker(tmp_path_factory, stack_database_url, static_root,
                                         GUNICORN_CMD_ARGS="--worker-class gthread --threads 4")
    yield stack
    stack.stop()


@pytest.mark.parametrize("killed", [False, True], ids=["kept", "killed"])
def test_threads_never_serve_a_revoked_viewer(gthread_worker, world, killed):
    stack = gthread_worker
    alice, viewers, page, video, grant, data = world
    sessions = [stack_session(alice) for _ in range(4)]

    def burst(session):
        return [fetch(stack, session, page, video) for _ in range(10)]

    with ThreadPoolExecutor(4) as pool:
        for responses in pool.map(burst, sessions):
            for response in responses:
                assert response.status_code == 206 and response.content == data[:100]
        revoke_group(alice, viewers, grant, page)
        if killed:
            assert kill_the_workers_connections() >= 1
        for responses in pool.map(burst, sessions):
            for response in responses:
                assert response.status_code != 500
                assert_refused(response, data)
