"""S3 multipart uploads straight to the private bucket (issue 13), through the
real stack: nginx + gunicorn (+ the transcoder) with STORAGE=s3.

The test plays the browser: it asks the admin's JSON endpoints to create,
sign, list, complete or abort, and PUTs each part itself to the presigned URL,
i.e. to the bucket's own port, never to nginx. Most of it runs on moto (which
has ListParts, AbortMultipartUpload, ListMultipartUploads and bucket CORS, but
checks no signature); what a presigned part URL opens is checked on s3rver,
which verifies (SigV2) signatures but has no ListParts or abort, so nothing
there is completed or aborted.
"""

import uuid
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import Group
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from wagtail.models import Collection

from media_access.models import ViewerGrant
from private_video import layout
from private_video.checks import check_bucket_cors
from private_video.models import Video
from private_video.uploads.models import Upload
from transcoding.testmedia import make_test_video

from .conftest import _start_stack, s3_client
from .helpers import collection_group, csrf_token, make_user, make_video_page, stack_session, wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

MiB = 1024**2
# S3's smallest part (but the last); the stacks' PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE.
PART = 5 * MiB


@pytest.fixture(scope="module")
def moto_stack(tmp_path_factory, stack_database_url, static_root, moto_s3_server):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={**moto_s3_server, "PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE": str(PART)}, with_worker=True,
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def s3rver_stack(tmp_path_factory, stack_database_url, static_root, s3_server):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={**s3_server, "PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE": str(PART)},
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def two_part_video(tmp_path_factory):
    """A real video a little over one part (noise compresses badly): two parts."""
    path = tmp_path_factory.mktemp("s3-uploads") / "clip.mp4"
    make_test_video(path, duration=4, width=320, height=180,
                    video_args=["-vf", "noise=alls=60:allf=t+u", "-qp", "0"])
    data = path.read_bytes()
    assert PART < len(data) < 2 * PART, len(data)
    return data


class Browser:
    """What the admin's upload script does, with a signed-in session: JSON to
    the site (with the CSRF header), part bytes to the presigned URLs."""

    def __init__(self, stack, user):
        self.stack = stack
        self.session = stack_session(user)
        self.token = csrf_token(self.session, stack.url(reverse("private_video:add")))

    def call(self, method, name, *args, json=None, csrf=True):
        headers = {"X-CSRFToken": self.token} if csrf else {}
        url = self.stack.url(reverse(f"private_video:{name}", args=args))
        return self.session.request(method, url, json=json, headers=headers, allow_redirects=False, timeout=120)

    def create(self, length, filename="Holiday clip.mp4", **fields):
        return self.call("POST", "s3_create", json={"length": length, "filename": filename, **fields})

    def sign(self, upload_id, part):
        return self.call("POST", "s3_sign_part", upload_id, part)

    def put_part(self, upload_id, part, body):
        signed = self.sign(upload_id, part)
        assert signed.status_code == 200, signed.text
        put = requests.put(signed.json()["url"], data=body, timeout=60)
        assert put.status_code == 200, put.text[:500]
        return {"PartNumber": part, "ETag": put.headers["ETag"]}

    def upload(self, data, **fields):
        """Create, then send every part; returns (create answer, parts)."""
        created = self.create(len(data), **fields)
        assert created.status_code == 201, created.text
        answer = created.json()
        size = answer["partSize"]
        parts = [
            self.put_part(answer["uploadId"], number, data[(number - 1) * size:number * size])
            for number in range(1, answer["partCount"] + 1)
        ]
        return answer, parts


def bucket_of(env):
    return s3_client(env), env["AWS_STORAGE_BUCKET_NAME"]


def multipart_uploads(env, key):
    client, bucket = bucket_of(env)
    return client.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])


def object_exists(env, key):
    client, bucket = bucket_of(env)
    return bool(client.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))


def access_lines(stack, name):
    text = stack.log_text("nginx") if name == "nginx" else (stack.root / "gunicorn-access.log").read_text()
    return [line for line in text.splitlines() if '"' in line and "HTTP/1." in line]


