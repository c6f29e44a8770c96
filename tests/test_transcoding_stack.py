"""The whole path as `make run` runs it: upload over HTTP through nginx and
gunicorn, the transcoder worker (Procfile "transcoder") makes the renditions,
and the watch URLs serve the HLS master, its rungs and byte ranges."""

import re
import time

import pytest
import requests

from private_video.models import Video
from transcoding.models import TranscodeJob

from .conftest import _start_stack
from .helpers import make_user, make_video_page, wait_for_job
from .test_stack_upload import PASSWORD, admin_session, post_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def worker_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, with_worker=True)
    yield stack
    stack.stop()


def test_upload_is_transcoded_by_the_worker_and_served_as_hls(worker_stack, sample_video):
    stack = worker_stack
    make_user("transcode-uploader", PASSWORD, superuser=True)
    session = admin_session(stack, "transcode-uploader")
    started = time.monotonic()
    response = post_video(stack, session, sample_video, "Worker clip.mp4")
    assert response.status_code == 200, response.text[:1000]
    video = Video.objects.get(pk=response.json()["pk"])

    job = wait_for_job(video, stack)
    # Done by the transcoder process, not by gunicorn during the upload.
    transcoder_pid = stack.processes["transcoder"].pid
    assert job.worker.endswith(f":{transcoder_pid}")
    assert job.playable_at is not None and job.task_id
    ready_after = time.monotonic() - started

    listing = session.get(stack.url("/admin/videos/"), timeout=10).text
    assert 'data-video-status="ready"' in listing

    page = make_video_page(video, title="Worker page")
    base = stack.url(f"/watch/{page.pk}/{video.pk}/")
    master = requests.get(base + "hls-master", timeout=10)
    assert master.status_code == 200, master.text[:300]
    variants = [line for line in master.text.splitlines() if line and not line.startswith("#")]
    assert variants == ["hls-180p"]
    playlist = requests.get(base + variants[0], timeout=10)
    assert playlist.status_code == 200 and "#EXT-X-MAP:URI=\"hls-180p-media\"" in playlist.text
    length, offset = (int(x) for x in re.search(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", playlist.text).groups())
    segment = requests.get(
        base + "hls-180p-media", headers={"Range": f"bytes={offset}-{offset + length - 1}"}, timeout=10
    )
    assert segment.status_code == 206 and len(segment.content) == length
    # A media segment: optional index boxes, then movie fragment(s).
    assert segment.content[4:8] in (b"moof", b"styp", b"sidx") and b"moof" in segment.content[:4096]
    print(f"upload → all renditions ready in {ready_after:.1f} s")


@pytest.mark.browser
def test_admin_progress_bar_moves_without_reload(stack, sample_video, output_dir, monkeypatch):
    from django.utils import timezone

    # Playwright's sync API runs an event loop in this thread; the database
    # writes below are plain synchronous test code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    from .browser import chromium_page
    from .helpers import make_video

    make_user("progress-watcher", PASSWORD, superuser=True)
    session = admin_session(stack, "progress-watcher")
    video = make_video(sample_video, title="Watched clip")
    job = TranscodeJob.objects.create(
        video=video, source_name=video.file.name, status="processing", progress=5,
        worker="elsewhere:1", heartbeat_at=timezone.now(),
    )
    with chromium_page(output_dir) as page:
        page.context.add_cookies(
            [{"name": c.name, "value": c.value, "url": stack.base_url} for c in session.cookies]
        )
        page.goto(stack.url("/admin/videos/"))
        bar = page.locator("progress.video-progress").first
        assert bar.get_attribute("value") == "5"
        TranscodeJob.objects.filter(pk=job.pk).update(progress=73, eta_seconds=9)
        page.wait_for_function(
            "document.querySelector('progress.video-progress')?.getAttribute('value') === '73'",
            timeout=15_000,
        )
        assert "about 9 s left" in page.inner_text("[data-video-status-holder]")
        TranscodeJob.objects.filter(pk=job.pk).update(status="ready", progress=100)
        page.wait_for_selector("[data-video-status='ready']", timeout=15_000)
