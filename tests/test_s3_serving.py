"""STORAGE=s3 through the whole path: s3rver on loopback holds the bucket,
gunicorn and the transcoder worker store into it, and the shipped nginx
config proxies allowed requests to presigned URLs that the viewer never
sees. s3rver checks those presigned signatures (see tests/s3rver_settings.py),
so a URL signed for the wrong method or object is refused, as S3 refuses it."""

import http.client
import socket

import re
import uuid
from pathlib import Path

import pytest
import requests
from django.contrib.auth.models import Group

from private_video.models import Video
from media_access.models import ViewerGrant

from .conftest import _start_stack, s3_client
from .helpers import make_user, make_video_page, stack_session, wait_for_job
from .stack import free_port
from .test_stack_upload import PASSWORD, admin_session, post_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SIGNATURE_MARKERS = (
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm", "AWSAccessKeyId", "Signature=",
    "testing-key-id", "_s3/",
)


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory, stack_database_url, static_root, s3_server):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root, extra_env=s3_server, with_worker=True
    )
    yield stack
    stack.stop()


def assert_nothing_of_the_bucket(response, env):
    """No signed URL, credential, bucket address or S3 header in anything the client got."""
    visible = "\n".join(f"{k}: {v}" for k, v in response.headers.items()) + "\n"
    visible += response.content.decode("latin-1")
    endpoint_host = env["AWS_S3_ENDPOINT_URL"].split("://", 1)[1]
    for marker in (*SIGNATURE_MARKERS, endpoint_host, env["AWS_STORAGE_BUCKET_NAME"], "<Error>"):
        assert marker not in visible, (marker, dict(response.headers))
    assert "X-Accel-Redirect" not in response.headers
    assert not [k for k in response.headers if k.lower().startswith("x-amz")], dict(response.headers)
    assert response.headers.get("Server") == "nginx"


def access_log_lines(stack):
    """nginx's access log (stdout; its error log shares the file, stderr)."""
    return [line for line in stack.log_text("nginx").splitlines() if line.startswith("127.0.0.1 - ")]


