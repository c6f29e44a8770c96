"""The bundled nginx config, rendered by `manage.py render_nginx_config` the
way `make run` and production render it, passes `nginx -t` with local files
and with STORAGE=s3 (an IP endpoint, and AWS by host name over TLS); plus
the S3 pieces that need no server: the one X-Accel value and the token
re-check of signed rendition URLs."""

import os
import pwd
import re
import stat
import subprocess
import time

import pytest
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation

from media_access import s3
from media_access.responses import nginx_source
from media_access.tokens import secure_link_token
from media_access.views.signed import token_allows

from .stack import REPO, VENV_BIN, _nginx_binary

S3_ENV = {
    "STORAGE": "s3",
    "AWS_STORAGE_BUCKET_NAME": "private-video",
    "AWS_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "AWS_S3_REGION_NAME": "us-east-1",
}
AWS_ENV = {
    "STORAGE": "s3",
    "AWS_STORAGE_BUCKET_NAME": "private-video",
    "AWS_S3_REGION_NAME": "eu-west-1",
    "MEDIA_ACCESS_S3_RESOLVER": "127.0.0.53",
}


def render(tmp_path, env):
    runtime = tmp_path / "nginx"
    runtime.mkdir()
    conf = runtime / "nginx.conf"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STORAGE"))}
    subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "render_nginx_config", "--listen", "127.0.0.1:18080",
         "--runtime-dir", str(runtime), "--output", str(conf)],
        cwd=REPO, env={**clean, "DJANGO_SETTINGS_MODULE": "cms.settings.base",
                       "CMS_DATA_DIR": str(tmp_path), **env},
        check=True, capture_output=True, text=True, timeout=120,
    )
    checked = subprocess.run(
        [_nginx_binary(), "-t", "-p", str(runtime), "-c", str(conf), "-e", "stderr"],
        capture_output=True, text=True, timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr
    # It holds the token secret: the owner's alone.
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    return conf.read_text()


def s3_block(text):
    return text.split("# --- storage: S3", 1)[1].split("# --- end storage: S3", 1)[0]


def test_local_config_passes_nginx_t_and_has_no_bucket(tmp_path):
    text = render(tmp_path, {"STORAGE": "local"})
    assert "storage: S3" not in text and "proxy_hide_header" not in text
    assert re.search(r"location \^~ /_private/ \{\s+internal;", text)


def test_workers_never_run_as_root_unless_asked(tmp_path):
    text = render(tmp_path, {"STORAGE": "local"})
    users = re.findall(r"^user\s+([^;]+);", text, re.M)
    if os.geteuid() == 0:
        assert users == ["www-data"]
        assert pwd.getpwnam("www-data").pw_uid != 0
    else:
        assert users == []  # nginx cannot switch users; the workers are the caller


def test_an_existing_config_file_is_made_private_when_rendered_again(tmp_path):
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.parent.mkdir()
    conf.write_text("# world-readable leftover\n")
    conf.chmod(0o644)
    subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "render_nginx_config", "--output", str(conf)],
        cwd=REPO, env={**os.environ, "DJANGO_SETTINGS_MODULE": "cms.settings.base", "CMS_DATA_DIR": str(tmp_path)},
        check=True, capture_output=True, text=True, timeout=120,
    )
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "secure_link_md5" in conf.read_text()


def test_s3_config_passes_nginx_t(tmp_path):
    text = render(tmp_path, S3_ENV)
    block = s3_block(text)
    assert re.search(r"location \^~ /_s3/ \{\s+internal;", block)
    assert "proxy_pass http://127.0.0.1:9000/$s3_object$is_args$args;" in block
    assert "proxy_set_header Host 127.0.0.1:9000;" in block
    for line in ('proxy_set_header Cookie "";', 'proxy_set_header Authorization "";',
                 "proxy_pass_request_headers off;", "proxy_set_header Range $http_range;",
                 "proxy_set_header If-Range $http_if_range;", "proxy_buffering off;",
                 "proxy_intercept_errors on;", "proxy_hide_header Content-Type;",
                 "proxy_hide_header Content-Disposition;", "proxy_hide_header Cache-Control;",
                 "proxy_hide_header x-amz-request-id;"):
        assert line in block, line
    # No resolver for an IP, no request-derived upstream, nothing about the request's URI.
    assert "resolver" not in block and "$request_uri" not in block and "$http_host" not in block
    # S3 redirects (a Location with a signed URL) and errors never reach the client as they are.
    assert re.search(r"error_page 301 302 303 307 308 .*= @s3_unavailable;", block)
    assert "proxy_hide_header Location;" in block
    # Signed rendition URLs go to Django (which presigns) instead of a local alias.
    hls = text.split("--- media_access: HLS", 1)[1].split("--- end media_access: HLS", 1)[0]
    assert "proxy_pass http://django_app;" in hls and "alias" not in hls


