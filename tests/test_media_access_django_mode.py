"""MEDIA_ACCESS_SERVE_MODE="django": the same endpoint serves the file itself,
streamed, with correct Range handling; still behind the policy."""

import hashlib
import tracemalloc

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from django.urls import reverse

from media_access.models import ViewerGrant
from media_access.responses import RangeFileResponseBuilder, get_response_builder

from transcoding.testmedia import make_test_video

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


BIG_FILE_MIN = 8 * 1024 * 1024
CHUNK_BOUND = 256 * 1024


@pytest.fixture(scope="module")
def big_video(tmp_path_factory):
    """A real MP4 of about 11 MiB (one second of lossless noise), far above the
    chunk bound, so reading it whole shows up both in chunk sizes and in memory."""
    return make_test_video(
        tmp_path_factory.mktemp("big") / "big.mp4", duration=1, width=640, height=360,
        video_args=("-vf", "noise=alls=100:allf=t", "-qp", "0"),
    )


def test_memory_stays_flat_on_a_big_file(client, big_video):
    """The response is an iterator of bounded chunks read as it is consumed:
    Python never holds the whole file (DESIGN rule 6)."""
    video = make_video(big_video, title="Big")
    page = make_video_page(video, title="Big page")
    viewers = Group.objects.create(name="Big viewers")
    ViewerGrant.objects.create(page=page, group=viewers)
    client.force_login(make_user("big-viewer", groups=[viewers]))
    url = reverse("media_access:watch", args=[page.pk, video.pk, "original"])
    expected = big_video.read_bytes()
    size = len(expected)
    assert size >= BIG_FILE_MIN, size
    expected_digest = hashlib.sha256(expected).hexdigest()
    del expected

    digest, sizes = hashlib.sha256(), []
    tracemalloc.start()
    try:
        response = client.get(url)
        assert response.status_code == 200 and response.streaming
        for chunk in response.streaming_content:
            sizes.append(len(chunk))
            digest.update(chunk)
        chunk = None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        response.close()

    assert sum(sizes) == size and digest.hexdigest() == expected_digest
    assert max(sizes) <= CHUNK_BOUND
    assert len(sizes) >= size // CHUNK_BOUND
    # The whole file would be 11 MiB; a couple of chunks plus the request is far below 2 MiB.
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while streaming a {size} byte file"
