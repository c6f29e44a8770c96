import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings

from transcoding.testmedia import make_test_video

from .stack import REPO, Stack

OUTPUT_DIR = REPO / "test-output"


# make test runs the suite as two pytest processes side by side (docs/testing.md,
# "How long it takes"): --layer=stack runs the tests marked integration or
# browser (the shared stacks, and the standalone ones that start their own
# site: make run, a fresh install), --layer=other everything else: the
# Django-level tests, and the stack tests whose stack is their own and whose
# time goes on a clock (tokens that must run out, RQ workers killed and
# replaced), so that the two processes take about as long.
CLOCK_BOUND_STACKS = {"short_token_stack", "rq_stack"}


def pytest_addoption(parser):
    parser.addoption("--layer", choices=("stack", "other"), help="run only this half of the suite (make test)")


def in_stack_layer(item):
    on_a_stack = item.get_closest_marker("integration") or item.get_closest_marker("browser")
    return bool(on_a_stack) and not (CLOCK_BOUND_STACKS & set(item.fixturenames))


def pytest_collection_modifyitems(config, items):
    layer = config.getoption("layer")
    if not layer:
        return
    keep, drop = [], []
    for item in items:
        (keep if in_stack_layer(item) == (layer == "stack") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def admin_client(client):
    """A client signed in as a superuser ("boss"), who is ``client.user``
    (pytest-django's own admin_client, with the user at hand)."""
    from .helpers import make_user

    user = make_user("boss", superuser=True)
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def sample_video(media_dir):
    """A real 4 s H.264/AAC MP4, made with ffmpeg's lavfi sources."""
    return make_test_video(media_dir / "sample.mp4", duration=4)


@pytest.fixture(scope="session")
def static_root(tmp_path_factory):
    """collectstatic once per run, for stacks (the production storage needs its manifest)."""
    root = tmp_path_factory.mktemp("static")
    from django.core.management import call_command
    from django.test import override_settings

    storages = {**settings.STORAGES, "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}
    with override_settings(STATIC_ROOT=str(root), STORAGES=storages):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


@pytest.fixture(scope="session")
def stack_database_url(django_db_setup):
    """The test database (after pytest-django created it), as a URL for gunicorn."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        assert os.path.exists(db["NAME"]), db["NAME"]
        return f"sqlite:///{db['NAME']}"
    from urllib.parse import quote

    scheme = {"django.db.backends.postgresql": "postgres"}[db["ENGINE"]]
    auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    return f"{scheme}://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _start_stack(tmp_path_factory, stack_database_url, static_root, extra_env=None, **kwargs):
    stack = Stack(
        tmp_path_factory.mktemp("stack"),
        database_url=stack_database_url,
        env={"STATIC_ROOT": str(static_root), **(extra_env or {})},
        **kwargs,
    )
    try:
        stack.start()
    except Exception:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory, stack_database_url, static_root):
    """nginx + gunicorn as `make run` starts them, on a free loopback port,
    sharing the test database file and data folder with this process."""
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root)
    yield stack
    stack.stop()


# Stacks with one setting changed, shared by every module that needs that
# setting (each was a module's own, started and stopped once per module).
# Tests on them change no stack state; a test that does (kills a worker,
# fills a disk) starts its own.

SMALL_UPLOAD_LIMIT = "1M"
SHORT_TOKEN_LIFETIME = 8


@pytest.fixture(scope="session")
def small_limit_stack(tmp_path_factory, stack_database_url, static_root):
    """A stack whose upload limit is SMALL_UPLOAD_LIMIT (Django's and nginx's)."""
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root,
                         extra_env={"PRIVATE_VIDEO_MAX_UPLOAD_SIZE": SMALL_UPLOAD_LIMIT})
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def short_token_stack(tmp_path_factory, stack_database_url, static_root):
    """A stack whose signed URLs live SHORT_TOKEN_LIFETIME seconds."""
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root,
                         extra_env={"MEDIA_ACCESS_TOKEN_LIFETIME": str(SHORT_TOKEN_LIFETIME)})
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A throwaway self-signed certificate for 127.0.0.1: (cert, key) paths."""
    import subprocess

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="session")
def tls_stack(tmp_path_factory, stack_database_url, static_root, certificate):
    """The production shape: HTTPS with HTTP/2 on ``port``, plain HTTP
    redirecting on ``http_port`` (test_nginx_tls, test_attack_probes)."""
    from .stack import free_port

    cert, key = certificate
    http_port = free_port()
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={"DJANGO_BEHIND_TLS_PROXY": "1"},
        render_args=["--server-name", "127.0.0.1", "--tls-certificate", str(cert),
                     "--tls-certificate-key", str(key), "--http-listen", f"127.0.0.1:{http_port}"],
        scheme="https",
    )
    stack.http_port = http_port
    yield stack
    stack.stop()


