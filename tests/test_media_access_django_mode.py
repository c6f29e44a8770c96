"""MEDIA_ACCESS_SERVE_MODE="django": the same endpoint serves the file itself,
streamed, with correct Range handling; still behind the policy."""

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.urls import reverse

from media_access.models import ViewerGrant
from media_access.responses import RangeFileResponseBuilder, get_response_builder

from .helpers import make_user, make_video, make_video_page

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("django_mode")]


@pytest.fixture
def django_mode():
    with override_settings(MEDIA_ACCESS_SERVE_MODE="django"):
        yield


@pytest.fixture
def setup(sample_video, client):
    video = make_video(sample_video, title="Direct")
    page = make_video_page(video, title="Direct page")
    viewers = Group.objects.create(name="Direct viewers")
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(make_user("viewer", groups=[viewers]))
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    data = video.file.open("rb").read()
    video.file.close()
    return url, data


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_builder_is_chosen_by_setting():
    assert isinstance(get_response_builder(), RangeFileResponseBuilder)
    with override_settings(MEDIA_ACCESS_RESPONSE_BUILDER="media_access.responses.XAccelResponseBuilder"):
        assert type(get_response_builder()).__name__ == "XAccelResponseBuilder"


def test_full_get_is_streamed(client, setup):
    url, data = setup
    response = client.get(url)
    assert response.status_code == 200
    assert response.streaming
    assert body(response) == data
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "video/mp4"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Disposition"] == "inline; filename=\"sample.mp4\"; filename*=UTF-8''sample.mp4"
    assert not response.has_header("X-Accel-Redirect")


@pytest.mark.parametrize(
    "header, first, last",
    [("bytes=0-1", 0, 1), ("bytes=1000-2999", 1000, 2999), ("bytes=-500", -500, -1), ("bytes=300-", 300, -1)],
)
def test_ranges(client, setup, header, first, last):
    url, data = setup
    size = len(data)
    first, last = first % size, last % size
    response = client.get(url, HTTP_RANGE=header)
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert response["Content-Length"] == str(last - first + 1)
    assert body(response) == data[first : last + 1]


def test_range_past_the_end_is_clamped(client, setup):
    url, data = setup
    response = client.get(url, HTTP_RANGE=f"bytes={len(data) - 3}-{len(data) + 1000}")
    assert response.status_code == 206
    assert body(response) == data[-3:]


@pytest.mark.parametrize("header", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0"])
def test_unsatisfiable(client, setup, header):
    url, data = setup
    response = client.get(url, HTTP_RANGE=header.format(size=len(data)))
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"
    assert data[:16] not in response.content


@pytest.mark.parametrize("header", ["items=0-1", "bytes=5-2", "bytes=0-1,4-5", "bytes=abc"])
def test_unusable_range_headers_get_the_whole_file(client, setup, header):
    url, data = setup
    response = client.get(url, HTTP_RANGE=header)
    assert response.status_code == 200
    assert body(response) == data


def test_if_range(client, setup):
    url, data = setup
    head = client.head(url)
    etag, modified = head["ETag"], head["Last-Modified"]
    for validator in (etag, modified):
        response = client.get(url, HTTP_RANGE="bytes=4-7", HTTP_IF_RANGE=validator)
        assert response.status_code == 206 and body(response) == data[4:8]
    for stale in ('"nope"', "W/" + etag, "Sat, 01 Jan 2000 00:00:00 GMT"):
        response = client.get(url, HTTP_RANGE="bytes=4-7", HTTP_IF_RANGE=stale)
        assert response.status_code == 200 and body(response) == data


def test_head(client, setup):
    url, data = setup
    response = client.head(url)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert body(response) == b""
    partial = client.head(url, HTTP_RANGE="bytes=0-9")
    assert partial.status_code == 206 and partial["Content-Length"] == "10"


def test_denials_are_the_same_in_django_mode(client, setup, sample_video):
    url, data = setup
    client.force_login(make_user("outsider"))
    for headers in ({}, {"HTTP_RANGE": "bytes=0-1"}, {"HTTP_IF_NONE_MATCH": "*"}):
        response = client.get(url, **headers)
        assert response.status_code == 403
        assert data[:16] not in response.content
        assert not response.has_header("ETag") and not response.has_header("Content-Range")
    client.logout()
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={url}"
    assert client.post(url).status_code == 405


def test_memory_stays_flat_on_a_big_file(client, setup, tmp_path):
    """The response is an iterator of bounded chunks, never the whole file."""
    url, data = setup
    response = client.get(url)
    chunks = list(response.streaming_content)
    assert max(len(c) for c in chunks) <= 256 * 1024
