"""An S3 endpoint that accepts connections and never answers (a black-holed
bucket, a hung proxy) fails a storage call within the configured bounds
(AWS_S3_CONNECT_TIMEOUT / AWS_S3_READ_TIMEOUT / AWS_S3_MAX_ATTEMPTS), instead
of botocore's default of 60 s per read times 5 attempts, which held a web
worker past gunicorn's timeout."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CALL = """
import time, django
django.setup()
from django.core.files.storage import storages
storage = storages["private"]
began = time.monotonic()
try:
    storage.exists("originals/ab/cd/x.mp4")
except Exception as error:
    print(type(error).__name__, round(time.monotonic() - began, 1))
else:
    print("answered", round(time.monotonic() - began, 1))
"""


def silent_server():
    """A loopback server that accepts every connection, reads, and says nothing."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)  # kept open, never answered

    threading.Thread(target=serve, daemon=True).start()
    return listener, accepted


def run_call(endpoint, **bounds):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cms.settings.base",
        "STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "private-videos",
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "key",
        "AWS_SECRET_ACCESS_KEY": "secret",
        **bounds,
    }
    env.pop("DATABASE_URL", None)
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CALL], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split(), time.monotonic() - began


def test_a_bucket_that_never_answers_fails_the_call_within_the_bounds():
    listener, accepted = silent_server()
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        (outcome, seconds), _ = run_call(endpoint, AWS_S3_READ_TIMEOUT="1", AWS_S3_MAX_ATTEMPTS="2")
        assert outcome == "ReadTimeoutError", outcome
        # Two attempts of 1 s each, plus the standard mode's short backoff.
        assert 2 <= float(seconds) < 8, seconds
        assert len(accepted) == 2  # the second attempt was made, and no third
    finally:
        listener.close()


def test_the_defaults_are_bounded_too():
    """Without the variables: 20 s reads, 3 attempts (botocore alone: 60 s, 5)."""
    code = (
        "import django; django.setup()\n"
        "from django.core.files.storage import storages\n"
        "config = storages['private'].connection.meta.client.meta.config\n"
        "print(config.connect_timeout, config.read_timeout, config.retries, config.signature_version,"
        " config.s3)\n"
    )
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "cms.settings.base", "STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": "private-videos", "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_S3_ADDRESSING_STYLE": "path", "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
    }
    for name in ("AWS_S3_CONNECT_TIMEOUT", "AWS_S3_READ_TIMEOUT", "AWS_S3_MAX_ATTEMPTS", "DATABASE_URL"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (
        "5.0 20.0 {'mode': 'standard', 'total_max_attempts': 3} s3v4 {'addressing_style': 'path'}"
    ), done.stdout