def test_parts_go_to_the_bucket_and_the_video_plays(moto_stack, moto_s3_server, two_part_video):
    stack, env = moto_stack, moto_s3_server
    client, bucket = bucket_of(env)
    owner = make_user("s3-multipart-owner", superuser=True)
    browser = Browser(stack, owner)

    created = browser.create(len(two_part_video), title="Holiday")
    assert created.status_code == 201, created.text
    answer = created.json()
    upload = Upload.objects.get(pk=answer["uploadId"])
    key = layout.original_name(upload.video_key)
    assert answer == {"uploadId": str(upload.pk), "key": key, "partSize": PART, "partCount": 2}
    assert (upload.user, upload.backend, upload.state, upload.length) == (
        owner, "s3", "receiving", len(two_part_video))
    assert [u["UploadId"] for u in multipart_uploads(env, key)] == [upload.s3_upload_id]

    # Each part URL is the bucket's, for this upload and part, signed for the part's exact length.
    endpoint = env["AWS_S3_ENDPOINT_URL"]
    parts = []
    for number, body in ((1, two_part_video[:PART]), (2, two_part_video[PART:])):
        signed = browser.sign(upload.pk, number)
        assert signed.status_code == 200, signed.text
        url = signed.json()["url"]
        assert url.startswith(f"{endpoint}/{bucket}/{key}?"), url
        assert f"uploadId={upload.s3_upload_id}" in url and f"partNumber={number}" in url
        assert "X-Amz-SignedHeaders=content-length%3Bhost" in url
        assert signed.json()["size"] == len(body) and signed.json()["method"] == "PUT"
        put = requests.put(url, data=body, timeout=60)
        assert put.status_code == 200, put.text[:300]
        parts.append({"PartNumber": number, "ETag": put.headers["ETag"]})

    # Progress, as the admin's list shows it: what the bucket held when part 2 was signed.
    upload.refresh_from_db()
    assert upload.offset == PART
    # Resume: the parts the bucket holds, and the upload's progress.
    listed = browser.call("GET", "s3_list_parts", upload.pk)
    assert listed.status_code == 200
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed.json()["parts"]] == [
        (1, parts[0]["ETag"], PART), (2, parts[1]["ETag"], len(two_part_video) - PART)]
    upload.refresh_from_db()
    assert upload.offset == len(two_part_video)

    completed = browser.call("POST", "s3_complete", upload.pk, json={"parts": parts})
    assert completed.status_code == 200, completed.text
    video = Video.objects.get(pk=completed.json()["video"]["id"])
    assert completed.json()["video"] == {
        "id": video.pk, "title": "Holiday", "edit_url": reverse("private_video:edit", args=[video.pk])}
    assert video.key == upload.video_key and video.uploaded_by_user == owner
    assert video.original_filename == "Holiday clip.mp4" and video.file_size == len(two_part_video)
    assert video.file.name == layout.original_name(upload.video_key, ".mp4")
    assert video.width == 320 and video.height == 180
    # The bytes are the source's, at the video's name; nothing else is left of the upload.
    assert client.get_object(Bucket=bucket, Key=video.file.name)["Body"].read() == two_part_video
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=key)["Contents"]] == [video.file.name]
    assert multipart_uploads(env, key) == []
    upload.refresh_from_db()
    assert (upload.state, upload.video) == ("complete", video)
    # Completing again answers the same video.
    again = browser.call("POST", "s3_complete", upload.pk, json={"parts": parts})
    assert again.status_code == 200 and again.json()["video"]["id"] == video.pk
    # Aborting it now is refused and deletes nothing: the object is the video's.
    refused = browser.call("DELETE", "s3_abort", upload.pk)
    assert refused.status_code == 409 and "delete the video instead" in refused.json()["error"]
    assert client.get_object(Bucket=bucket, Key=video.file.name)["Body"].read() == two_part_video

    # No part went through nginx or gunicorn: they saw only the small JSON calls.
    for name in ("nginx", "gunicorn"):
        lines = access_lines(stack, name)
        assert any(f"POST /admin/videos/uploads/s3/{upload.pk}/complete/" in line for line in lines), name
        assert not [line for line in lines if '"PUT ' in line], name
        assert not [line for line in lines if "partNumber" in line or bucket in line], name

    # The transcoder reads it from the bucket; the video plays.
    wait_for_job(video, stack)
    viewers = Group.objects.create(name="S3 upload viewers")
    viewer = make_user("s3-multipart-viewer", groups=[viewers])
    page = make_video_page(video, title="Uploaded to the bucket")
    # Transcoded: the original is a download, which these viewers may make.
    ViewerGrant.objects.create(page=page, group=viewers, can_download=True)
    watcher = stack_session(viewer)
    playback = watcher.get(stack.url(f"/playback/{page.pk}/{video.pk}/"), timeout=10)
    assert playback.status_code == 200, playback.text[:300]
    assert playback.headers["Content-Type"].startswith("application/json")
    original = watcher.get(stack.url(f"/watch/{page.pk}/{video.pk}/original/"), timeout=10)
    assert original.status_code == 200 and original.content == two_part_video


