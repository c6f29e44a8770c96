"""Transcoding on RQ: two worker processes share Redis, the database and the
storage; jobs spread over both, and a worker killed mid-job loses nothing:
its lease expires and the other worker finishes the job."""

import os
import signal
import subprocess
import time

import pytest
import redis

from private_video.models import Video
from transcoding.models import TranscodeJob

from .conftest import _start_stack
from .helpers import make_user
from .stack import VENV_BIN, free_port
from .test_stack_upload import PASSWORD, admin_session, post_video

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LEASE_SECONDS = 5


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def rq_stack(tmp_path_factory, stack_database_url, static_root, redis_url):
    stack = _start_stack(
        tmp_path_factory, stack_database_url, static_root,
        extra_env={
            "TRANSCODING_TASKS_BACKEND": "django_tasks_rq.RQBackend",
            "REDIS_URL": redis_url,
            "TRANSCODING_LEASE_SECONDS": str(LEASE_SECONDS),
        },
    )
    for name in ("rq-a", "rq-b"):
        stack._spawn(name, [str(VENV_BIN / "python"), "manage.py", "transcoding_worker"])
    yield stack
    stack.stop()


def wait_for(predicate, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError(message())


def upload(stack, session, sample_video, name):
    response = post_video(stack, session, sample_video, name)
    assert response.status_code == 200, response.text[:500]
    return Video.objects.get(pk=response.json()["pk"])


def test_jobs_spread_over_two_rq_workers_and_survive_a_killed_one(rq_stack, sample_video):
    stack = rq_stack
    pids = {name: stack.processes[name].pid for name in ("rq-a", "rq-b")}
    logs = lambda: "\n".join(stack.log_text(n)[-2000:] for n in ("rq-a", "rq-b"))  # noqa: E731
    make_user("rq-uploader", PASSWORD, superuser=True)
    session = admin_session(stack, "rq-uploader")

    # Two uploads while the first is still transcoding: each worker takes one.
    first = [upload(stack, session, sample_video, f"spread-{i}.mp4") for i in range(2)]

    def all_ready(videos):
        jobs = list(TranscodeJob.objects.filter(video__in=videos))
        failed = [j for j in jobs if j.status == "failed"]
        assert not failed, [(j.error, j.stderr_tail) for j in failed]
        return len(jobs) == len(videos) and all(j.status == "ready" for j in jobs) and jobs

    jobs = wait_for(lambda: all_ready(first), 120, logs)
    workers = {job.worker.rsplit(":", 1)[1] for job in jobs}
    assert workers == {str(pids["rq-a"]), str(pids["rq-b"])}, (workers, pids)
    assert all(job.task_id for job in jobs)

    # Kill worker A in the middle of a job, as a lost machine would.
    victim_video = upload(stack, session, sample_video, "victim.mp4")
    others = [upload(stack, session, sample_video, f"after-{i}.mp4") for i in range(2)]
    pid_a = str(pids["rq-a"])

    def a_is_busy():
        return TranscodeJob.objects.filter(
            status="processing", worker__endswith=f":{pid_a}"
        ).first()

    busy = wait_for(a_is_busy, 60, lambda: "worker A never took a job:\n" + logs())
    os.kill(pids["rq-a"], signal.SIGKILL)
    killed_at = time.monotonic()
    stack.processes["rq-a"].wait(timeout=10)

    everything = [victim_video, *others]
    jobs = wait_for(lambda: all_ready(everything), 180, logs)
    recovered = next(job for job in jobs if job.pk == busy.pk)
    assert recovered.worker.endswith(f":{pids['rq-b']}")
    assert recovered.attempts == 2
    assert recovered.video.renditions.filter(name="hls-master").exists()
    # Recovered by the lease, not by luck: after it expired, well within bounds.
    assert time.monotonic() - killed_at >= LEASE_SECONDS - 1
    assert stack.processes["rq-b"].poll() is None


def test_burst_on_rq_is_playable_before_any_full_ladder_starts(rq_stack, redis_url, tmp_path):
    """Quick versions and ladders on their own RQ queues, read playable
    first: five uploads at once are all playable before a ladder starts."""
    from django.db import transaction
    from django.test import override_settings

    from transcoding.tasks import phase_queues
    from transcoding.testmedia import make_test_video

    from .helpers import make_video

    stack = rq_stack
    source = make_test_video(tmp_path / "rq-burst.mp4", duration=2, width=320, height=240)
    queues = {name: {"URL": redis_url} for name in ["default", *phase_queues()]}
    tasks = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "transcoding": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": []},
    }
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=tasks, RQ_QUEUES=queues), transaction.atomic():
        videos = [make_video(source, title=f"RQ burst {i}") for i in range(5)]
    jobs = TranscodeJob.objects.filter(video__in=videos)
    logs = lambda: "\n".join(stack.log_text(n)[-2000:] for n in ("rq-a", "rq-b"))  # noqa: E731
    wait_for(lambda: all(j.status in ("ready", "failed") for j in jobs.all()), 180, logs)
    jobs = list(jobs.all())
    assert all(j.status == "ready" and j.attempts == 1 for j in jobs), [(j.status, j.error) for j in jobs]
    assert max(j.playable_at for j in jobs) <= min(j.ladder_started_at for j in jobs), sorted(
        [(j.pk, "playable", j.playable_at) for j in jobs] + [(j.pk, "ladder", j.ladder_started_at) for j in jobs],
        key=lambda row: row[2])
