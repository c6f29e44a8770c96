"""The stack `make run` starts (nginx in front of gunicorn, optionally the
task worker), started for tests on free loopback ports with the shipped
config, and stopped afterwards."""

import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nginx_binary():
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.path.exists(candidate):
            return candidate
    return "nginx"


class Stack:
    def __init__(self, root, *, database_url, env=None, with_worker=False, workers=2,
                 render_args=(), scheme="http"):
        self.root = Path(root)
        self.port = free_port()
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        # Extra `render_nginx_config` options, e.g. TLS (see test_nginx_tls).
        self.render_args = list(render_args)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "cms.settings.base",
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_BIND": f"unix:{self.root / 'gunicorn.sock'}",
            "GUNICORN_ACCESS_LOG": str(self.root / "gunicorn-access.log"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.with_worker = with_worker
        self.processes = {}
        self.logs = {}

    def manage(self, *args, check=True):
        return subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=REPO, env=self.env, check=check, capture_output=True, text=True, timeout=300,
        )

    def _spawn(self, name, cmd):
        # Append: nginx writes access (stdout) and errors (stderr) at their own
        # offsets into the same file; "w" would let one overwrite the other.
        log = open(self.root / f"{name}.log", "a")
        self.logs[name] = log
        self.processes[name] = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self, timeout=60):
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "nginx" / "nginx.conf"
        # gunicorn (and the workers) boot while manage.py renders nginx's
        # config: two Django start-ups at once instead of one after the other
        # (~2 s less per stack). Only nginx needs the rendered file.
        self._spawn("gunicorn", [str(VENV_BIN / "gunicorn"), "--config", "deploy/gunicorn.conf.py"])
        if self.with_worker:
            self._spawn("worker", [
                str(VENV_BIN / "python"), "manage.py", "db_worker",
                "--queue-name", "*", "--interval", "0.2", "--no-startup-delay",
            ])
            # Transcode jobs have their own task backend and worker (Procfile "transcoder").
            self._spawn("transcoder", [
                str(VENV_BIN / "python"), "manage.py", "transcoding_worker",
                "--interval", "0.2", "--no-startup-delay",
            ])
        self.manage(
            "render_nginx_config",
            "--listen", f"127.0.0.1:{self.port}",
            "--upstream", f"unix:{self.root / 'gunicorn.sock'}",
            "--runtime-dir", str(self.root / "nginx"),
            "--output", str(conf),
            # Workers as root: the test data lives in 0700 pytest folders.
            *(["--user", "root"] if os.geteuid() == 0 else []),
            *self.render_args,
        )
        self.nginx_conf = conf
        self._spawn("nginx", [
            _nginx_binary(), "-p", str(self.root / "nginx"), "-e", "stderr",
            "-c", str(conf), "-g", "daemon off;",
        ])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.log_text(name)}")
            try:
                with warnings.catch_warnings():
                    # Readiness only: TLS stacks use a throwaway self-signed certificate.
                    warnings.simplefilter("ignore")
                    ready = requests.get(self.base_url + "/login/", timeout=2, verify=False)
                if ready.status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"stack did not answer in {timeout}s:\n{self.log_text('gunicorn')}")

    def log_text(self, name):
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        for name, proc in reversed(list(self.processes.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.processes.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for log in self.logs.values():
            log.close()
        self.processes.clear()

    def url(self, path):
        return self.base_url + path