def test_an_aborted_upload_leaves_no_parts(moto_stack, moto_s3_server, two_part_video):
    env = moto_s3_server
    client, bucket = bucket_of(env)
    browser = Browser(moto_stack, make_user("s3-abort-owner", superuser=True))
    created = browser.create(len(two_part_video))
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    browser.put_part(upload.pk, 1, two_part_video[:PART])
    assert len(client.list_parts(Bucket=bucket, Key=upload.s3_key, UploadId=upload.s3_upload_id)["Parts"]) == 1

    # Without the CSRF header: refused, nothing aborted.
    assert browser.call("DELETE", "s3_abort", upload.pk, csrf=False).status_code == 403
    assert len(multipart_uploads(env, upload.s3_key)) == 1

    aborted = browser.call("DELETE", "s3_abort", upload.pk)
    assert aborted.status_code == 200 and aborted.json() == {"state": "cancelled"}
    assert multipart_uploads(env, upload.s3_key) == []
    with pytest.raises(client.exceptions.NoSuchUpload):
        client.list_parts(Bucket=bucket, Key=upload.s3_key, UploadId=upload.s3_upload_id)
    assert not object_exists(env, upload.s3_key)
    upload.refresh_from_db()
    assert upload.state == "cancelled" and upload.video is None
    # A cancelled upload takes no more parts and does not complete.
    assert browser.sign(upload.pk, 2).status_code == 409
    # (An upload S3 no longer has, e.g. aborted by a lifecycle rule: 410, not a 502.)
    Upload.objects.filter(pk=upload.pk).update(state="receiving")
    gone = browser.call("GET", "s3_list_parts", upload.pk)
    assert gone.status_code == 410 and "start it again" in gone.json()["error"]
    Upload.objects.filter(pk=upload.pk).update(state="cancelled")
    refused = browser.call("POST", "s3_complete", upload.pk, json={})
    assert refused.status_code == 409 and "cancelled" in refused.json()["error"]


def test_an_expired_upload_is_aborted_by_expire_uploads(moto_stack, moto_s3_server, two_part_video):
    """The cleanup command, run as production runs it (the stack's settings,
    STORAGE=s3), aborts an S3 upload nobody finished: no part is left."""
    env = moto_s3_server
    browser = Browser(moto_stack, make_user("s3-expiry-owner", superuser=True))
    created = browser.create(len(two_part_video))
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    browser.put_part(upload.pk, 1, two_part_video[:PART])
    live = browser.create(len(two_part_video))
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    moto_stack.manage("expire_uploads")
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert multipart_uploads(env, upload.s3_key) == [] and not object_exists(env, upload.s3_key)
    # The live one is untouched.
    kept = Upload.objects.get(pk=live.json()["uploadId"])
    assert kept.state == "receiving" and len(multipart_uploads(env, kept.s3_key)) == 1
    browser.call("DELETE", "s3_abort", kept.pk)


def test_an_upload_deleted_with_its_owner_is_aborted(moto_stack, moto_s3_server, two_part_video):
    """A row deleted outside expiry and cancel (here its owner removed in a
    shell, with the stack's STORAGE=s3 settings) aborts its multipart upload
    once the delete commits: no part is left in the bucket."""
    env = moto_s3_server
    browser = Browser(moto_stack, make_user("s3-deleted-owner", superuser=True))
    created = browser.create(len(two_part_video))
    upload = Upload.objects.get(pk=created.json()["uploadId"])
    browser.put_part(upload.pk, 1, two_part_video[:PART])
    assert len(multipart_uploads(env, upload.s3_key)) == 1

    moto_stack.manage("shell", "-c", "from django.contrib.auth import get_user_model; "
                      "get_user_model().objects.filter(username='s3-deleted-owner').delete()")
    assert not Upload.objects.filter(pk=upload.pk).exists()
    assert multipart_uploads(env, upload.s3_key) == [] and not object_exists(env, upload.s3_key)


