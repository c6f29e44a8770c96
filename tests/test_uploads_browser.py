"""Chromium uploads two videos through the admin's resumable uploader (Uppy +
tus, through nginx and gunicorn), the tab is reloaded mid-way, the same files
are chosen again: both resume from the offset the server holds (no new
upload, no byte before that offset sent again) and finish, and the videos
are transcoded by the worker and playable.

The uplink is throttled (DevTools network emulation) so the reload lands
mid-upload, and the stack's chunk is 1 MiB so each file is several PATCHes."""

import time

import pytest
from django.urls import reverse

from private_video.models import Video
from private_video.uploads import staging
from private_video.uploads.models import Upload
from transcoding.testmedia import make_test_video

from .browser import chromium_page
from .conftest import _start_stack
from .helpers import make_user, make_video_page, stack_session, wait_for_job

pytestmark = [
    pytest.mark.browser,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CHUNK = 1024 * 1024
# Bytes per second for the whole page: both files share it.
UPLINK = 2_000_000


@pytest.fixture(scope="module")
def upload_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={"PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE": str(CHUNK)}, with_worker=True,
    )
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def noisy_videos(tmp_path_factory):
    """Two real videos of ~5 MB each (noise does not compress)."""
    folder = tmp_path_factory.mktemp("resumable")
    return [
        make_test_video(
            folder / name, duration=2, video_args=("-vf", "noise=alls=60:allf=t", "-qp", "4"),
        )
        for name in ("first-take.mp4", "second-take.mp4")
    ]


def wait_until(condition, timeout=20, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
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
        detail = page.locator(".video-upload__item [data-detail]").first.inner_text()
        assert " of " in detail and "/s" in detail and "left" in detail, detail
        page.screenshot(path=str(output_dir / "uploading.png"))

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
        page.wait_for_function(
            "document.querySelectorAll('.video-upload__item.is-done, .video-upload__item.is-error').length === 2",
            timeout=60_000,
        )
        states = page.locator(".video-upload__item [data-state]").all_inner_texts()
        assert sorted(states) == ["Uploaded: first-take", "Uploaded: second-take"], states
        edit_links = page.locator(".video-upload__item [data-edit]")
        assert edit_links.count() == 2
        page.screenshot(path=str(output_dir / "done.png"))

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
        assert sum(end - start for start, end in after) == sizes[upload.filename] - resumed_from
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
