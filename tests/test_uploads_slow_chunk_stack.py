"""A tus chunk that takes longer than gunicorn's worker timeout to arrive.

nginx streams a PATCH body to the worker as it arrives (proxy_request_buffering
off), so a chunk takes as long as the viewer's uplink needs. A sync worker is
killed by gunicorn's arbiter after ``timeout`` seconds of one request unless it
says it is alive; while a body is received it does (deploy/gunicorn.conf.py
post_worker_init -> private_video.uploads.staging.set_heartbeat). Here the
timeout is 2 s and the chunk takes about 7 s."""

import socket
import time

import pytest

from private_video.uploads import staging

from .conftest import _start_stack
from .helpers import make_user
from .test_review2_splice_stack import auth, create, patch

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def impatient_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, workers=1,
                         extra_env={"GUNICORN_TIMEOUT": "2"})
    yield stack
    stack.stop()


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            break
        data += more
    return data


@pytest.mark.timeout(60)
def test_a_chunk_slower_than_the_worker_timeout_is_received_whole(impatient_stack):
    stack = impatient_stack
    headers = auth(stack, make_user("slow-uplink", superuser=True))
    size = 4 * MiB
    path, upload_id = create(stack, headers, 2 * size)  # not complete after this chunk: no probe
    body = bytes(range(256)) * (size // 256)
    request = patch(stack, path, headers, 0, body)
    head_len = len(request) - len(body)
    pieces = 14
    step = len(body) // pieces
    began = time.monotonic()
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(request[:head_len])
        for n in range(pieces):
            end = head_len + (n + 1) * step if n < pieces - 1 else len(request)
            sock.sendall(request[head_len + n * step:end])
            time.sleep(0.5)
        answer = read_response(sock)
    assert time.monotonic() - began > 3 * 2, "the chunk must outlast the worker timeout"
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.split()[1] == b"204", answer[:500]
    assert b"\r\nUpload-Offset: %d\r\n" % size in answer, answer[:500]
    from private_video.models import Upload

    upload = Upload.objects.get(pk=upload_id)
    assert upload.offset == size
    assert staging.path_for(upload.pk).read_bytes() == body