def test_part_sizes_fit_s3s_bounds():
    """5 MiB at least, 10,000 parts at most, the last part holds the rest."""
    from private_video.uploads.s3_multipart import MAX_PARTS, part_count, part_length, part_size

    with override_settings(PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE=64 * MiB):
        assert (part_size(8 * 1024**3), part_count(8 * 1024**3)) == (64 * MiB, 128)
        assert (part_size(1000), part_count(1000), part_length(1000, 1)) == (64 * MiB, 1, 1000)
        for length in (64 * MiB, 64 * MiB + 1, 1024**4, 48 * 1024**4):
            size, count = part_size(length), part_count(length)
            assert 5 * MiB <= size <= 5 * 1024**3 and count <= MAX_PARTS, length
            assert sum(part_length(length, n) for n in range(1, count + 1)) == length
            assert 0 < part_length(length, count) <= size
    with override_settings(PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE=1024):
        assert part_size(1000) == 5 * MiB


def test_a_completed_object_that_is_not_a_video_is_refused_and_deleted(moto_stack, moto_s3_server):
    env = moto_s3_server
    browser = Browser(moto_stack, make_user("s3-junk-owner", superuser=True))
    junk = b"This is a text file pretending to be a film.\n" * 40
    videos_before = Video.objects.count()
    answer, parts = browser.upload(junk, filename="film.mp4")
    assert answer["partCount"] == 1
    upload = Upload.objects.get(pk=answer["uploadId"])

    refused = browser.call("POST", "s3_complete", upload.pk, json={"parts": parts})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error.startswith("“film.mp4” is not a video we can read:"), error
    # Nothing of the bucket's address or signature in what the uploader reads.
    assert "X-Amz" not in error and env["AWS_S3_ENDPOINT_URL"] not in error and "http" not in error
    assert Video.objects.count() == videos_before
    upload.refresh_from_db()
    assert upload.state == "failed" and upload.error == error and upload.video is None
    assert not object_exists(env, upload.s3_key) and multipart_uploads(env, upload.s3_key) == []


