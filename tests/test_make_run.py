"""`make run` as a newcomer runs it: the whole stack on a loopback port,
sign-in instructions printed, Ctrl-C stops everything, and a second run
reuses what the first one made."""

import os
import pwd
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from .stack import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.standalone]

# Variables the test process sets for itself that `make run` must not inherit.
_TEST_ONLY_ENV = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CMS_DATA_DIR", "STATIC_ROOT",
                  "DJANGO_SUPERUSER_PASSWORD", "DJANGO_SUPERUSER_USERNAME")


class MakeRun:
    def __init__(self, data_dir, port):
        env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY_ENV}
        env["CMS_DATA_DIR"] = str(data_dir)
        self.port = port
        self.output = []
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self):
        return "".join(self.output)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_until_serving(self, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"make run exited early:\n{self.text[-4000:]}"
            try:
                if requests.get(self.url("/login/"), timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"make run did not serve within {timeout}s:\n{self.text[-4000:]}")

    def ctrl_c(self, timeout=30):
        if self.proc.poll() is not None:
            return  # already gone; the failing assertion says why
        # A terminal's Ctrl-C signals the whole foreground process group.
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"make run ignored Ctrl-C:\n{self.text[-4000:]}")
        time.sleep(0.5)
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        raise AssertionError("processes were left running after Ctrl-C")


def sign_in(run, username, password):
    session = requests.Session()
    page = session.get(run.url("/admin/login/"), timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        run.url("/admin/login/"),
        data={"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"},
        headers={"Referer": run.url("/admin/login/")},
        timeout=10,
    )
    return session, response


@pytest.fixture
def data_dir():
    """A data folder nginx's workers can reach when make run runs as root
    (pytest's own temporary folders are 0700 all the way down)."""
    path = Path(tempfile.mkdtemp(prefix="pv-make-run-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nginx_processes(data_dir):
    """{pid: (uid, gid, role)} of the nginx started for ``data_dir``: its master and workers."""
    def status(pid):
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0]), int(fields["PPid"])

    found, masters = {}, set()
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if entry.name.isdigit() and cmdline.startswith("nginx: master") and str(data_dir) in cmdline:
                masters.add(int(entry.name))
        except OSError:
            continue
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            uid, gid, parent = status(entry.name)
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(entry.name) in masters:
            found[int(entry.name)] = (uid, gid, "master")
        elif parent in masters and cmdline.startswith("nginx: worker"):
            found[int(entry.name)] = (uid, gid, "worker")
    return found


def assert_files_private(data_dir):
    """No file of the data folder is world-readable; the secrets are the service user's alone."""
    def mode_of(path):
        # The stack is running: SQLite's -shm/-wal and temp files come and go
        # while the folder is walked. A file that vanished has no mode to leak.
        try:
            return path.lstat()
        except FileNotFoundError:
            return None

    for path in [data_dir, *data_dir.rglob("*")]:
        info = mode_of(path)
        if info is None or stat.S_ISSOCK(info.st_mode):
            continue  # the gunicorn socket: reachable only through run/ (0750)
        mode = stat.S_IMODE(info.st_mode)
        assert mode & 0o007 == 0, (str(path), oct(mode))
    for secret in ("nginx/nginx.conf", "db.sqlite3", "secret_key"):
        mode = stat.S_IMODE((data_dir / secret).stat().st_mode)
        assert mode == 0o600, (secret, oct(mode))
    for wal in data_dir.glob("db.sqlite3-*"):
        info = mode_of(wal)
        assert info is None or stat.S_IMODE(info.st_mode) == 0o600, wal
    assert any((data_dir / "private").rglob("*.mp4")), "no private video files to check"