@pytest.fixture
def output_dir(request):
    """Where a test leaves artefacts (screenshots on failure)."""
    path = OUTPUT_DIR / request.node.name.replace("/", "_")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


# storage: S3 ------------------------------------------------------------------

S3_BUCKET = "private-video-test"
S3RVER = REPO / "tests" / "s3rver" / "node_modules" / "s3rver" / "bin" / "s3rver.js"


@contextmanager
def _s3_process(name, folder, command, ready_path):
    """Run an S3 server (``command`` takes the port) on a free loopback port
    until it answers ``ready_path``; yield its endpoint; stop it after."""
    import subprocess
    import time

    import requests

    from .stack import free_port

    port = free_port()
    log_path = folder / f"{name}.log"
    log = open(log_path, "w")
    server = subprocess.Popen(command(port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n" + log_path.read_text())
            try:
                requests.get(endpoint + ready_path, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer in 30 s")
                time.sleep(0.1)
        yield endpoint
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=5)
        log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """s3rver (npm, installed by `make test` into tests/s3rver/) on a free
    loopback port: the S3 protocol over HTTP, one bucket, and a server that
    refuses a presigned URL whose signature does not match the request
    (SignatureDoesNotMatch). Yields the environment a stack needs for
    STORAGE=s3; stopped after the session.

    s3rver checks SigV2 presigned URLs only, so stacks run with
    tests.s3rver_settings (the URLs nginx gets are presigned with SigV2;
    everything else is production's). s3rver has no ACLs: it lets anyone
    read, so bucket privacy is not tested here."""
    if not S3RVER.exists():
        raise RuntimeError(f"{S3RVER} is missing: run `make test` (or `cd tests/s3rver && npm ci`)")
    folder = tmp_path_factory.mktemp("s3rver")
    command = lambda port: [  # noqa: E731
        "node", str(S3RVER), "--directory", str(folder / "data"), "--address", "127.0.0.1",
        "--port", str(port), "--no-vhost-buckets",
    ]
    with _s3_process("s3rver", folder, command, "/") as endpoint:
        env = {
            "STORAGE": "s3",
            "DJANGO_SETTINGS_MODULE": "tests.s3rver_settings",
            "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            # s3rver's one account.
            "AWS_ACCESS_KEY_ID": "S3RVER",
            "AWS_SECRET_ACCESS_KEY": "S3RVER",
        }
        s3_client(env).create_bucket(Bucket=S3_BUCKET)
        yield env


@pytest.fixture(scope="session")
def moto_s3_server(tmp_path_factory):
    """moto's standalone S3 server on a free loopback port, with one private
    bucket: for what s3rver gets wrong (suffix byte ranges, anonymous reads).
    moto checks no signatures; s3_server (s3rver) does. Yields the
    environment a stack needs for STORAGE=s3; stopped after the session."""
    import sys

    moto = str(Path(sys.executable).parent / "moto_server")
    command = lambda port: [moto, "-H", "127.0.0.1", "-p", str(port)]  # noqa: E731
    with _s3_process("moto", tmp_path_factory.mktemp("moto"), command, "/moto-api/") as endpoint:
        env = {
            "STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": S3_BUCKET,
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
        }
        client = s3_client(env)
        client.create_bucket(Bucket=S3_BUCKET)
        client.put_public_access_block(Bucket=S3_BUCKET, PublicAccessBlockConfiguration={
            "BlockPublicAcls": True, "IgnorePublicAcls": True,
            "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
        })
        yield env


def s3_client(env, signature_version="s3v4"):
    """A boto3 client for the test bucket; signature_version="s3" presigns as the stack does."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        region_name=env["AWS_S3_REGION_NAME"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version=signature_version),
    )
