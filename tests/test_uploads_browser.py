"""Chromium uploads two videos through the admin's resumable uploader (Uppy +
tus, through nginx and gunicorn), the tab is reloaded mid-way, the same files
are chosen again: both resume from the offset the server holds (no new
upload, no byte before that offset sent again) and finish, and the videos
are transcoded by the worker and playable.

The uplink is throttled (DevTools network emulation) so the reload lands
mid-upload, and the stack's chunk is 1 MiB so each file is several PATCHes.

With STORAGE=s3 (moto's S3 server, with the bucket CORS rule docs/s3.md
gives) the same page sends S3 multipart parts straight to the bucket: after a
reload the parts the bucket holds are not sent again, and no part body goes
through nginx or gunicorn."""

import re
import time

import pytest
from django.urls import reverse

from private_video.models import Video
from private_video.uploads import staging
from private_video.uploads.models import Upload
from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .conftest import S3_BUCKET, _start_stack, s3_client
from .helpers import make_user, make_video_page, stack_session, wait_for_job

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CHUNK = 1024 * 1024
# Bytes per second for the whole page: both files share it.
UPLINK = 2_000_000
# S3's smallest part (but the last one).
S3_PART = 5 * 1024 * 1024


# Each worker stack transcodes every job in the shared database: this one
# stops after its test, before the S3 stack's worker starts (a local-storage
# worker would take the S3 video's job and not find its file).
@pytest.fixture
def upload_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={"PRIVATE_VIDEO_TUS_CHUNK_SIZE": str(CHUNK)}, with_worker=True,
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def noisy_videos(tmp_path_factory):
    """Two real videos of ~6 MB each: 4 s of a small picture with uncompressed
    192 kHz stereo sound, bulky to send but cheap to transcode."""
    folder = tmp_path_factory.mktemp("resumable")
    return [
        make_test_video(folder / name, duration=4, acodec="pcm_s32le", extra_args=("-ar", "192000", "-ac", "2"))
        for name in ("first-take.mov", "second-take.mov")
    ]


@pytest.fixture(scope="module")
def s3_upload_stack(tmp_path_factory, stack_database_url, static_root, moto_s3_server):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={**moto_s3_server, "PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE": str(S3_PART)}, with_worker=True,
    )
    yield stack
    stack.stop()