def test_s3_by_host_name_over_tls_passes_nginx_t(tmp_path):
    block = s3_block(render(tmp_path, AWS_ENV))
    # Whichever S3 host botocore signs for (global or regional), nginx proxies to that one.
    host = re.search(r"proxy_pass https://(private-video\.s3[a-z0-9.-]*\.amazonaws\.com)/", block).group(1)
    assert f"proxy_pass https://{host}/$s3_object$is_args$args;" in block
    assert f"proxy_set_header Host {host};" in block
    assert "resolver 127.0.0.53 valid=60s;" in block
    assert f"proxy_ssl_name {host};" in block and "proxy_ssl_verify on;" in block


# --- the X-Accel value and the token re-check (no server needed) --------------------


def accel_target(storage, name, method):
    """As the response builder makes it: the storage presigns, media_access checks and wraps."""
    return s3.accel_redirect_target(storage, nginx_source(storage, name, method).url)


@pytest.fixture
def bucket_storage(settings):
    from private_video.storage import PrivateS3Storage

    s3._upstream.cache_clear()
    yield PrivateS3Storage(
        bucket_name="private-video", endpoint_url="http://127.0.0.1:9000", region_name="us-east-1",
        access_key="key-id", secret_key="secret", signature_version="s3v4",
    )
    s3._upstream.cache_clear()


def test_accel_target_is_signed_per_method_and_fixed_to_the_endpoint(bucket_storage):
    name = "videos/ab/" + "ab" * 16 + "/original.mp4"
    get = accel_target(bucket_storage, name, "GET")
    head = accel_target(bucket_storage, name, "HEAD")
    for target in (get, head):
        path, _, query = target.partition("?")
        assert path == f"/_s3/private-video/{name}"
        assert "X-Amz-Signature=" in query and "X-Amz-Expires=60" in query
        assert "127.0.0.1" not in target
    signature = re.compile(r"X-Amz-Signature=([0-9a-f]+)")
    assert signature.search(get).group(1) != signature.search(head).group(1)
    with pytest.raises(ValueError):
        accel_target(bucket_storage, name, "PUT")


def test_accel_target_refuses_unsafe_keys(bucket_storage):
    for name in ("videos/a b/original.mp4", "videos/é/x.mp4", "videos/x.mp4?x=1"):
        with pytest.raises(SuspiciousFileOperation):
            accel_target(bucket_storage, name, "GET")


def test_accel_target_refuses_a_host_nginx_was_not_given(bucket_storage, monkeypatch):
    monkeypatch.setattr(s3, "upstream", lambda storage: {"origin": "http://127.0.0.1:9999"})
    with pytest.raises(ImproperlyConfigured):
        accel_target(bucket_storage, "videos/ab/original.mp4", "GET")


def test_signed_view_checks_the_token_itself():
    prefix = "videos/ab/" + "ab" * 16 + "/renditions/"
    name = prefix + "1-abc/hls-180p.m4s"
    expires = int(time.time()) + 60
    viewer = "v" * 32
    token = secure_link_token(prefix, expires, viewer)
    assert token_allows(token, expires, name, viewer)
    assert not token_allows(token, expires + 1, name, viewer)
    assert not token_allows(token, expires, "videos/cd/" + "cd" * 16 + "/renditions/1-abc/hls-180p.m4s", viewer)
    assert not token_allows(token, expires, prefix.replace("renditions/", "original.mp4"), viewer)
    assert not token_allows(token, expires, prefix + "1-abc/../original.mp4", viewer)
    old = int(time.time()) - 1
    assert not token_allows(secure_link_token(prefix, old, viewer), old, name, viewer)
    # Another browser's viewer cookie, or none.
    assert not token_allows(token, expires, name, "w" * 32)
    assert not token_allows(token, expires, name, None)
