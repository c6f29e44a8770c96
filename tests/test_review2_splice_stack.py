"""Review 2, hostile: the tus PATCH body spliced from gunicorn's client socket
(private_video/uploads/staging.py write_body / _splice_body) attacked with
raw sockets through real nginx and gunicorn, and straight at gunicorn's
socket with a keep-alive (gthread) worker, where a miscounted body would
turn the rest of it into a following request (request smuggling)."""

import base64
import hashlib
import os
import socket
import threading
import time

import pytest
import requests
from django.urls import reverse

from private_video.uploads import staging

from .conftest import _start_stack
from .helpers import make_user, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(scope="module")
def keepalive_stack(tmp_path_factory, stack_database_url, static_root):
    """One gthread worker that keeps connections open: gunicorn parses the
    bytes after a PATCH body as the next request on the same socket."""
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, workers=1, extra_env={
        "GUNICORN_CMD_ARGS": "--worker-class gthread --threads 4 --keep-alive 10"})
    yield stack
    stack.stop()


def auth(stack, user):
    session = stack_session(user)
    assert session.get(stack.url(reverse("private_video:add")), timeout=10).status_code == 200
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return {"Cookie": cookies, "X-CSRFToken": session.cookies["csrftoken"], "Tus-Resumable": "1.0.0"}


def create(stack, headers, length):
    response = requests.post(stack.url(reverse("private_video:tus_create")),
                             headers={**headers, "Upload-Length": str(length)}, timeout=10)
    assert response.status_code == 201, response.text
    path = response.headers["Location"]
    return path, path.rstrip("/").rsplit("/", 1)[-1]


