"""Through real nginx + gunicorn: sign in to the admin and upload over HTTP."""

from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.urls import reverse

from private_video.models import Video

from .helpers import csrf_token, make_user

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "correct horse battery"


def admin_session(stack, username):
    session = requests.Session()
    token = csrf_token(session, stack.url("/admin/login/"))
    response = session.post(
        stack.url("/admin/login/"),
        data={"csrfmiddlewaretoken": token, "username": username, "password": PASSWORD, "next": "/admin/"},
        headers={"Referer": stack.url("/admin/login/")},
        timeout=10,
    )
    assert response.status_code == 200 and response.url == stack.url("/admin/"), response.url
    return session


def post_video(stack, session, path, name):
    token = csrf_token(session, stack.url(reverse("private_video:add")))
    with open(path, "rb") as handle:
        return session.post(
            stack.url(reverse("private_video:add")),
            data={"csrfmiddlewaretoken": token},
            files={"file": (name, handle, "video/mp4")},
            headers={"Accept": "application/json", "Referer": stack.url(reverse("private_video:add"))},
            timeout=60,
        )


def test_sign_in_and_upload_through_nginx(stack, sample_video):
    make_user("uploader", PASSWORD, superuser=True)
    session = admin_session(stack, "uploader")

    response = post_video(stack, session, sample_video, "Through nginx.mp4")
    assert response.status_code == 200, response.text[:1000]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["success"] is True and body["title"] == "Through nginx"

    video = Video.objects.get(pk=body["pk"])
    stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    assert stored.read_bytes() == Path(sample_video).read_bytes()
    assert video.original_filename == "Through nginx.mp4"
    assert video.uploaded_by_user.username == "uploader"

    listing = session.get(stack.url(reverse("private_video:index")), timeout=10)
    assert listing.status_code == 200 and "Through nginx" in listing.text
    # The private root is not reachable by any public URL.
    for path in (f"/media/{video.file.name}", f"/static/../private/{video.file.name}", f"/{video.file.name}"):
        leaked = requests.get(stack.url(path), timeout=10)
        assert leaked.status_code == 404, path
        assert stored.read_bytes()[:64] not in leaked.content


def test_non_video_is_refused_with_a_message(stack, tmp_path):
    make_user("careful", PASSWORD, superuser=True)
    session = admin_session(stack, "careful")
    fake = tmp_path / "slides.mp4"
    fake.write_bytes(b"%PDF-1.4 not a video at all\n" * 100)
    response = post_video(stack, session, fake, "slides.mp4")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert "“slides.mp4” is not a video we can read" in body["error_message"]
    assert Video.objects.count() == 0


# small_limit_stack (1M upload limit): tests/conftest.py, shared with other modules.


def test_upload_limit_is_one_setting_for_django_and_nginx(small_limit_stack, tmp_path, sample_video):
    conf = small_limit_stack.nginx_conf.read_text()
    # 1 MiB plus the 16 MiB multipart allowance.
    assert f"client_max_body_size {1024**2 + 16 * 1024**2};" in conf

    make_user("limited", PASSWORD, superuser=True)
    session = admin_session(small_limit_stack, "limited")

    over_django = tmp_path / "two-megabytes.mp4"
    over_django.write_bytes(Path(sample_video).read_bytes() + b"\0" * (2 * 1024**2))
    response = post_video(small_limit_stack, session, over_django, "two-megabytes.mp4")
    assert response.status_code == 400
    assert "the largest video you can upload is 1.0\xa0MB" in response.json()["error_message"]

    over_nginx = tmp_path / "huge.mp4"
    with open(over_nginx, "wb") as handle:
        handle.truncate(20 * 1024**2)
    response = post_video(small_limit_stack, session, over_nginx, "huge.mp4")
    assert response.status_code == 413
    assert Video.objects.count() == 0