def assert_ours(response, content_type, disposition):
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == disposition
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_upload_transcode_and_play_from_the_bucket(s3_stack, s3_server, sample_video, settings):
    stack, env = s3_stack, s3_server
    bucket = env["AWS_STORAGE_BUCKET_NAME"]
    client = s3_client(env)
    make_user("s3-uploader", PASSWORD, superuser=True)
    response = post_video(stack, admin_session(stack, "s3-uploader"), sample_video, "Bucket clip.mp4")
    assert response.status_code == 200, response.text[:1000]
    video = Video.objects.get(pk=response.json()["pk"])
    original = Path(sample_video).read_bytes()
    size = len(original)

    # Upload: in the bucket, not on disk. (s3rver has no ACLs, so the
    # bucket's own privacy is the operator's and not checked here.)
    assert client.get_object(Bucket=bucket, Key=video.file.name)["Body"].read() == original
    assert not (Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name).exists()

    # Transcode: the worker reads the original from the bucket and writes the renditions there.
    job = wait_for_job(video, stack)
    assert job.worker.endswith(f":{stack.processes['transcoder'].pid}")
    folder = f"videos/{video.key.hex[:2]}/{video.key.hex}/"
    keys = {item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]}
    renditions = {r.name: r for r in video.renditions.all()}
    assert {"hls-master", "hls-180p", "hls-180p-media", "mp4-180p", "poster"} <= set(renditions)
    assert {r.file.name for r in renditions.values()} <= keys
    assert not (Path(settings.PRIVATE_MEDIA_ROOT) / folder).exists()

    viewers = Group.objects.create(name="S3 viewers")
    viewer = make_user("s3-viewer", groups=[viewers])
    outsider = make_user("s3-outsider")
    page = make_video_page(video, title="Bucket page")
    # The original is a download once renditions are ready: these viewers may.
    ViewerGrant.objects.create(page=page, group=viewers, can_download=True)
    base = stack.url(f"/watch/{page.pk}/{video.pk}/")
    watcher = stack_session(viewer)
    disposition = "inline; filename=\"Bucket clip.mp4\"; filename*=UTF-8''Bucket%20clip.mp4"

    # Play: exact bytes, our headers, nothing of S3's.
    full = watcher.get(base + "original/", timeout=10)
    assert full.status_code == 200
    assert full.content == original
    assert full.headers["Content-Length"] == str(size)
    assert full.headers["Accept-Ranges"] == "bytes"
    assert_ours(full, "video/mp4", disposition)
    assert_nothing_of_the_bucket(full, env)
    etag = full.headers["ETag"]

    # Range: S3 answers 206 itself, through nginx unbuffered.
    part = watcher.get(base + "original/", headers={"Range": "bytes=100-1099"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{size}"
    assert part.headers["Content-Length"] == "1000"
    assert part.content == original[100:1100]
    assert_ours(part, "video/mp4", disposition)
    assert_nothing_of_the_bucket(part, env)
    # (A suffix range, which s3rver answers wrongly: test_suffix_range_and_a_private_bucket_on_moto.)
    same = watcher.get(base + "original/", headers={"Range": "bytes=10-19", "If-Range": etag}, timeout=10)
    assert same.status_code == 206 and same.content == original[10:20]
    unsatisfiable = watcher.get(base + "original/", headers={"Range": f"bytes={size + 10}-"}, timeout=10)
    assert unsatisfiable.status_code == 416 and unsatisfiable.content == b""
    assert_nothing_of_the_bucket(unsatisfiable, env)

    # HEAD: presigned for HEAD (s3rver refuses a GET signature on a HEAD:
    # test_presigned_urls_are_signed_for_their_method), headers and no body.
    head = watcher.head(base + "original/", timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(size)
    assert head.content == b""
    assert head.headers["ETag"] == etag
    assert_ours(head, "video/mp4", disposition)
    assert_nothing_of_the_bucket(head, env)

    # A rendition by name, also from the bucket.
    mp4 = renditions["mp4-180p"]
    mp4_bytes = client.get_object(Bucket=bucket, Key=mp4.file.name)["Body"].read()
    rung = watcher.get(base + "mp4-180p/", timeout=10)
    assert rung.status_code == 200 and rung.content == mp4_bytes
    assert rung.headers["Content-Type"] == "video/mp4"
    assert_nothing_of_the_bucket(rung, env)

    # HLS: the playlist is signed by media_access, the segment URLs are
    # checked by nginx's secure_link and then come from the bucket too.
    playlist = watcher.get(stack.url(f"/hls/{page.pk}/{video.pk}/hls-180p.m3u8"), timeout=10)
    assert playlist.status_code == 200, playlist.text[:300]
    assert_nothing_of_the_bucket(playlist, env)
    segment_url = re.search(r'#EXT-X-MAP:URI="([^"]+)"', playlist.text).group(1)
    assert segment_url.startswith("/stream/")
    length, offset = (int(x) for x in re.search(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", playlist.text).groups())
    media_key = renditions["hls-180p-media"].file.name
    media_bytes = client.get_object(Bucket=bucket, Key=media_key)["Body"].read()
    # No session needed: the signed URL is the credential, as for local files,
    # from the browser it was signed for (its viewer cookie, which nginx passes
    # on alone and media_access checks again).
    viewer = {"pv_viewer": watcher.cookies["pv_viewer"]}
    segment = requests.get(
        stack.url(segment_url), headers={"Range": f"bytes={offset}-{offset + length - 1}"}, cookies=viewer,
        timeout=10,
    )
    assert segment.status_code == 206, segment.text[:300]
    assert segment.content == media_bytes[offset:offset + length]
    assert segment.headers["Content-Range"] == f"bytes {offset}-{offset + length - 1}/{len(media_bytes)}"
    assert segment.headers["Content-Type"] == "video/iso.segment"
    assert segment.headers["Cache-Control"] == "private, no-store"
    assert_nothing_of_the_bucket(segment, env)
    segment_head = requests.head(stack.url(segment_url), cookies=viewer, timeout=10)
    assert segment_head.status_code == 200 and segment_head.content == b""
    assert segment_head.headers["Content-Length"] == str(len(media_bytes))
    forged = segment_url.replace("/stream/", "/stream/x", 1)[:len("/stream/") + 22] + segment_url[len("/stream/") + 22:]
    for bad in (forged, re.sub(r"/(\d+)/videos/", "/1000/videos/", segment_url)):
        refused = requests.get(stack.url(bad), cookies=viewer, timeout=10)
        assert refused.status_code == 403 and refused.content == b"", bad
        assert_nothing_of_the_bucket(refused, env)
    # The right URL from another browser: no viewer cookie, or its own.
    for cookies in ({}, {"pv_viewer": "o" * 32}):
        refused = requests.get(stack.url(segment_url), cookies=cookies, timeout=10)
        assert refused.status_code == 403 and refused.content == b"", cookies
        assert_nothing_of_the_bucket(refused, env)

    # Denial: no bytes, no redirect into the bucket.
    anonymous = requests.get(base + "original/", allow_redirects=False, timeout=10)
    assert anonymous.status_code == 302
    forbidden = stack_session(outsider).get(base + "original/", headers={"Range": "bytes=0-"}, timeout=10)
    assert forbidden.status_code == 403
    assert forbidden.content == b"You do not have access to this video.\n"
    for denied in (anonymous, forbidden):
        assert_nothing_of_the_bucket(denied, env)
        assert original[:16] not in denied.content and b"ftyp" not in denied.content
    denied_playlist = stack_session(outsider).get(stack.url(f"/hls/{page.pk}/{video.pk}/hls-180p.m3u8"))
    assert denied_playlist.status_code == 403 and "/stream/" not in denied_playlist.text

    # The internal location cannot be asked for directly.
    direct = requests.get(stack.url(f"/_s3/{bucket}/{video.file.name}"), timeout=10)
    assert direct.status_code == 404 and original[:16] not in direct.content

    # The access log has the viewers' requests and no signed URL.
    lines = access_log_lines(stack)
    assert any(f'"GET /watch/{page.pk}/{video.pk}/original/ HTTP/1.1" 206 1000' in line for line in lines)
    assert any(f'"HEAD /watch/{page.pk}/{video.pk}/original/ HTTP/1.1" 200' in line for line in lines)
    # (The direct probe of /_s3/ above is logged as the client sent it.)
    for marker in SIGNATURE_MARKERS[:-1]:
        assert not [line for line in lines if marker in line], marker


DIRECT_DISPOSITION = "inline; filename=\"direct.mp4\"; filename*=UTF-8''direct.mp4"


def put_bucket_video(env):
    """A Video row whose original is an object put straight into the bucket."""
    key = uuid.uuid4()
    name = f"videos/{key.hex[:2]}/{key.hex}/original.mp4"
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    s3_client(env).put_object(Bucket=env["AWS_STORAGE_BUCKET_NAME"], Key=name, Body=data)
    video = Video.objects.create(title="Direct", file=name, key=key, original_filename="direct.mp4")
    viewer = make_user("s3-direct-viewer")
    page = make_video_page(video, title="Direct page")
    return video, page, viewer, data


@pytest.fixture
def bucket_video(s3_server):
    return put_bucket_video(s3_server)


def upstream_answer(stack, method, path, cookie):
    """media_access's own answer, asked of gunicorn on its socket (not through
    nginx, which consumes X-Accel-Redirect): shows exactly what nginx is told to fetch."""
    connection = http.client.HTTPConnection("127.0.0.1", timeout=10)
    connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.sock.connect(str(stack.root / "gunicorn.sock"))
    try:
        connection.request(method, path, headers={"Host": f"127.0.0.1:{stack.port}", "Cookie": f"sessionid={cookie}"})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_presigned_urls_are_signed_for_their_method(s3_stack, s3_server, bucket_video):
    """The presigned URL nginx is handed works for the request's own method and
    object only; s3rver checks the signature as S3 does. So HEAD through nginx
    works only because media_access presigns HEAD for it."""
    video, page, viewer, data = bucket_video
    session = stack_session(viewer)
    path = f"/watch/{page.pk}/{video.pk}/original/"
    endpoint = s3_server["AWS_S3_ENDPOINT_URL"]
    urls = {}
    for method in ("GET", "HEAD"):
        answer = upstream_answer(s3_stack, method, path, session.cookies["sessionid"])
        assert answer.status == 200
        target = answer.getheader("X-Accel-Redirect")
        assert target.startswith("/_s3/") and "Signature=" in target, target
        urls[method] = endpoint + target[len("/_s3"):]
    assert urls["GET"] != urls["HEAD"]

    # Each signature opens its own method.
    assert requests.get(urls["GET"], timeout=10).content == data
    head = requests.head(urls["HEAD"], timeout=10)
    assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    # A GET signature on a HEAD, and the reverse, are refused by the store.
    assert requests.head(urls["GET"], timeout=10).status_code == 403
    swapped = requests.get(urls["HEAD"], timeout=10)
    assert swapped.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in swapped.content
    assert data[:16] not in swapped.content
    # So is the same signature on another object of the bucket.
    other = s3_client(s3_server)
    other_key = video.file.name.replace("original.mp4", "other.mp4")
    other.put_object(Bucket=s3_server["AWS_STORAGE_BUCKET_NAME"], Key=other_key, Body=b"other bytes")
    moved = requests.get(urls["GET"].replace(video.file.name, other_key), timeout=10)
    assert moved.status_code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in moved.content
    # A presigned GET URL of the test's own with a wrong secret: refused too.
    forged = s3_client({**s3_server, "AWS_SECRET_ACCESS_KEY": "not-the-secret"}, signature_version="s3")
    forged_url = forged.generate_presigned_url(
        "get_object", Params={"Bucket": s3_server["AWS_STORAGE_BUCKET_NAME"], "Key": video.file.name}, ExpiresIn=60
    )
    assert requests.get(forged_url, timeout=10).status_code == 403

    # Through nginx, the viewer's HEAD and GET both work.
    via_nginx = session.head(s3_stack.url(path), timeout=10)
    assert via_nginx.status_code == 200 and via_nginx.content == b""
    assert via_nginx.headers["Content-Length"] == str(len(data))
    assert_nothing_of_the_bucket(via_nginx, s3_server)
    assert session.get(s3_stack.url(path), timeout=10).content == data


def test_missing_object_is_a_plain_404(s3_stack, s3_server, bucket_video):
    video, page, viewer, data = bucket_video
    url = s3_stack.url(f"/watch/{page.pk}/{video.pk}/original/")
    session = stack_session(viewer)
    assert session.get(url, timeout=10).content == data
    s3_client(s3_server).delete_object(Bucket=s3_server["AWS_STORAGE_BUCKET_NAME"], Key=video.file.name)
    for method in ("GET", "HEAD"):
        for headers in ({}, {"Range": "bytes=0-9"}):
            missing = session.request(method, url, headers=headers, timeout=10)
            assert missing.status_code == 404, (method, headers)
            assert missing.content == (b"Not found.\n" if method == "GET" else b"")
            assert missing.headers["Content-Type"] == "text/plain"
            assert missing.headers["Cache-Control"] == "private, no-store"
            # Copied from media_access's answer on the redirect; stock nginx cannot drop it.
            assert missing.headers["Content-Disposition"] == DIRECT_DISPOSITION
            assert_nothing_of_the_bucket(missing, s3_server)


def test_bucket_down_is_a_plain_502(tmp_path_factory, stack_database_url, static_root, s3_server, bucket_video):
    video, page, viewer, data = bucket_video
    # The same bucket settings, but the endpoint nginx proxies to answers nothing.
    dead = {**s3_server, "AWS_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, extra_env=dead)
    try:
        session = stack_session(viewer)
        url = stack.url(f"/watch/{page.pk}/{video.pk}/original/")
        for method in ("GET", "HEAD"):
            down = session.request(method, url, timeout=20)
            assert down.status_code == 502, method
            assert down.content == (b"The video store is unavailable.\n" if method == "GET" else b"")
            assert down.headers["Content-Type"] == "text/plain"
            assert down.headers["Content-Disposition"] == DIRECT_DISPOSITION
            assert_nothing_of_the_bucket(down, dead)
        # (nginx's error log names the upstream URL, signature included: an
        # operator-only log, the URL dies within MEDIA_ACCESS_S3_URL_LIFETIME;
        # the access log is checked in the first test.)
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def moto_stack(tmp_path_factory, stack_database_url, static_root, moto_s3_server):
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, extra_env=moto_s3_server)
    yield stack
    stack.stop()


def test_suffix_range_and_a_private_bucket_on_moto(moto_stack, moto_s3_server):
    """What s3rver gets wrong, on moto: a suffix range passes through nginx and
    S3 answers it (s3rver sends the first bytes instead), and the bucket the
    stack stores into refuses a read without a signature (s3rver has no ACLs)."""
    video, page, viewer, data = put_bucket_video(moto_s3_server)
    size = len(data)
    anonymous = requests.get(
        f"{moto_s3_server['AWS_S3_ENDPOINT_URL']}/{moto_s3_server['AWS_STORAGE_BUCKET_NAME']}/{video.file.name}",
        timeout=10,
    )
    assert anonymous.status_code == 403 and data[:16] not in anonymous.content
    tail = stack_session(viewer).get(
        moto_stack.url(f"/watch/{page.pk}/{video.pk}/original/"), headers={"Range": "bytes=-500"}, timeout=10
    )
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert tail.headers["Content-Range"] == f"bytes {size - 500}-{size - 1}/{size}"
    assert_ours(tail, "video/mp4", DIRECT_DISPOSITION)
    assert_nothing_of_the_bucket(tail, moto_s3_server)