def checksum(data):
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def patch(stack, path, headers, offset, body, *, length=None, extra=()):
    lines = [
        f"PATCH {path} HTTP/1.1", f"Host: 127.0.0.1:{stack.port}",
        "Content-Type: application/offset+octet-stream", f"Upload-Offset: {offset}",
        f"Tus-Resumable: 1.0.0", f"Cookie: {headers['Cookie']}", f"X-CSRFToken: {headers['X-CSRFToken']}",
        f"Content-Length: {len(body) if length is None else length}", *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def head(stack, path, headers):
    return (f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nTus-Resumable: 1.0.0\r\n"
            f"Cookie: {headers['Cookie']}\r\n\r\n").encode()


class Responses:
    """HTTP/1.1 responses read one after the other from a raw socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError(self.buf)
        self.buf += data

    def next(self, head_request=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        top, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = top.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_request else int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return int(status_line.split()[1]), headers, body

    def nothing_more(self, wait=0.5):
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, socket.timeout):
            data = b""
        finally:
            self.sock.settimeout(10)
        return self.buf + data == b""


def unix_connection(stack):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(stack.root / "gunicorn.sock"))
    return sock


# A body that is itself a well-formed request: if gunicorn ever stopped short
# of Content-Length, this would be answered as a request of its own.
SMUGGLED = b"GET /smuggled-review2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [700, 3 * MiB + 11], ids=["read-ahead", "spliced"])
def test_pipelined_patches_on_one_keepalive_connection_stay_in_step(keepalive_stack, size):
    """Four requests in one send on one connection to gunicorn: each body is
    taken exactly (nothing of the next request, nothing left over), a wrong
    checksum keeps none of its bytes, and every request gets its own answer."""
    stack = keepalive_stack
    headers = auth(stack, make_user(f"pipeliner-{size}", superuser=True))
    path, upload_id = create(stack, headers, 3 * size)
    first = (SMUGGLED * (size // len(SMUGGLED) + 1))[:size]
    second = os.urandom(size)
    sent = (
        patch(stack, path, headers, 0, first)
        + patch(stack, path, headers, size, second, extra=[f"Upload-Checksum: {checksum(second[:-1])}"])
        + patch(stack, path, headers, size, second, extra=[f"Upload-Checksum: {checksum(second)}"])
        + head(stack, path, headers)
    )
    with unix_connection(stack) as sock:
        sender = threading.Thread(target=sock.sendall, args=(sent,))
        sender.start()
        answers = Responses(sock)
        statuses = [answers.next()[:2] for _ in range(3)]
        last = answers.next(head_request=True)
        sender.join(10)
        assert [status for status, _ in statuses] == [204, 460, 204]
        assert [h["upload-offset"] for _, h in statuses] == [str(size), str(size), str(2 * size)]
        assert last[0] == 200 and last[1]["upload-offset"] == str(2 * size)
        assert answers.nothing_more()
    assert staging.path_for(upload_id).read_bytes() == first + second
    assert "smuggled-review2" not in stack.log_text("gunicorn-access")


@pytest.mark.timeout(60)
def test_a_body_cut_short_on_a_keepalive_connection_keeps_exactly_what_arrived(keepalive_stack):
    """Headers announce 2 MiB, 1 MiB + 5 arrive, then the client half-closes:
    the staged file holds exactly those bytes, and nothing is taken as a request."""
    stack = keepalive_stack
    headers = auth(stack, make_user("half-closer", superuser=True))
    path, upload_id = create(stack, headers, 4 * MiB)
    body = SMUGGLED * (MiB // len(SMUGGLED)) + b"x" * 5
    with unix_connection(stack) as sock:
        sock.sendall(patch(stack, path, headers, 0, body, length=2 * MiB))
        sock.shutdown(socket.SHUT_WR)
        status, answer, _ = Responses(sock).next()
        assert status == 400 and answer["upload-offset"] == str(len(body))
    assert staging.path_for(upload_id).read_bytes() == body
    assert "smuggled-review2" not in stack.log_text("gunicorn-access")


@pytest.mark.timeout(60)
def test_a_second_writer_gets_423_and_cannot_interleave(stack):
    """Through nginx: one PATCH holds the upload mid-body while a second one,
    for the same offset, is refused (423) without a byte of it written; the
    first then completes and the file is exactly its body."""
    headers = auth(stack, make_user("interleaver", superuser=True))
    path, upload_id = create(stack, headers, 8 * MiB)
    first, second = b"A" * (4 * MiB), b"B" * (4 * MiB)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as slow:
        slow.sendall(patch(stack, path, headers, 0, first[:MiB], length=len(first)))
        deadline = time.monotonic() + 10
        while (staging.size(upload_id) or 0) < MiB and time.monotonic() < deadline:
            time.sleep(0.05)
        assert staging.size(upload_id) == MiB
        slow.settimeout(1)
        try:
            early = slow.recv(65536)
        except (TimeoutError, socket.timeout):
            early = b""
        slow.settimeout(20)
        assert early == b"", early
        with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as other:
            other.sendall(patch(stack, path, headers, 0, second))
            status, answer, _body = Responses(other).next()
        assert status == 423, (status, answer, _body)
        assert staging.path_for(upload_id).read_bytes() == first[:MiB]
        slow.sendall(first[MiB:])
        status, answer, _ = Responses(slow).next()
    assert status == 204 and answer["upload-offset"] == str(len(first))
    assert staging.path_for(upload_id).read_bytes() == first


@pytest.mark.timeout(60)
def test_a_checksummed_body_cut_short_keeps_nothing(stack):
    """With Upload-Checksum, a body cut mid-way cannot be verified: none of
    its bytes stay (the spliced path must not keep what it wrote)."""
    headers = auth(stack, make_user("cut-checksum", superuser=True))
    path, upload_id = create(stack, headers, 8 * MiB)
    body = os.urandom(4 * MiB)
    with socket.create_connection(("127.0.0.1", stack.port), timeout=20) as sock:
        sock.sendall(patch(stack, path, headers, 0, body[: 3 * MiB],
                           length=len(body), extra=[f"Upload-Checksum: {checksum(body)}"]))
        deadline = time.monotonic() + 10
        while (staging.size(upload_id) or 0) < 3 * MiB and time.monotonic() < deadline:
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while staging.size(upload_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert staging.size(upload_id) == 0
    answer = requests.head(stack.url(path), headers=headers, timeout=10)
    assert answer.headers["Upload-Offset"] == "0"


@pytest.mark.timeout(60)
def test_a_body_longer_than_the_upload_writes_nothing_and_the_connection_recovers(keepalive_stack):
    """Content-Length past Upload-Length is a 413 before a byte is written; on
    a keep-alive connection the refused body is skipped, not parsed as
    requests, and the next PATCH on the connection is answered normally."""
    stack = keepalive_stack
    headers = auth(stack, make_user("overflower", superuser=True))
    path, upload_id = create(stack, headers, 2000)
    too_long = (SMUGGLED * 40)[:2001]
    right = os.urandom(1000)
    with unix_connection(stack) as sock:
        sock.sendall(patch(stack, path, headers, 0, too_long) + patch(stack, path, headers, 0, right))
        answers = Responses(sock)
        status, answer, _ = answers.next()
        assert status == 413 and answer["upload-offset"] == "0"
        status, answer, _ = answers.next()
        assert status == 204, status
        assert answer["upload-offset"] == "1000"
    assert "smuggled-review2" not in stack.log_text("gunicorn-access")
