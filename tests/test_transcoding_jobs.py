"""Job life: enqueued on commit, superseded, recovered after a worker dies,
bounded ffmpeg concurrency, storage-API reads, renditions removed with the
original."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files import File
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.helpers import make_video
from tests.stack import REPO
from transcoding import pipeline
from transcoding.models import Rendition, TranscodeJob
from transcoding.profiles import Rung
from transcoding.runner import ffmpeg_slot
from transcoding.tasks import enqueue_transcode, recover_stale_jobs
from transcoding.testmedia import make_test_video

pytestmark = [pytest.mark.django_db(transaction=True, serialized_rollback=True)]

LADDER = [Rung(144, 300), Rung(90, 150)]
DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
}


@pytest.fixture
def auto_transcode():
    with override_settings(
        TRANSCODING_AUTO_ENQUEUE=True, TRANSCODING_LADDER=LADDER, TRANSCODING_PROGRESSIVE_HEIGHT=144
    ):
        yield


def rendition_files(video):
    storage = video.file.storage
    return [storage.path(r.file.name) for r in video.renditions.all()]


def test_saving_a_video_only_enqueues_a_job(sample_video):
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        video = make_video(sample_video, title="Queued")
    job = video.transcode_jobs.get()
    assert job.status == "queued" and job.source_name == video.file.name
    # Waiting in the database queue for a transcoding worker, not run here.
    task = DBTaskResult.objects.get(backend_name="transcoding")
    assert task.args_kwargs["args"] == [job.pk]
    assert str(task.id) == job.task_id
    assert not video.renditions.exists()
    assert video.status.code == "queued"


def test_tests_do_not_transcode_unless_asked(sample_video):
    video = make_video(sample_video, title="Quiet")
    assert not video.transcode_jobs.exists()
    assert video.status.code == "uploaded"


def test_replacing_the_original_replaces_the_renditions(sample_video, media_dir, auto_transcode):
    video = make_video(sample_video, title="Replace me")
    first_job = video.transcode_jobs.get()
    assert first_job.status == "ready"
    old_files = rendition_files(video)
    assert old_files and all(os.path.exists(path) for path in old_files)

    other = make_test_video(media_dir / "replacement.mp4", duration=2, width=256, height=144)
    with other.open("rb") as handle:
        video.file.save("replacement.mp4", File(handle), save=False)
    video.save()
    assert not any(os.path.exists(path) for path in old_files)
    latest = video.transcode_jobs.latest()
    assert latest.pk != first_job.pk and latest.status == "ready"
    assert latest.source_name == video.file.name
    assert video.renditions.get(name="hls-144p").width == 256
    assert "hls-180p" not in set(video.renditions.values_list("name", flat=True))


def test_saving_without_a_new_file_does_not_transcode_again(sample_video, auto_transcode):
    video = make_video(sample_video, title="Rename me")
    video.title = "Renamed"
    video.save()
    assert video.transcode_jobs.count() == 1


def test_deleting_a_video_deletes_its_rendition_files(sample_video, auto_transcode):
    video = make_video(sample_video, title="Delete me")
    files = rendition_files(video)
    assert len(files) >= 8
    video.delete()
    assert not Rendition.objects.exists()
    assert not any(os.path.exists(path) for path in files)
    # Publication folders go with their last file.
    assert not any(os.path.exists(os.path.dirname(path)) for path in files)


def test_a_newer_job_supersedes_an_unfinished_one(sample_video):
    video = make_video(sample_video, title="Twice")
    with override_settings(TASKS=DB_TASKS):
        first = enqueue_transcode(video)
        second = enqueue_transcode(video)
    first.refresh_from_db()
    assert (first.status, second.status) == ("superseded", "queued")
    assert pipeline.run_job(first.pk) == "skipped"


def test_stale_job_is_requeued_and_finished(sample_video):
    video = make_video(sample_video, title="Stale")
    job = TranscodeJob.objects.create(
        video=video, source_name=video.file.name, status="processing", attempts=1,
        worker="gone:1", heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    fresh = TranscodeJob.objects.create(
        video=make_video(sample_video, title="Busy"), source_name="x", status="processing",
        attempts=1, worker="alive:2", heartbeat_at=timezone.now(),
    )
    with override_settings(TRANSCODING_LADDER=LADDER, TRANSCODING_LEASE_SECONDS=60):
        assert recover_stale_jobs() == [job.pk]
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.status == "ready" and job.attempts == 2
    assert fresh.status == "processing"


def test_queued_job_whose_task_was_never_sent_is_sent_again(sample_video):
    video = make_video(sample_video, title="Unsent")
    job = TranscodeJob.objects.create(video=video, source_name=video.file.name)
    TranscodeJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    with override_settings(TRANSCODING_LADDER=LADDER, TASKS=DB_TASKS):
        assert recover_stale_jobs() == [job.pk]
    job.refresh_from_db()
    assert job.status == "queued" and job.task_id
    assert DBTaskResult.objects.filter(backend_name="transcoding").count() == 1


def test_job_failing_its_lease_too_often_fails_readably(sample_video):
    video = make_video(sample_video, title="Crashy")
    job = TranscodeJob.objects.create(
        video=video, source_name=video.file.name, status="processing", attempts=3,
        worker="gone:1", heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    assert recover_stale_jobs() == []
    job.refresh_from_db()
    assert job.status == "failed" and "stopped responding 3 times" in job.error


def _spawn_worker(log_path, database_name):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cms.settings.base",
        "DATABASE_URL": f"sqlite:///{database_name}",
        "TRANSCODING_LEASE_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "transcoding_worker", "--interval", "0.2", "--no-startup-delay"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return process, log


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(process, log):
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    log.close()


def test_job_of_a_killed_worker_is_recovered_by_the_next_worker(sample_video, tmp_path):
    database = settings.DATABASES["default"]["NAME"]
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        video = make_video(sample_video, title="Orphan")
    job = video.transcode_jobs.get()
    workers = []
    try:
        # Hold the host's only ffmpeg slot so the worker sits mid-job, heartbeating.
        with ffmpeg_slot():
            first, first_log = _spawn_worker(tmp_path / "first.log", database)
            workers.append((first, first_log))
            _wait_for(lambda: TranscodeJob.objects.get(pk=job.pk).status == "processing", 60,
                      "the first worker to claim the job")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        time.sleep(3)  # longer than the 2 s lease
        job.refresh_from_db()
        assert job.status == "processing", "nobody may finish a dead worker's job by itself"

        second, second_log = _spawn_worker(tmp_path / "second.log", database)
        workers.append((second, second_log))
        _wait_for(lambda: TranscodeJob.objects.get(pk=job.pk).status in ("ready", "failed"), 90,
                  "the second worker to recover and finish the job")
        job.refresh_from_db()
        assert job.status == "ready", (job.error, (tmp_path / "second.log").read_text()[-3000:])
        assert job.attempts == 2 and job.worker.endswith(f":{second.pid}")
        assert video.renditions.filter(name="hls-master").exists()
    finally:
        for process, log in workers:
            _stop(process, log)


def test_ffmpeg_slots_bound_concurrency(tmp_path):
    events = []
    with override_settings(TRANSCODING_MAX_FFMPEG_PROCESSES=1, TRANSCODING_LOCK_DIR=str(tmp_path)):
        def second():
            with ffmpeg_slot(wait_callback=lambda: events.append("waited"), poll=0.05):
                events.append("second got slot")

        with ffmpeg_slot():
            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.3)
            assert "second got slot" not in events and "waited" in events
        thread.join(timeout=5)
        assert events[-1] == "second got slot"

    with override_settings(TRANSCODING_MAX_FFMPEG_PROCESSES=2, TRANSCODING_LOCK_DIR=str(tmp_path)):
        with ffmpeg_slot() as first, ffmpeg_slot() as other:
            assert {first, other} == {0, 1}


class RemoteStorage:
    """Looks like S3: no local path, bytes only through open()."""

    def __init__(self, real):
        self.real = real
        self.opened = []

    def path(self, name):
        raise NotImplementedError("no local path")

    def open(self, name, mode="rb"):
        self.opened.append(name)
        return self.real.open(name, mode)

    def __getattr__(self, attr):
        return getattr(self.real, attr)


def test_original_is_read_through_the_storage_api(sample_video, monkeypatch):
    from cms.storage import private_storage

    remote = RemoteStorage(private_storage())
    monkeypatch.setattr(pipeline, "private_storage", lambda: remote)
    video = make_video(sample_video, title="Remote")
    with override_settings(TRANSCODING_LADDER=LADDER):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", job.error
    assert remote.opened == [video.file.name]
    assert Path(video.renditions.get(name="hls-master").file.path).exists()
