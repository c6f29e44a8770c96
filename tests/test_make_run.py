"""`make run` as a newcomer runs it: the whole stack on a loopback port,
sign-in instructions printed, Ctrl-C stops everything, and a second run
reuses what the first one made."""

import os
import re
import signal
import subprocess
import threading
import time

import pytest
import requests

from .stack import REPO, free_port

pytestmark = pytest.mark.integration

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


def test_make_run_serves_stops_and_is_idempotent(tmp_path):
    data_dir = tmp_path / "var"
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