def assert_nginx_workers_unprivileged(data_dir):
    processes = nginx_processes(data_dir)
    workers = [info for info in processes.values() if info[2] == "worker"]
    assert workers, processes
    if os.geteuid() == 0:
        www = pwd.getpwnam("www-data")
        assert all((uid, gid) == (www.pw_uid, www.pw_gid) for uid, gid, _ in workers), processes
    else:
        assert all(uid == os.geteuid() for uid, _, _ in workers), processes


def assert_demo_video_plays(run, session, data_dir):
    """Bytes of the original through X-Accel, and the poster (a rendition the
    transcoder moved into place) through the signed nginx location."""
    html = session.get(run.url("/demo-private-video/"), timeout=10).text
    page_id, video_id = re.search(r'data-playback-url="/playback/(\d+)/(\d+)/"', html).groups()
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        name = db.execute("SELECT file FROM private_video_video WHERE id = ?", (video_id,)).fetchone()[0]
    original = (data_dir / "private" / name).read_bytes()
    response = session.get(run.url(f"/watch/{page_id}/{video_id}/original/"),
                           headers={"Range": "bytes=0-65535"}, timeout=10)
    assert response.status_code == 206, (response.status_code, response.text[:300])
    assert response.content == original[:65536]
    deadline = time.monotonic() + 180
    while True:
        info = session.get(run.url(f"/playback/{page_id}/{video_id}/"), timeout=10).json()
        if info.get("poster"):
            break
        assert time.monotonic() < deadline, (info, run.text[-3000:])
        time.sleep(1)
    # Signed for this browser's viewer cookie (set by the playback JSON): the
    # session's own jar gets the poster, the same URL without the cookie does not.
    poster = session.get(run.url(info["poster"]), timeout=10)
    assert poster.status_code == 200 and poster.content[:3] == b"\xff\xd8\xff", poster.status_code
    assert requests.get(run.url(info["poster"]), timeout=10).status_code == 403


def test_make_run_serves_stops_and_is_idempotent(data_dir):
    port = free_port()
    run = MakeRun(data_dir, port)
    try:
        run.wait_until_serving()
        match = re.search(r"Sign in as '(\w+)' with password '([^']+)'", run.text)
        assert match, run.text[-3000:]
        username, password = match.groups()
        assert f"http://127.0.0.1:{port}/admin/" in run.text
        assert "Created admin account" in run.text and "Created demo page" in run.text

        home = requests.get(run.url("/"), timeout=10)
        assert home.status_code == 200 and "Demo: a private video" in home.text
        # The demo page is private: anonymous visitors are sent to sign in.
        demo = requests.get(run.url("/demo-private-video/"), allow_redirects=False, timeout=10)
        assert demo.status_code == 302 and demo.headers["Location"].startswith("/login/")
        # Static files come from nginx, not Django.
        css = requests.get(run.url("/static/cms/css/site.css"), timeout=10)
        assert css.status_code == 200 and css.headers["Server"] == "nginx"

        session, response = sign_in(run, username, password)
        assert response.url == run.url("/admin/"), response.url
        listing = session.get(run.url("/admin/videos/"), timeout=10)
        assert "Demo clip (test pattern)" in listing.text
        assert session.get(run.url("/demo-private-video/"), timeout=10).status_code == 200

        # Files and processes: nginx's workers are not root, yet still serve
        # the private files; no file is world-readable; the secrets are 0600.
        assert_demo_video_plays(run, session, data_dir)
        assert_nginx_workers_unprivileged(data_dir)
        assert_files_private(data_dir)
    finally:
        run.ctrl_c()
    with pytest.raises(requests.ConnectionError):
        requests.get(run.url("/"), timeout=2)
    assert (data_dir / "db.sqlite3").exists()

    again = MakeRun(data_dir, port)
    try:
        again.wait_until_serving()
        assert "Created admin account" not in again.text
        assert "Created demo page" not in again.text
        assert f"Sign in as '{username}' with password '{password}'" in again.text
        session, response = sign_in(again, username, password)
        assert response.url == again.url("/admin/")
    finally:
        again.ctrl_c()