def test_hostile_requests(moto_stack, moto_s3_server, two_part_video):
    env = moto_s3_server
    owner = make_user("s3-hostile-owner", superuser=True)
    browser = Browser(moto_stack, owner)
    created = browser.create(len(two_part_video))
    assert created.status_code == 201
    upload = Upload.objects.get(pk=created.json()["uploadId"])

    # Another editor (who may add videos) cannot touch it: every endpoint is a 404.
    editors = collection_group("S3 editors", Collection.get_first_root_node(), "add_video", "choose_video")
    other = Browser(moto_stack, make_user("s3-hostile-other", groups=[editors]))
    for method, name, args in (
        ("POST", "s3_sign_part", (upload.pk, 1)), ("GET", "s3_list_parts", (upload.pk,)),
        ("POST", "s3_complete", (upload.pk,)), ("DELETE", "s3_abort", (upload.pk,)),
        ("POST", "s3_sign_part", (uuid.uuid4(), 1)),
    ):
        answer = other.call(method, name, *args, json={})
        assert answer.status_code == 404, (name, answer.status_code, answer.text[:200])
    upload.refresh_from_db()
    assert upload.state == "receiving" and len(multipart_uploads(env, upload.s3_key)) == 1

    # Part numbers outside 1..10000, or past the upload's last part: 400, nothing signed.
    for part in (0, 10001, 3):
        answer = browser.sign(upload.pk, part)
        assert answer.status_code == 400, part
        assert "url" not in answer.json() and "does not exist" in answer.json()["error"]

    # A size over the limit: 413 before S3 is asked anything.
    uploads_before = Upload.objects.count()
    in_bucket_before = len(multipart_uploads(env, "videos/"))
    too_big = browser.create(8 * 1024**3 + 1)
    assert too_big.status_code == 413
    assert too_big.json()["error"] == (
        "This file is 8.0\xa0GB; the largest video you can upload is 8.0\xa0GB.")
    for bad in (0, -5, "12abc", True, None):
        assert browser.create(bad).status_code == 400, bad
    assert Upload.objects.count() == uploads_before
    assert len(multipart_uploads(env, "videos/")) == in_bucket_before

    # Per-collection rights: an editor of one collection cannot upload into another.
    root = Collection.get_first_root_node()
    mine, theirs = root.add_child(name="S3 mine"), root.add_child(name="S3 theirs")
    group = collection_group("S3 mine editors", mine, "add_video", "choose_video")
    limited = Browser(moto_stack, make_user("s3-limited", groups=[group]))
    refused = limited.create(1000, collection=theirs.pk)
    assert refused.status_code == 403 and Upload.objects.count() == uploads_before
    allowed = limited.create(1000, collection=mine.pk)
    assert allowed.status_code == 201
    assert Upload.objects.get(pk=allowed.json()["uploadId"]).collection == mine
    # Rights are checked again for every part: once taken away, no more part URLs.
    group.collection_permissions.all().delete()
    revoked = limited.sign(allowed.json()["uploadId"], 1)
    assert revoked.status_code == 403 and "url" not in revoked.json()
    # Nor a completion: refused before anything is assembled, the upload kept.
    no_right = limited.call("POST", "s3_complete", allowed.json()["uploadId"], json={})
    assert no_right.status_code == 403 and "no longer add videos" in no_right.json()["error"]
    kept = Upload.objects.get(pk=allowed.json()["uploadId"])
    assert kept.state == "receiving" and len(multipart_uploads(env, kept.s3_key)) == 1
    limited.call("DELETE", "s3_abort", allowed.json()["uploadId"])

    # No CSRF header, or not signed in: nothing starts.
    uploads_before = Upload.objects.count()
    assert browser.call("POST", "s3_create", json={"length": 10, "filename": "a.mp4"}, csrf=False).status_code == 403
    anonymous = requests.post(moto_stack.url(reverse("private_video:s3_create")), json={}, allow_redirects=False)
    assert anonymous.status_code in (302, 403) and Upload.objects.count() == uploads_before

    # A missing part, or a part of the wrong size: a clear 400, the upload still receiving.
    first = browser.put_part(upload.pk, 1, two_part_video[:PART])
    missing = browser.call("POST", "s3_complete", upload.pk, json={"parts": [first]})
    assert missing.status_code == 400
    assert missing.json()["error"].startswith("1 of 2 parts have not reached the store (first missing: part 2)")
    short = two_part_video[PART:-1000]
    browser.put_part(upload.pk, 2, short)  # moto does not check the signed Content-Length; S3 does
    wrong = browser.call("POST", "s3_complete", upload.pk, json={})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == (
        f"Part 2 is {len(short)} bytes, not the {len(two_part_video) - PART} this upload announced.")
    upload.refresh_from_db()
    assert upload.state == "receiving" and len(multipart_uploads(env, upload.s3_key)) == 1
    assert not object_exists(env, upload.s3_key)

    # An expired upload signs nothing more.
    Upload.objects.filter(pk=upload.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = browser.sign(upload.pk, 2)
    assert expired.status_code == 410 and expired.json()["error"] == "This upload has expired; start it again."
    browser.call("DELETE", "s3_abort", upload.pk)
    assert multipart_uploads(env, upload.s3_key) == []


def test_part_urls_open_their_own_part_only_on_s3rver(s3rver_stack, s3_server):
    """s3rver checks presigned signatures (SigV2 in this stack, which covers
    method, bucket, key, uploadId and partNumber), so a part URL cannot be
    reused for another part, another upload, or another method."""
    owner = make_user("s3rver-multipart-owner", superuser=True)
    browser = Browser(s3rver_stack, owner)
    first = browser.create(2 * PART)
    second = browser.create(2 * PART)
    assert first.status_code == second.status_code == 201, first.text
    a = Upload.objects.get(pk=first.json()["uploadId"])
    b = Upload.objects.get(pk=second.json()["uploadId"])
    url = browser.sign(a.pk, 1).json()["url"]
    assert url.startswith(s3_server["AWS_S3_ENDPOINT_URL"]) and "Signature=" in url
    body = b"\x00" * 1024

    for forged in (
        url.replace("partNumber=1", "partNumber=2"),
        url.replace(a.s3_upload_id, b.s3_upload_id),
        url.replace(a.s3_key, b.s3_key),
    ):
        assert forged != url
        refused = requests.put(forged, data=body, timeout=10)
        assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content, forged
    assert requests.get(url, timeout=10).status_code == 403
    assert requests.put(url, data=body, timeout=10).status_code == 200
    # The other upload's own URL works for it.
    assert requests.put(browser.sign(b.pk, 2).json()["url"], data=body, timeout=10).status_code == 200


CORS_ORIGIN = "https://video.example.com"


def s3_storages(env):
    from django.conf import settings

    return {
        **settings.STORAGES,
        "private": {
            "BACKEND": "private_video.storage.PrivateS3Storage",
            "OPTIONS": {
                "bucket_name": env["AWS_STORAGE_BUCKET_NAME"],
                "endpoint_url": env["AWS_S3_ENDPOINT_URL"],
                "region_name": env["AWS_S3_REGION_NAME"],
                "access_key": env["AWS_ACCESS_KEY_ID"],
                "secret_key": env["AWS_SECRET_ACCESS_KEY"],
            },
        },
    }


def test_the_cors_check_warns_until_the_bucket_lets_the_site_put_parts(moto_stack, moto_s3_server):
    client, bucket = bucket_of(moto_s3_server)
    good = {"AllowedOrigins": [CORS_ORIGIN], "AllowedMethods": ["PUT"], "AllowedHeaders": ["Content-Type"],
            "ExposeHeaders": ["ETag"]}
    cases = [
        (None, "the bucket has no CORS configuration"),
        ([{**good, "AllowedOrigins": ["https://elsewhere.example.com"]}], f"no CORS rule lets {CORS_ORIGIN} PUT"),
        ([{**good, "AllowedMethods": ["GET"]}], f"no CORS rule lets {CORS_ORIGIN} PUT"),
        ([{**good, "ExposeHeaders": []}], f"the CORS rule that lets {CORS_ORIGIN} PUT does not expose the ETag header"),
        ([good], None),
        ([{**good, "AllowedOrigins": ["https://*.example.com"], "ExposeHeaders": ["etag"]}], None),
    ]
    try:
        with override_settings(STORAGES=s3_storages(moto_s3_server), WAGTAILADMIN_BASE_URL=CORS_ORIGIN + "/"):
            for rules, problem in cases:
                client.delete_bucket_cors(Bucket=bucket)
                if rules:
                    client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": rules})
                messages = check_bucket_cors(None)
                if problem is None:
                    assert messages == [], rules
                else:
                    assert [m.id for m in messages] == ["private_video.W002"], rules
                    assert messages[0].msg == (
                        f"Uploads straight to the private bucket {bucket!r} will fail in the browser: {problem}.")
                    assert "ExposeHeaders" in messages[0].hint
        # With local storage there is nothing to check (and no bucket is asked).
        assert check_bucket_cors(None) == []

        # At startup: manage.py check on the S3 stack (its WAGTAILADMIN_BASE_URL is the default).
        client.delete_bucket_cors(Bucket=bucket)
        warned = moto_stack.manage("check", check=False)
        assert "private_video.W002" in warned.stderr + warned.stdout
        assert "no CORS configuration" in warned.stderr + warned.stdout
    finally:
        client.delete_bucket_cors(Bucket=bucket)


@pytest.fixture
def http_files(tmp_path):
    """A throwaway HTTP server on loopback serving ``tmp_path``, where
    ``/moved`` redirects to ``/clip.mp4``."""
    import http.server
    import threading
    from functools import partial

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/clip.mp4")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_remote_probe_reads_that_one_url_only(http_files, sample_video):
    """probe_video_url (how a completed S3 upload is checked in place): the
    URL's own scheme only, no redirect, no playlist pointing elsewhere, no
    local file, and the size plausibility from the store's size."""
    from private_video.probe import ProbeError, probe_video_url

    folder, base = http_files
    data = open(sample_video, "rb").read()
    (folder / "clip.mp4").write_bytes(data)
    info = probe_video_url(f"{base}/clip.mp4", len(data))
    assert info.extension == "mp4" and info.has_video

    with pytest.raises(ProbeError):
        probe_video_url(f"{base}/moved", len(data))
    (folder / "list.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{base}/clip.mp4\n#EXT-X-ENDLIST\n")
    with pytest.raises(ProbeError, match="playlist"):
        probe_video_url(f"{base}/list.m3u8", 200)
    with pytest.raises(ValueError):
        probe_video_url(f"file://{sample_video}", len(data))
    with pytest.raises(ProbeError, match="too small"):
        probe_video_url(f"{base}/clip.mp4", 3)
