"""Resumable uploads through real nginx and gunicorn, with an independent tus
client (tuspy, from PyPI): a 1 GiB video sent in 32 MiB chunks, the
connection cut mid-way by a TCP proxy in front of nginx, then resumed from
the offset the server reports; the stored original hashes equal to the
source and the bytes sent twice are at most one chunk. Plus nginx's own
rules on the tus location: the bounded body limit and the upload gate."""

import base64
import hashlib
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.urls import reverse
from tusclient.client import TusClient

from private_video.conf import setting
from private_video.models import Upload, Video
from private_video.uploads import staging

from .helpers import make_user, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MiB = 1024 * 1024
CHUNK = 32 * MiB


class CuttingProxy:
    """A TCP proxy in front of nginx that counts the bytes the client sends
    and, once, drops the connection after ``cut_at`` of them."""

    def __init__(self, target_port, cut_at):
        self.target_port, self.cut_at = target_port, cut_at
        self.sent = 0
        self.cuts = 0
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _addr = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source, target, counted):
        try:
            while True:
                data = source.recv(MiB)
                if not data:
                    break
                if counted:
                    with self.lock:
                        cut = self.cuts == 0 and self.sent + len(data) >= self.cut_at
                        if cut:
                            data = data[: self.cut_at - self.sent]
                            self.cuts += 1
                        self.sent += len(data)
                    if cut:
                        target.sendall(data)
                        break
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.server.close()


def make_big_video(path, frames=87):
    """~1 GiB that probes as a real video: uncompressed 4K frames of noise in
    Matroska, stream-copied from /dev/urandom (no encoding: seconds)."""
    subprocess.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
        "-s", "3840x2160", "-r", "25", "-i", "/dev/urandom", "-frames:v", str(frames), "-c:v", "copy", str(path),
    ], check=True, timeout=120)
    return path


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def tus_headers(stack, user):
    session = stack_session(user)
    assert session.get(stack.url(reverse("private_video:add")), timeout=10).status_code == 200
    cookies = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    return {"Cookie": cookies, "X-CSRFToken": session.cookies["csrftoken"]}


