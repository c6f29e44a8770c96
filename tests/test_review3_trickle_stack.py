"""Review 3, hostile: the upload heartbeat (staging.set_heartbeat, deploy/gunicorn.conf.py
post_worker_init) against a client that trickles a tus PATCH.

nginx's client_body_timeout (300 s on the tus location) is the time between
two reads, not for the whole body: a client sending a byte every few seconds
is never cut off by it. Before the heartbeat gunicorn's worker timeout was the
bound on such a request; now the worker says it is alive once a second for as
long as *any* byte arrives, so a 256 MiB chunk trickled at 1 byte/s holds a
sync worker (and the upload's lock) for years: a handful of such PATCHes from
one editor's session take every worker of the site. Here: one worker, a 2 s
timeout, a PATCH sending 4 bytes a second."""

import socket
import time

import pytest
import requests

from .conftest import _start_stack
from .helpers import make_user
from .test_review2_splice_stack import auth, create, patch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MiB = 1024 * 1024
TIMEOUT = 2


@pytest.fixture(scope="module")
def impatient_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, workers=1,
                         extra_env={"GUNICORN_TIMEOUT": str(TIMEOUT)})
    yield stack
    stack.stop()


@pytest.mark.timeout(90)
def test_a_trickled_chunk_does_not_hold_the_worker_forever(impatient_stack):
    stack = impatient_stack
    headers = auth(stack, make_user("trickler", superuser=True))
    size = 4 * MiB
    path, upload_id = create(stack, headers, 2 * size)  # not complete after the chunk: no probe
    request = patch(stack, path, headers, 0, b"x" * size)
    head_len = len(request) - size
    limit = 8 * TIMEOUT  # far past the worker timeout, for a few dozen bytes
    began = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(request[:head_len] + b"x" * 1024)
        sock.settimeout(0.25)
        while time.monotonic() - began < limit:
            try:
                sock.sendall(b"x")
            except OSError:
                break
            try:
                answer = sock.recv(65536)
                break
            except (TimeoutError, socket.timeout):
                pass
            except OSError:
                break
    held = time.monotonic() - began
    assert held < limit, f"a PATCH sending 4 bytes a second held the only worker for {held:.0f} s"
    # The worker is free for others again (killed and replaced, or answered).
    response = requests.get(stack.url("/admin/login/"), timeout=10)
    assert response.status_code == 200
    # What arrived was kept; the upload resumes from it and completes.
    tus = {k: v for k, v in headers.items()}
    offset = int(requests.head(stack.url(path), headers=tus, timeout=10).headers["Upload-Offset"])
    assert 1024 <= offset < size
    rest = requests.patch(stack.url(path), data=b"x" * (size - offset), timeout=30, headers={
        **tus, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)})
    assert rest.status_code == 204, rest.text
    assert int(rest.headers["Upload-Offset"]) == size
