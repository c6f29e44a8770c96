"""Job life: enqueued on commit, superseded, recovered after a worker dies,
bounded ffmpeg concurrency, storage-API reads, renditions removed with the
original."""

import io
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
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from media_access.conf import setting as media_access_setting
from tests.helpers import make_video
from tests.stack import REPO, free_port
from transcoding.status import video_status
from transcoding import pipeline
from transcoding.models import Rendition, RetiredFile, TranscodeJob
from transcoding.profiles import Rung, segment_seconds
from transcoding.publish import delete_retired_files, retired_file_grace_seconds
from transcoding.runner import ffmpeg_slot
from transcoding.tasks import (
    PHASE_PRIORITY,
    enqueue_transcode,
    phase_queues,
    recover_stale_jobs,
    rerun,
    resend_after_seconds,
)
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
    assert task.args_kwargs["args"] == [job.pk, "playable"]
    assert str(task.id) == job.task_id
    # Ahead of every full ladder in the queue.
    assert task.priority == PHASE_PRIORITY["playable"] > PHASE_PRIORITY["ladder"]
    assert not video.renditions.exists()
    assert video_status(video).code == "queued"


def test_tests_do_not_transcode_unless_asked(sample_video):
    video = make_video(sample_video, title="Quiet")
    assert not video.transcode_jobs.exists()
    assert video_status(video).code == "uploaded"


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
    # Another worker, alive and busy with its ladder (a job in its playable
    # phase would rightly make the recovered job's ladder wait for it).
    fresh = TranscodeJob.objects.create(
        video=make_video(sample_video, title="Busy"), source_name="x", status="processing",
        phase="ladder", attempts=1, worker="alive:2", heartbeat_at=timezone.now(),
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
    long_ago = timezone.now() - timedelta(minutes=10)
    TranscodeJob.objects.filter(pk=job.pk).update(created_at=long_ago, queued_at=long_ago)
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


def _spawn_worker(log_path, database_name, **extra_env):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "cms.settings.base",
        "DATABASE_URL": f"sqlite:///{database_name}",
        "TRANSCODING_LEASE_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
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
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        video = make_video(sample_video, title="Orphan")
    job = video.transcode_jobs.get()
    workers = []
    try:
        # Hold the host's only ffmpeg slot so the worker sits mid-job, heartbeating.
        with ffmpeg_slot():
            first, first_log = _spawn_worker(tmp_path / "first.log", database, TRANSCODING_TEMP_DIR=str(scratch))
            workers.append((first, first_log))
            _wait_for(lambda: TranscodeJob.objects.get(pk=job.pk).status == "processing", 60,
                      "the first worker to claim the job")
            _wait_for(lambda: list(scratch.glob(f"transcode-{job.pk}-*")), 30, "the job's scratch folder")
            left_behind = list(scratch.glob(f"transcode-{job.pk}-*"))
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        time.sleep(3)  # longer than the 2 s lease
        job.refresh_from_db()
        assert job.status == "processing", "nobody may finish a dead worker's job by itself"
        assert all(path.is_dir() for path in left_behind), "SIGKILL runs no cleanup"

        second, second_log = _spawn_worker(tmp_path / "second.log", database, TRANSCODING_TEMP_DIR=str(scratch))
        workers.append((second, second_log))
        _wait_for(lambda: TranscodeJob.objects.get(pk=job.pk).status in ("ready", "failed"), 90,
                  "the second worker to recover and finish the job")
        job.refresh_from_db()
        assert job.status == "ready", (job.error, (tmp_path / "second.log").read_text()[-3000:])
        assert job.attempts == 2 and job.worker.endswith(f":{second.pid}")
        assert video.renditions.filter(name="hls-master").exists()
        # The dead worker's folder went when the next worker started; the
        # finished job left none.
        assert not any(path.exists() for path in left_behind)
        assert not [path.name for path in scratch.iterdir()]
    finally:
        for process, log in workers:
            _stop(process, log)


def test_two_workers_sharing_one_ffmpeg_slot_keep_their_leases(media_dir, tmp_path):
    """Every step can wait for the slot longer than the lease (here a
    neighbour holds it 4 s at a time, like another worker's long ladder, and
    the lease is 2 s): no job is taken from a worker that is alive."""
    database = settings.DATABASES["default"]["NAME"]
    source = make_test_video(media_dir / "slot-share.mp4", duration=2, width=320, height=240)
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        videos = [make_video(source, title=f"Share {i}") for i in range(2)]
    jobs = TranscodeJob.objects.filter(video__in=videos)
    stop = threading.Event()

    def neighbour():
        while not stop.is_set():
            with ffmpeg_slot(poll=0.05):
                stop.wait(4)
            time.sleep(0.7)  # a waiting worker (polling every 0.5 s) gets its turn

    hog = threading.Thread(target=neighbour)
    workers = []
    try:
        hog.start()
        for name in ("a", "b"):
            workers.append(_spawn_worker(tmp_path / f"{name}.log", database,
                                         TRANSCODING_MAX_FFMPEG_PROCESSES="1"))
        _wait_for(lambda: all(j.status in ("ready", "failed") for j in jobs.all()), 180,
                  "both jobs to finish")
    finally:
        stop.set()
        hog.join()
        for process, log in workers:
            _stop(process, log)
    logs = "\n".join((tmp_path / f"{n}.log").read_text()[-2000:] for n in ("a", "b"))
    for job in jobs.all():
        assert (job.status, job.attempts, job.error) == ("ready", 1, ""), logs
    assert "re-queued" not in logs and "recover_stale_jobs" not in logs


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
    from private_video.storage import private_storage

    remote = RemoteStorage(private_storage())
    monkeypatch.setattr(pipeline, "private_storage", lambda: remote)
    video = make_video(sample_video, title="Remote")
    with override_settings(TRANSCODING_LADDER=LADDER):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", job.error
    assert remote.opened == [video.file.name]
    assert Path(video.renditions.get(name="hls-master").file.path).exists()


def _unreachable_task_queue():
    """The transcoding backend on RQ with a Redis that is not there: every send fails."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    return override_settings(
        TASKS={**DB_TASKS, "transcoding": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": phase_queues()}},
        RQ_QUEUES={name: {"URL": url} for name in phase_queues()},
    )


def test_a_job_whose_send_fails_is_sent_again(sample_video):
    # The upload itself succeeds; the job waits, queued, without a task.
    with _unreachable_task_queue(), override_settings(TRANSCODING_AUTO_ENQUEUE=True):
        video = make_video(sample_video, title="Unsendable")
    job = video.transcode_jobs.get()
    assert (job.status, job.task_id) == ("queued", "")
    # A stale job whose re-send fails goes back to "unsent", not lost with an old task id.
    stale = TranscodeJob.objects.create(
        video=make_video(sample_video, title="Stale, unsendable"), source_name="x", status="processing",
        attempts=1, worker="gone:1", task_id="old-task", heartbeat_at=timezone.now() - timedelta(minutes=10),
    )
    with _unreachable_task_queue(), override_settings(TRANSCODING_LEASE_SECONDS=60):
        assert recover_stale_jobs() == []
    stale.refresh_from_db()
    assert (stale.status, stale.task_id, stale.attempts) == ("queued", "", 2)

    # The queue is back: the next recovery pass (the worker runs one every
    # LEASE/4 s) sends both.
    later = timezone.now() + timedelta(seconds=resend_after_seconds() + 1)
    with override_settings(TASKS=DB_TASKS, TRANSCODING_LEASE_SECONDS=60):
        assert sorted(recover_stale_jobs(now=later)) == sorted([job.pk, stale.pk])
    tasks = {task.args_kwargs["args"][0]: task for task in DBTaskResult.objects.filter(backend_name="transcoding")}
    for sent in (job, stale):
        sent.refresh_from_db()
        assert sent.status == "queued" and sent.task_id == str(tasks[sent.pk].id)


def _master_rungs(video):
    master = video.renditions.get(name="hls-master")
    return [line for line in Path(master.file.path).read_text().splitlines() if line.startswith("hls-")]


def test_rerun_of_a_ready_video_keeps_its_ladder_until_the_new_one_replaces_it(sample_video, monkeypatch):
    video = make_video(sample_video, title="Ready")
    with override_settings(TRANSCODING_LADDER=LADDER):
        first = enqueue_transcode(video)
    first.refresh_from_db()
    assert first.status == "ready"
    rungs = _master_rungs(video)
    assert len(rungs) == 2, rungs  # 144p, 90p
    old_files = rendition_files(video)

    seen = []
    real_publish = pipeline.publish

    def watching_publish(job, video_, outputs, **kwargs):
        # What a player would find at each publish.
        seen.append((kwargs["complete"], _master_rungs(video), all(os.path.exists(p) for p in old_files)))
        return real_publish(job, video_, outputs, **kwargs)

    monkeypatch.setattr(pipeline, "publish", watching_publish)
    with override_settings(TRANSCODING_LADDER=LADDER):
        again = rerun(video)
    again.refresh_from_db()
    assert again.status == "ready" and again.playable, again.error
    # No quick version over the full ladder: one publish, the complete set.
    assert seen == [(True, rungs, True)]
    assert _master_rungs(video) == rungs
    # The replaced files stay for the grace period.
    assert set(rendition_files(video)).isdisjoint(old_files)
    assert all(os.path.exists(path) for path in old_files)


def test_replaced_files_are_deleted_after_the_grace_period(sample_video):
    video = make_video(sample_video, title="Graceful")
    with override_settings(TRANSCODING_LADDER=LADDER):
        enqueue_transcode(video)
        old_files = rendition_files(video)
        rerun(video)
    new_files = rendition_files(video)
    assert old_files and new_files and set(old_files).isdisjoint(new_files)
    grace = retired_file_grace_seconds()
    assert grace >= media_access_setting("TOKEN_LIFETIME") + segment_seconds()
    # The first job's quick version and then its ladder, each kept when replaced.
    retired = {video.file.storage.path(r.name) for r in RetiredFile.objects.filter(video=video)}
    assert set(old_files) < retired and all(os.path.exists(path) for path in retired)

    # Right after publishing nothing goes.
    assert delete_retired_files() == 0
    assert all(os.path.exists(path) for path in old_files)
    # After the grace period the periodic cleanup removes the old sets (and
    # their folders), not the new one.
    assert delete_retired_files(now=timezone.now() + timedelta(seconds=grace + 1)) == len(retired)
    assert not any(os.path.exists(path) for path in old_files)
    assert not any(os.path.exists(os.path.dirname(path)) for path in old_files)
    assert all(os.path.exists(path) for path in new_files)
    assert not RetiredFile.objects.exists()


def test_cleanup_command_deletes_expired_replaced_files(sample_video):
    video = make_video(sample_video, title="Command")
    with override_settings(TRANSCODING_LADDER=LADDER, TRANSCODING_RETIRED_FILE_GRACE_SECONDS=0):
        enqueue_transcode(video)
        old_files = rendition_files(video)
        rerun(video)
        assert all(os.path.exists(path) for path in old_files)
        retired = RetiredFile.objects.count()
        assert retired > len(old_files)  # the quick version's files too
        out = io.StringIO()
        call_command("transcoding_cleanup", stdout=out)
    assert f"replaced files deleted: {retired}" in out.getvalue()
    assert not any(os.path.exists(path) for path in old_files)
    assert all(os.path.exists(path) for path in rendition_files(video))


def test_deleting_a_video_deletes_its_replaced_files_at_once(sample_video):
    video = make_video(sample_video, title="Gone")
    with override_settings(TRANSCODING_LADDER=LADDER):
        enqueue_transcode(video)
        old_files = rendition_files(video)
        rerun(video)
    video.delete()
    assert not any(os.path.exists(path) for path in old_files)


def test_burst_of_uploads_is_playable_before_any_full_ladder_starts(media_dir, tmp_path):
    """Six uploads at once, two workers: every video's quick version before
    any worker starts a full ladder (from the recorded timestamps)."""
    database = settings.DATABASES["default"]["NAME"]
    source = make_test_video(media_dir / "burst.mp4", duration=2, width=320, height=240)
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS), transaction.atomic():
        videos = [make_video(source, title=f"Burst {i}") for i in range(6)]
    jobs = TranscodeJob.objects.filter(video__in=videos)
    workers = []
    try:
        for name in ("a", "b"):
            workers.append(_spawn_worker(tmp_path / f"{name}.log", database, TRANSCODING_LEASE_SECONDS="30"))
        _wait_for(lambda: all(j.status in ("ready", "failed") for j in jobs.all()), 240, "the burst to finish")
    finally:
        for process, log in workers:
            _stop(process, log)
    jobs = list(jobs.all())
    assert all(j.status == "ready" for j in jobs), [(j.status, j.error) for j in jobs]
    last_playable = max(j.playable_at for j in jobs)
    first_ladder = min(j.ladder_started_at for j in jobs)
    assert last_playable <= first_ladder, sorted(
        [(j.pk, "playable", j.playable_at) for j in jobs] + [(j.pk, "ladder", j.ladder_started_at) for j in jobs],
        key=lambda row: row[2])
    # Both workers took part.
    assert len({j.worker for j in jobs}) == 2


def test_a_stale_worker_cannot_publish_after_its_job_was_taken_over(sample_video, tmp_path):
    """The worker that lost its lease comes back and tries to publish: under
    the row lock it finds the job is another worker's, publishes nothing and
    leaves no files behind."""
    from transcoding.publish import JobSuperseded, Output, publish

    video = make_video(sample_video, title="Contested")
    with override_settings(TRANSCODING_LADDER=LADDER):
        enqueue_transcode(video)
    before = {r.name: r.file.name for r in video.renditions.all()}
    retired_before = RetiredFile.objects.count()
    job = TranscodeJob.objects.create(
        video=video, source_name=video.file.name, status="processing", phase="ladder", worker="stale:1",
        attempts=1, heartbeat_at=timezone.now(),
    )
    stale_view = TranscodeJob.objects.get(pk=job.pk)
    # Recovered and claimed by its replacement meanwhile.
    TranscodeJob.objects.filter(pk=job.pk).update(worker="replacement:2", attempts=2)
    poster = tmp_path / "poster.jpg"
    poster.write_bytes(b"\xff\xd8\xff" + b"0" * 100)
    prefix_folder = Path(video.file.storage.path(f"videos/{video.key.hex[:2]}/{video.key.hex}/renditions"))
    folders_before = set(prefix_folder.iterdir())
    with pytest.raises(JobSuperseded):
        publish(stale_view, video, [Output("poster", poster, "image/jpeg", kind="poster")], complete=True)
    assert {r.name: r.file.name for r in video.renditions.all()} == before
    assert RetiredFile.objects.count() == retired_before
    assert set(prefix_folder.iterdir()) == folders_before


def test_system_checks_name_a_queue_setup_that_cannot_put_playable_first():
    from django.core.checks import run_checks

    rq_one_queue = {**DB_TASKS, "transcoding": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    with override_settings(TASKS=rq_one_queue):
        assert "private_video_transcoding.E002" in [message.id for message in run_checks()]
    with override_settings(TASKS=rq_one_queue, TRANSCODING_PLAYABLE_QUEUE="default", TRANSCODING_LADDER_QUEUE="default"):
        assert "private_video_transcoding.E002" not in [message.id for message in run_checks()]
    with override_settings(TRANSCODING_RETIRED_FILE_GRACE_SECONDS=10):
        assert "private_video_transcoding.W001" in [message.id for message in run_checks()]
    assert not [m.id for m in run_checks() if m.id.startswith("private_video_transcoding.")]
