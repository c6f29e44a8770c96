"""The production shape of the bundled config: HTTPS with HTTP/2 and a plain
HTTP redirect, rendered by render_nginx_config and served by real nginx."""

import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from django.contrib.auth.models import Group

from media_access.models import ViewerGrant

from .helpers import make_user, make_video, make_video_page, stack_session

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


# certificate and tls_stack: tests/conftest.py (session fixtures, shared with test_attack_probes).


def test_https_with_http2_and_a_redirect_from_plain_http(tls_stack, certificate):
    cert, _ = certificate
    conf = tls_stack.nginx_conf.read_text()
    assert f"listen 127.0.0.1:{tls_stack.port} ssl http2;" in conf
    check = subprocess.run(
        ["nginx", "-t", "-p", str(tls_stack.root / "nginx"), "-e", "stderr", "-c", str(tls_stack.nginx_conf)],
        capture_output=True, text=True, timeout=30,
    )
    assert check.returncode == 0, check.stderr

    # curl speaks HTTP/2 over TLS (ALPN); the certificate is the test's own.
    result = subprocess.run(
        ["curl", "-sS", "--http2", "--cacert", str(cert), "-o", "/dev/null",
         "-w", "%{http_version} %{http_code}", tls_stack.url("/login/")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.stdout == "2 200", (result.stdout, result.stderr)

    response = requests.get(tls_stack.url("/login/"), verify=str(cert), timeout=10)
    assert response.status_code == 200
    # Django knows the request was secure (X-Forwarded-Proto from nginx): HSTS, secure cookies.
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]

    plain = requests.get(f"http://127.0.0.1:{tls_stack.http_port}/admin/?x=1", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://127.0.0.1/admin/?x=1"


def test_private_media_is_still_internal_over_tls(tls_stack, certificate, sample_video):
    """A file that exists in the private root is served over TLS only through
    the policy's X-Accel-Redirect; asked for directly (HTTP/1.1, HTTP/2, a
    range, encoded, on the plain-HTTP port) it is a 404 with none of its bytes."""
    cert, _ = certificate
    viewers = Group.objects.create(name="TLS viewers")
    video = make_video(sample_video, title="TLS clip")
    page = make_video_page(video, title="TLS page")
    ViewerGrant.objects.create(page=page, group=viewers)
    stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    data = stored.read_bytes()
    assert len(data) > 10_000

    # Control: the same file, through the policy, comes from the internal location.
    viewer = stack_session(make_user("tls-viewer", groups=[viewers]))
    served = viewer.get(tls_stack.url(f"/watch/{page.pk}/{video.pk}/original/"), verify=str(cert), timeout=10)
    assert served.status_code == 200 and served.content == data

    direct = [f"/_private/{video.file.name}", "/_private/" + quote(video.file.name, safe=""),
              f"/_private/{video.file.name.rsplit('/', 1)[0]}/", "/_private/", "/_private/videos/"]
    for path in direct:
        for headers in ({}, {"Range": "bytes=0-99"}):
            response = requests.get(tls_stack.url(path), headers=headers, verify=str(cert), timeout=10)
            assert response.status_code == 404, (path, headers, response.status_code)
            assert "X-Accel-Redirect" not in response.headers and "Content-Range" not in response.headers
            assert data[:16] not in response.content and len(response.content) < 1000
        # HTTP/2 (what browsers use here) gives the same answer, with no body bytes of the file.
        result = subprocess.run(
            ["curl", "-sS", "--http2", "--cacert", str(cert), "-w", "\n%{http_version} %{http_code}",
             tls_stack.url(path)],
            capture_output=True, timeout=30,
        )
        body, _, status = result.stdout.rpartition(b"\n")
        assert status == b"2 404", (path, status, result.stderr)
        assert data[:16] not in body
    plain = requests.get(f"http://127.0.0.1:{tls_stack.http_port}/_private/{video.file.name}",
                         allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and data[:16] not in plain.content
