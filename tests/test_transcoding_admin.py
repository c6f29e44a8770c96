"""What editors see: status, progress and renditions in the video library,
and the re-run action with its permission check."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from tests.helpers import make_user, make_video
from transcoding.status import video_status
from transcoding.models import Rendition, TranscodeJob
from transcoding.profiles import ladder_signature

pytestmark = pytest.mark.django_db

DUMMY_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
}


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("editor-admin", superuser=True))
    return client


def job_for(video, **fields):
    return TranscodeJob.objects.create(
        video=video, source_name=video.file.name, ladder_signature=ladder_signature(), **fields
    )


def test_listing_shows_progress_bar_and_eta(sample_video, admin_client):
    video = make_video(sample_video, title="Busy clip")
    job_for(video, status="processing", progress=42, eta_seconds=17, playable=True, heartbeat_at=timezone.now())
    html = admin_client.get(reverse("private_video:index")).content.decode()
    assert 'data-video-status="processing"' in html
    assert "Processing, playable 42%" in html
    assert '<progress class="video-progress" max="100" value="42"' in html
    assert "about 17 s left" in html


def test_listing_shows_failure_reason_and_ready(sample_video, admin_client):
    failed = make_video(sample_video, title="Broken clip")
    job_for(failed, status="failed", error="The file is damaged or is not a video ffmpeg can read.")
    ready = make_video(sample_video, title="Done clip")
    job_for(ready, status="ready", progress=100)
    html = admin_client.get(reverse("private_video:index")).content.decode()
    assert 'data-video-status="failed"' in html and "The file is damaged" in html
    assert 'data-video-status="ready"' in html and ">Ready<" in html


def test_edit_view_lists_renditions_with_size_and_bitrate(sample_video, admin_client):
    video = make_video(sample_video, title="Rendered")
    job_for(video, status="ready", progress=100)
    Rendition.objects.create(
        video=video, name="hls-720p", kind="hls-video", file="videos/x/hls-720p.m3u8",
        content_type="application/vnd.apple.mpegurl",
        size=2_500_000, width=1280, height=720, bitrate=2_800_000,
    )
    html = admin_client.get(reverse("private_video:edit", args=[video.pk])).content.decode()
    assert "data-video-processing" in html and 'data-video-status="ready"' in html
    assert 'data-rendition="hls-720p"' in html
    assert "2.4\xa0MB" in html and "1280×720" in html and "2800 kbit/s" in html
    # Up to date and ready: nothing to re-run.
    assert "data-video-rerun" not in html


def test_failed_job_offers_rerun_and_shows_ffmpeg_output(sample_video, admin_client):
    video = make_video(sample_video, title="Failed")
    job_for(video, status="failed", error="ffmpeg failed: boom", stderr_tail="line one\nboom")
    html = admin_client.get(reverse("private_video:edit", args=[video.pk])).content.decode()
    assert "data-video-rerun" in html and "ffmpeg failed: boom" in html and "line one" in html


def test_rerun_is_post_only(sample_video, admin_client):
    video = make_video(sample_video, title="Get")
    url = reverse("private_video_transcoding:rerun", args=[video.pk])
    assert admin_client.get(url).status_code == 405


@override_settings(TASKS=DUMMY_TASKS)
def test_rerun_queues_a_new_job_for_a_failed_video(sample_video, admin_client):
    video = make_video(sample_video, title="Again")
    old = job_for(video, status="failed", error="boom")
    response = admin_client.post(reverse("private_video_transcoding:rerun", args=[video.pk]))
    assert response.status_code == 302 and response.url == reverse("private_video:edit", args=[video.pk])
    latest = video.transcode_jobs.latest()
    assert latest.pk != old.pk and latest.status == "queued"


@override_settings(TASKS=DUMMY_TASKS)
def test_rerun_of_an_outdated_ready_video(sample_video, admin_client):
    video = make_video(sample_video, title="Outdated")
    job_for(video, status="ready").__class__.objects.filter(video=video).update(ladder_signature="old-ladder")
    assert video_status(video).outdated and video_status(video).can_rerun
    admin_client.post(reverse("private_video_transcoding:rerun", args=[video.pk]))
    assert video.transcode_jobs.count() == 2


@override_settings(TASKS=DUMMY_TASKS)
def test_rerun_of_an_up_to_date_video_does_nothing(sample_video, admin_client):
    video = make_video(sample_video, title="Fine")
    job_for(video, status="ready")
    admin_client.post(reverse("private_video_transcoding:rerun", args=[video.pk]))
    assert video.transcode_jobs.count() == 1


@override_settings(TASKS=DUMMY_TASKS)
def test_rerun_needs_change_permission_on_that_video(sample_video, client):
    video = make_video(sample_video, title="Not yours")
    job_for(video, status="failed", error="boom")
    group = Group.objects.create(name="Admin access only")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(make_user("visitor", groups=[group]))
    response = client.post(reverse("private_video_transcoding:rerun", args=[video.pk]), follow=True)
    # Wagtail turns PermissionDenied in the admin into a redirect home with a message.
    assert response.redirect_chain == [(reverse("wagtailadmin_home"), 302)]
    assert "do not have permission" in response.content.decode()
    assert video.transcode_jobs.count() == 1


def test_processing_status_endpoint_renders_the_current_badge(sample_video, admin_client):
    video = make_video(sample_video, title="Polled")
    job = job_for(video, status="processing", progress=10, heartbeat_at=timezone.now())
    url = reverse("private_video_transcoding:processing_status", args=[video.pk])
    edit = admin_client.get(reverse("private_video:edit", args=[video.pk])).content.decode()
    assert f'data-video-status-url="{url}"' in edit and "transcoding/js/processing-status" in edit
    listing = admin_client.get(reverse("private_video:index")).content.decode()
    assert f'data-video-status-url="{url}"' in listing and "transcoding/js/processing-status" in listing

    TranscodeJob.objects.filter(pk=job.pk).update(progress=64, eta_seconds=5)
    response = admin_client.get(url)
    assert response.status_code == 200
    # Wagtail's admin adds its own never-cache directives beside ours.
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    body = response.json()
    assert (body["code"], body["progress"], body["eta_seconds"]) == ("processing", 64, 5)
    assert 'value="64"' in body["html"] and "about 5 s left" in body["html"]
    assert admin_client.post(url).status_code == 405


def test_processing_status_needs_permission_on_that_video(sample_video, client):
    video = make_video(sample_video, title="Private status")
    job_for(video, status="failed", error="secret path /srv/x")
    group = Group.objects.create(name="Admin access only, status")
    group.permissions.add(Permission.objects.get(codename="access_admin"))
    client.force_login(make_user("peeker", groups=[group]))
    response = client.get(reverse("private_video_transcoding:processing_status", args=[video.pk]))
    assert response.status_code != 200 and b"secret path" not in response.content