def wait_until(condition, timeout=20, message="condition", page=None):
    """Poll ``condition``; with ``page``, Playwright's events are delivered meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if page is not None:
            page.wait_for_timeout(100)
        else:
            time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def test_two_uploads_resume_after_a_reload_and_become_playable(upload_stack, noisy_videos, output_dir, monkeypatch):
    # The database is read while Playwright's (sync) event loop runs in this thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    stack = upload_stack
    editor = make_user("resumer", superuser=True)
    sizes = {path.name: path.stat().st_size for path in noisy_videos}
    assert all(size > 4 * CHUNK for size in sizes.values()), sizes
    cookie = stack_session(editor).cookies["sessionid"]

    # Every tus request the page makes, and the offset each PATCH answer confirms.
    creations, patches = [], []

    def on_response(response):
        request = response.request
        if "/uploads/tus/" not in request.url:
            return
        if request.method == "POST":
            creations.append(response.headers.get("location"))
        elif request.method == "PATCH" and response.status == 204:
            patches.append((
                request.url.rstrip("/").rsplit("/", 1)[-1],
                int(request.headers["upload-offset"]),
                int(response.headers["upload-offset"]),
            ))

    with chromium_page(output_dir, session_cookie=cookie, base_url=stack.base_url) as page:
        page.on("response", on_response)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": UPLINK,
        })
        page.goto(stack.url(reverse("private_video:add")))
        assert page.locator("#video-upload-form").get_attribute("data-upload-backend") == "tus"
        page.set_input_files("[data-file-input]", [str(path) for path in noisy_videos])

        # Both uploads under way, each with at least one chunk on the server, neither done.
        def both_midway():
            uploads = list(Upload.objects.filter(user=editor))
            if len(uploads) != 2:
                return None
            held = {u.filename: staging.size(u.pk) or 0 for u in uploads}
            return uploads if all(CHUNK <= held[name] < sizes[name] for name in held) else None

        uploads = wait_until(both_midway, message="both uploads mid-way")
        by_name = {upload.filename: upload for upload in uploads}
        first = page.locator(".video-upload__item").nth(0)
        detail = first.locator("[data-detail]").inner_text()
        assert re.fullmatch(r"[\d.]+ [KM]B of [\d.]+ MB, [\d.]+ [KM]B/s, (\d+ s|\d+ min \d+ s) left", detail), detail
        page.screenshot(path=str(output_dir / "uploading.png"))

        # Pause holds the first file (the server gets nothing more) while the second goes on.
        first.locator("[data-pause]").click()
        assert first.locator("[data-state]").inner_text() == "Paused"
        page.wait_for_timeout(300)  # what the cut request carried is written
        held = staging.size(by_name["first-take.mov"].pk)
        other = staging.size(by_name["second-take.mov"].pk)
        page.wait_for_timeout(1000)
        assert staging.size(by_name["first-take.mov"].pk) == held
        assert staging.size(by_name["second-take.mov"].pk) > other
        first.locator("[data-pause]").click()
        assert first.locator("[data-pause]").inner_text() == "Pause"
        wait_until(lambda: (staging.size(by_name["first-take.mov"].pk) or 0) > held, message="resumed", page=page)
        assert wait_until(both_midway, message="both still mid-way")

        page.reload()
        held_at_reload = {u.pk: staging.size(u.pk) for u in uploads}
        assert all(CHUNK <= held < sizes[u.filename] for u, held in zip(uploads, held_at_reload.values()))
        patches_before = len(patches)
        creations_before = len(creations)

        # The page remembers both: they are listed as interrupted, with what the server holds.
        interrupted = page.locator(".video-upload__item.is-interrupted")
        interrupted.nth(1).wait_for()
        assert interrupted.count() == 2
        page.wait_for_function(
            "[...document.querySelectorAll('.is-interrupted [data-detail]')].every(e => / received$/.test(e.textContent))"
        )
        page.screenshot(path=str(output_dir / "interrupted.png"))

        # Choosing the same files again resumes them.
        page.set_input_files("[data-file-input]", [str(path) for path in noisy_videos])
        # The network drops for a while: the uploads retry on their own and go on.
        wait_until(lambda: len(patches) > patches_before, message="a PATCH after the reload", page=page)
        cdp.send("Network.emulateNetworkConditions", {
            "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1,
        })
        page.wait_for_timeout(1500)
        dropped = len(patches)
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": UPLINK,
        })
        page.wait_for_function(
            "document.querySelectorAll('.video-upload__item.is-done, .video-upload__item.is-error').length === 2",
            timeout=60_000,
        )
        states = page.locator(".video-upload__item [data-state]").all_inner_texts()
        assert sorted(states) == ["Uploaded: first-take", "Uploaded: second-take"], states
        edit_links = page.locator(".video-upload__item [data-edit]")
        assert edit_links.count() == 2
        page.screenshot(path=str(output_dir / "done.png"))

    assert len(patches) > dropped  # went on after the drop
    # No new upload was created after the reload: the same two were resumed...
    assert len(creations) == creations_before == 2
    assert Upload.objects.filter(user=editor).count() == 2
    # ... each from at least what the server held when the tab went away, never from 0,
    # and no byte after that was sent twice.
    for upload in uploads:
        upload.refresh_from_db()
        assert upload.state == Upload.State.COMPLETE, (upload.state, upload.error)
        after = sorted((start, end) for pk, start, end in patches[patches_before:] if pk == str(upload.pk))
        assert after, "no PATCH after the reload"
        resumed_from = after[0][0]
        assert resumed_from >= held_at_reload[upload.pk] > 0
        # Back to back: each PATCH starts where the server's offset was, none repeats a byte.
        assert all(later[0] >= earlier[1] for earlier, later in zip(after, after[1:])), after
        assert after[-1][1] == sizes[upload.filename]
        assert not staging.path_for(upload.pk).exists()  # the staged bytes became the video

    # Both are videos, transcoded, and play on a page.
    videos = {video.title: video for video in Video.objects.filter(uploaded_by_user=editor)}
    assert sorted(videos) == ["first-take", "second-take"]
    session = stack_session(editor)
    for path in noisy_videos:
        video = videos[path.stem]
        assert video.file_size == sizes[path.name]
        assert [u.video_id for u in Upload.objects.filter(filename=path.name)] == [video.pk]
        wait_for_job(video, stack)
        watch_page = make_video_page(video, title=f"Watch {path.stem}")
        response = session.get(
            stack.url(reverse("media_access:playback", args=[watch_page.pk, video.pk])), timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()


def test_s3_multipart_from_chromium_resumes_after_a_reload(s3_upload_stack, moto_s3_server, output_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    stack, env = s3_upload_stack, moto_s3_server
    video_path = make_test_video(
        tmp_path / "bucket-take.mov", duration=8, acodec="pcm_s32le", extra_args=("-ar", "192000", "-ac", "2"),
    )
    size = video_path.stat().st_size
    assert size > 2 * S3_PART, size
    client = s3_client(env)
    try:
        previous_cors = client.get_bucket_cors(Bucket=S3_BUCKET)["CORSRules"]
    except client.exceptions.ClientError:
        previous_cors = None
    # docs/s3.md's rule, for this stack's origin.
    client.put_bucket_cors(Bucket=S3_BUCKET, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [stack.base_url], "AllowedMethods": ["PUT"], "AllowedHeaders": ["Content-Type"],
        "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3600,
    }]})
    editor = make_user("bucket-uploader", superuser=True)
    cookie = stack_session(editor).cookies["sessionid"]
    parts_stored = []  # (part number, before/after the reload) of each part the bucket took

    def on_response(response):
        request = response.request
        if request.method == "PUT" and request.url.startswith(env["AWS_S3_ENDPOINT_URL"]) and response.ok:
            part = int(re.search(r"[?&]partNumber=(\d+)", request.url).group(1))
            parts_stored.append((part, phase[0]))

    phase = ["before"]
    try:
        with chromium_page(output_dir, session_cookie=cookie, base_url=stack.base_url) as page:
            page.on("response", on_response)
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 2 * UPLINK,
            })
            page.goto(stack.url(reverse("private_video:add")))
            assert page.locator("#video-upload-form").get_attribute("data-upload-backend") == "s3"
            page.set_input_files("[data-file-input]", [str(video_path)])
            wait_until(lambda: parts_stored, message="a part in the bucket", page=page)
            page.reload()
            phase[0] = "after"
            before = {part for part, when in parts_stored if when == "before"}
            assert before and len(before) < -(-size // S3_PART)

            page.locator(".video-upload__item.is-interrupted").wait_for()
            page.set_input_files("[data-file-input]", [str(video_path)])
            page.wait_for_function(
                "document.querySelectorAll('.video-upload__item.is-done, .video-upload__item.is-error').length === 1",
                timeout=60_000,
            )
            assert page.locator(".video-upload__item [data-state]").inner_text() == "Uploaded: bucket-take"
    finally:
        if previous_cors:
            client.put_bucket_cors(Bucket=S3_BUCKET, CORSConfiguration={"CORSRules": previous_cors})
        else:
            client.delete_bucket_cors(Bucket=S3_BUCKET)

    # One upload, resumed: the parts stored before the reload were not sent again.
    upload = Upload.objects.get(user=editor)
    assert upload.backend == Upload.Backend.S3 and upload.state == Upload.State.COMPLETE, upload.error
    after = [part for part, when in parts_stored if when == "after"]
    assert sorted(before | set(after)) == list(range(1, -(-size // S3_PART) + 1))
    assert not before & set(after), (before, after)
    # The bytes never went through the site: no PUT reached nginx or gunicorn.
    site_log = stack.log_text("nginx") + (stack.root / "gunicorn-access.log").read_text()
    assert '"PUT ' not in site_log
    video = upload.video
    assert video.file_size == size and video.title == "bucket-take"
    wait_for_job(video, stack)
    watch_page = make_video_page(video, title="Watch the bucket take")
    response = stack_session(editor).get(
        stack.url(reverse("media_access:playback", args=[watch_page.pk, video.pk])), timeout=10
    )
    assert response.status_code == 200, response.text


def test_an_interrupted_upload_can_be_discarded(stack, noisy_videos, output_dir, monkeypatch):
    """After a reload, Discard on an interrupted upload cancels it on the
    server (its staged bytes go) and the page forgets it. (The shared stack:
    its 64 MiB chunk is one PATCH, streamed to the staging file as it comes.)"""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    editor = make_user("discarder", superuser=True)
    cookie = stack_session(editor).cookies["sessionid"]
    with chromium_page(output_dir, session_cookie=cookie, base_url=stack.base_url) as page:
        cdp = page.context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": UPLINK,
        })
        page.goto(stack.url(reverse("private_video:add")))
        page.set_input_files("[data-file-input]", [str(noisy_videos[0])])

        def under_way():
            upload = Upload.objects.filter(user=editor).first()
            return upload if upload and (staging.size(upload.pk) or 0) >= CHUNK else None

        upload = wait_until(under_way, message="an upload under way")
        page.reload()
        row = page.locator(".video-upload__item.is-interrupted")
        row.wait_for()
        row.locator("[data-forget]").click()
        row.wait_for(state="detached")
        upload.refresh_from_db()
        assert upload.state == Upload.State.CANCELLED
        assert not staging.path_for(upload.pk).exists()
        page.reload()
        page.wait_for_load_state("networkidle")
        assert page.locator(".video-upload__item").count() == 0
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('tus::')).length") == 0