@pytest.mark.timeout(240)
def test_a_gibibyte_resumes_after_a_cut_connection(stack, tmp_path):
    user = make_user("tus-uploader", superuser=True)
    source = make_big_video(tmp_path / "big.mkv")
    size = source.stat().st_size
    assert size > 1024 * MiB
    stored = None
    proxy = CuttingProxy(stack.port, cut_at=12 * CHUNK + CHUNK // 2)
    try:
        expected = sha256(source)
        client = TusClient(f"http://127.0.0.1:{proxy.port}{reverse('private_video:tus_create')}",
                           headers=tus_headers(stack, user))
        uploader = client.uploader(str(source), chunk_size=CHUNK, retries=5, retry_delay=1,
                                   metadata={"filename": "big.mkv", "title": "A gibibyte"})
        resumed_at = []
        get_offset = uploader.get_offset
        uploader.get_offset = lambda: resumed_at.append(get_offset()) or resumed_at[-1]
        uploader.upload()

        assert proxy.cuts == 1
        assert resumed_at, "the client never asked the server where to resume"
        # The server kept what arrived of the cut request: a resume mid-chunk.
        assert resumed_at[0] > 12 * CHUNK and resumed_at[0] % CHUNK != 0
        # Bytes sent twice: at most one chunk (plus request headers).
        assert proxy.sent - size <= CHUNK + 64 * 1024, proxy.sent - size

        video = Video.objects.get(pk=uploader.request.response_headers["upload-video"])
        upload = Upload.objects.get(video=video)
        assert upload.state == Upload.State.COMPLETE and upload.user == user
        assert video.width == 3840 and video.file_size == size and video.original_filename == "big.mkv"
        stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
        assert sha256(stored) == expected
        assert not staging.path_for(upload.pk).exists()
        # gunicorn saw the chunks as separate requests, none larger than a chunk.
        patches = [line for line in stack.log_text("gunicorn-access").splitlines() if '"PATCH ' in line]
        assert len(patches) >= size // CHUNK
    finally:
        proxy.close()
        source.unlink(missing_ok=True)
        if stored:
            stored.unlink(missing_ok=True)


def test_nginx_bounds_the_chunk_and_gates_the_tus_urls(stack):
    owner = make_user("tus-owner", superuser=True)
    headers = {**tus_headers(stack, owner), "Tus-Resumable": "1.0.0"}
    create_url = stack.url(reverse("private_video:tus_create"))
    response = requests.post(create_url, headers={**headers, "Upload-Length": str(200 * MiB)}, timeout=10)
    assert response.status_code == 201, response.text
    location = stack.url(response.headers["Location"])

    # A body bigger than one chunk is refused by nginx from its Content-Length,
    # before a byte reaches Django.
    limit = setting("TUS_CHUNK_SIZE")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        path = response.headers["Location"]
        request = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: 0\r\nTus-Resumable: 1.0.0\r\nCookie: {headers['Cookie']}\r\n"
            f"X-CSRFToken: {headers['X-CSRFToken']}\r\nContent-Length: {limit + 2 * MiB}\r\n\r\n"
        )
        sock.sendall(request.encode())
        assert sock.recv(4096).split(b"\r\n", 1)[0].split()[1] == b"413"
    assert requests.head(location, headers=headers, timeout=10).headers["Upload-Offset"] == "0"

    # A chunk within the limit streams through.
    body = os.urandom(3 * MiB)
    response = requests.patch(location, data=body, timeout=30, headers={
        **headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(len(body))

    # Someone signed in without upload rights is stopped by the gate, before the body.
    outsider = make_user("tus-outsider")
    outsider_headers = {**tus_headers_unprivileged(stack, outsider), "Tus-Resumable": "1.0.0"}
    response = requests.patch(location, data=b"x" * 10, timeout=10, headers={
        **outsider_headers, "Upload-Offset": str(len(body)), "Content-Type": "application/offset+octet-stream"})
    assert response.status_code == 403 and "permission to upload" in response.text
    # Another uploader's id is unknown to a second uploader.
    other = make_user("tus-other", superuser=True)
    other_headers = {**tus_headers(stack, other), "Tus-Resumable": "1.0.0"}
    assert requests.head(location, headers=other_headers, timeout=10).status_code == 404
    assert requests.head(location, headers=headers, timeout=10).headers["Upload-Offset"] == str(len(body))
    assert requests.delete(location, headers=headers, timeout=10).status_code == 204


def tus_headers_unprivileged(stack, user):
    session = stack_session(user)
    return {"Cookie": "; ".join(f"{c.name}={c.value}" for c in session.cookies), "X-CSRFToken": "x" * 32}


def test_spliced_chunks_are_checked_against_their_checksum(stack):
    """Through gunicorn the body is spliced to disk and its checksum computed
    from the file afterwards: a wrong one keeps nothing of the request (460),
    a right one keeps all of it; a request cut short keeps what arrived."""
    owner = make_user("tus-checksum", superuser=True)
    headers = {**tus_headers(stack, owner), "Tus-Resumable": "1.0.0"}
    body = os.urandom(5 * MiB + 17)
    response = requests.post(stack.url(reverse("private_video:tus_create")),
                             headers={**headers, "Upload-Length": str(3 * len(body))}, timeout=10)
    assert response.status_code == 201, response.text
    location = stack.url(response.headers["Location"])
    upload_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    patch_headers = {**headers, "Content-Type": "application/offset+octet-stream"}

    def checksum(data):
        return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()

    wrong = requests.patch(location, data=body, timeout=30, headers={
        **patch_headers, "Upload-Offset": "0", "Upload-Checksum": checksum(body[:-1])})
    assert wrong.status_code == 460 and wrong.headers["Upload-Offset"] == "0"
    assert staging.size(upload_id) == 0
    right = requests.patch(location, data=body, timeout=30, headers={
        **patch_headers, "Upload-Offset": "0", "Upload-Checksum": checksum(body)})
    assert right.status_code == 204 and right.headers["Upload-Offset"] == str(len(body))

    # Half a chunk, then the connection is cut: the half stays, and is what HEAD reports.
    path = response.headers["Location"]
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall((
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {len(body)}\r\nTus-Resumable: 1.0.0\r\nCookie: {headers['Cookie']}\r\n"
            f"X-CSRFToken: {headers['X-CSRFToken']}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body[: 3 * MiB])
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while staging.size(upload_id) != len(body) + 3 * MiB and time.monotonic() < deadline:
        time.sleep(0.1)
    head = requests.head(location, headers=headers, timeout=10)
    assert head.headers["Upload-Offset"] == str(len(body) + 3 * MiB)
    assert staging.path_for(upload_id).read_bytes() == body + body[: 3 * MiB]
    assert requests.delete(location, headers=headers, timeout=10).status_code == 204
