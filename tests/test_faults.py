"""Faults the stack must survive by itself (issue 14): a gunicorn worker
killed mid-request, PostgreSQL restarted, Redis stopped for 10 s, the
transcoding temp folder full during a job. After each, the stack serves
again without help, no transcode job is lost, nothing half-made is
published, and viewers only ever get the bytes the policy allows or a clean
error (nginx's 502 page, Django's plain 500; never a traceback)."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from django.contrib.auth.models import Group
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from media_access.models import ViewerGrant
from private_video.layout import renditions_prefix
from private_video.storage import private_storage
from private_video.uploads.staging import path_for
from transcoding.models import Rendition, TranscodeJob
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import make_test_video

from .conftest import _start_stack
from .helpers import make_user, make_video, make_video_page, stack_session
from .media_cache import transcoded_video
from .stack import VENV_BIN, free_port
from .test_stack_upload import PASSWORD, admin_session, post_video
from .test_uploads_tus_stack import tus_headers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

TINY_LADDER = [Rung(90, 150)]
TRACEBACK_MARKERS = ("Traceback", "OperationalError", "psycopg", "File \"/", "redis.exceptions")


def wait_for(predicate, timeout, message=lambda: "timed out"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    raise AssertionError(message())


def ready_page(tmp_path, name):
    """A 2 s tiny video transcoded in this process, on a page only the
    "<name> members" group may watch."""
    # Transcoded for real once per run, then copies (tests/media_cache.py):
    # the faults here hit the stack, not this video's transcode.
    video = transcoded_video(tmp_path / f"{name}.mp4", title=name, clip=dict(duration=2, width=160, height=90),
                             settings=dict(TRANSCODING_LADDER=TINY_LADDER))
    page = make_video_page(video, title=f"Page {name}")
    members = Group.objects.create(name=f"{name} members")
    ViewerGrant.objects.create(page=page, group=members)
    return page, video, members


def rendition_bytes(video, name):
    with video.renditions.get(name=name).file.open("rb") as handle:
        return handle.read()


class Watch:
    """What a viewer fetches from Django (the policy answers each one) and
    what each must be: a playback JSON, an HLS media playlist, the progressive
    MP4 and the master, both served by nginx after X-Accel-Redirect."""

    def __init__(self, stack, page, video):
        self.stack = stack
        mp4 = video.renditions.get(kind=Rendition.Kind.MP4)
        playlist = video.renditions.get(kind=Rendition.Kind.HLS_VIDEO)
        self.urls = {
            "json": f"/playback/{page.pk}/{video.pk}/",
            "playlist": f"/hls/{page.pk}/{video.pk}/{playlist.name}.m3u8",
            "mp4": f"/watch/{page.pk}/{video.pk}/{mp4.name}",
            "master": f"/watch/{page.pk}/{video.pk}/hls-master",
        }
        self.mp4 = rendition_bytes(video, mp4.name)
        self.master = rendition_bytes(video, "hls-master")

    def right(self, kind, response):
        """True when ``response`` is exactly what an allowed viewer gets."""
        if response.status_code != 200:
            return False
        if kind == "json":
            return response.json()["sources"][0]["src"].endswith("/hls-master.m3u8")
        if kind == "playlist":
            return response.text.startswith("#EXTM3U") and "#EXT-X-ENDLIST" in response.text
        return response.content == (self.mp4 if kind == "mp4" else self.master)

    def leaks(self, response):
        """Any media or policy-protected content in ``response``'s body."""
        body = response.content
        return (b"#EXTM3U" in body or b"ftyp" in body[:64] or b'"sources"' in body
                or self.mp4[:4096] in body)

    def get(self, session, kind, **kwargs):
        return session.get(self.stack.url(self.urls[kind]), timeout=kwargs.pop("timeout", 20), **kwargs)


# What a client sees when the process answering it dies mid-answer.
CUT = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


def assert_clean_error(response, statuses):
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    text = response.text
    assert not any(marker in text for marker in TRACEBACK_MARKERS), text[:2000]


def assert_nginx_502(response):
    assert_clean_error(response, {502})
    assert "502 Bad Gateway" in response.text and "nginx" in response.text, response.text[:300]


# 1. a gunicorn worker killed -------------------------------------------------


def gunicorn_workers(stack):
    master = stack.processes["gunicorn"].pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def test_killed_gunicorn_worker_is_respawned_and_cut_requests_are_clean_502s(stack, tmp_path):
    page, video, members = ready_page(tmp_path, "killed-worker")
    watch = Watch(stack, page, video)
    viewer = stack_session(make_user("kw-viewer", groups=[members]))
    outsider = stack_session(make_user("kw-outsider"))
    for kind in watch.urls:
        assert watch.right(kind, watch.get(viewer, kind)), kind
        assert watch.get(outsider, kind).status_code == 403, kind
    workers_before = gunicorn_workers(stack)
    assert len(workers_before) == 2, workers_before

    results, errors, stop = [], [], threading.Event()

    def hammer(session, kinds, allowed):
        try:
            while not stop.is_set():
                for kind in kinds:
                    try:
                        results.append((allowed, kind, watch.get(session, kind)))
                    except CUT as exc:
                        results.append((allowed, kind, exc))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    streamed = []

    def slow_stream():
        # A viewer streaming the MP4 while workers die: nginx sends the file
        # after gunicorn's X-Accel-Redirect, so the stream is whole.
        try:
            while not stop.is_set():
                try:
                    with watch.get(viewer, "mp4", stream=True) as response:
                        body = b""
                        for chunk in response.iter_content(16 * 1024):
                            body += chunk
                            time.sleep(0.01)
                        streamed.append((response, body))
                except CUT as exc:
                    # Cut while Django answered (before nginx had the file to send).
                    streamed.append((exc, b""))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    # One request certain to be in a worker when it dies: a resumable-upload
    # chunk sent slowly (nginx streams that location's body to gunicorn
    # unbuffered, so the worker reads it for seconds). The viewers' own
    # requests now take a millisecond or two and may all be between workers.
    uploader = make_user("kw-uploader", superuser=True)
    upload_headers = {**tus_headers(stack, uploader), "Tus-Resumable": "1.0.0"}
    created = requests.post(stack.url(reverse("private_video:tus_create")), timeout=10,
                            headers={**upload_headers, "Upload-Length": str(4 * 1024 * 1024)})
    assert created.status_code == 201, created.text
    patched, chunk_killed = [], threading.Event()

    def slow_chunk():
        # 4 MiB over ~13 s: the worker that takes it reads it for seconds.
        piece, pieces = b"\0" * 32768, 128
        head = (f"PATCH {created.headers['Location']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                f"Tus-Resumable: 1.0.0\r\nCookie: {upload_headers['Cookie']}\r\n"
                f"X-CSRFToken: {upload_headers['X-CSRFToken']}\r\nContent-Length: {len(piece) * pieces}\r\n"
                "Connection: close\r\n\r\n")
        try:
            with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
                sock.sendall(head.encode())
                for _ in range(pieces):
                    if chunk_killed.is_set():
                        break  # the rest would only be read and dropped by nginx
                    sock.sendall(piece)
                    time.sleep(0.1)
                patched.append(sock.recv(65536))
        except OSError as exc:
            patched.append(exc)

    threads = [threading.Thread(target=hammer, args=(viewer, ["json", "playlist"], True)) for _ in range(3)]
    threads.append(threading.Thread(target=hammer, args=(outsider, ["json", "playlist", "mp4"], False)))
    threads.append(threading.Thread(target=slow_stream))
    threads.append(threading.Thread(target=slow_chunk))
    for thread in threads:
        thread.start()
    killed = []
    # The worker reading the chunk is the one holding its staging file open.
    staging_name = path_for(created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]).name

    def reading_the_chunk():
        for pid in gunicorn_workers(stack):
            try:
                if any(os.readlink(f"/proc/{pid}/fd/{fd}").endswith(staging_name)
                       for fd in os.listdir(f"/proc/{pid}/fd")):
                    return pid
            except OSError:  # the worker is gone or a descriptor closed meanwhile
                continue
        return None

    try:
        time.sleep(0.5)
        # One worker killed while the viewers' requests come and go, then
        # the one reading the slow chunk. Under load a respawned worker may
        # take seconds to boot and accept the chunk: wait for it, bounded.
        victim = gunicorn_workers(stack)[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)
        deadline = time.monotonic() + 30
        while not patched and time.monotonic() < deadline:
            victim = reading_the_chunk()
            if victim is None:
                time.sleep(0.05)
                continue
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            chunk_killed.set()
            break
        deadline = time.monotonic() + 30
        while not patched and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors

    cut = [r for _, _, r in results if isinstance(r, Exception) or r.status_code == 502]
    # The slow chunk's worker died under it: nginx answers 502 (or, with the
    # body still coming, closes the connection); never a 204 for bytes Django
    # did not finish reading.
    assert patched, "the slow upload chunk never ended"
    if isinstance(patched[0], bytes):
        assert patched[0].split(b"\r\n", 1)[0].split()[1] == b"502", patched[0][:300]
        cut.append(patched[0])
    else:
        cut.append(patched[0])
    assert cut, f"no request was in flight at any of {len(killed)} kills"
    # What reached the disk before the kill is the upload's offset: it can resume.
    offset = int(requests.head(stack.url(created.headers["Location"]), headers=upload_headers,
                               timeout=10).headers["Upload-Offset"])
    assert 0 <= offset < 4 * 1024 * 1024
    for allowed, kind, response in results:
        if isinstance(response, Exception):
            # Killed between its headers and its body: nginx had sent the
            # headers, so it can only close the connection, and the client
            # sees a body shorter than announced (never a whole answer).
            assert "IncompleteRead" in str(response) or "Connection aborted" in str(response), response
        elif response.status_code == 502:
            assert_nginx_502(response)
            assert not watch.leaks(response), kind
        elif allowed:
            assert watch.right(kind, response), (kind, response.status_code, response.text[:300])
        else:
            assert response.status_code == 403 and not watch.leaks(response), (kind, response.status_code)
    whole = [body for response, body in streamed if not isinstance(response, Exception)
             and response.status_code == 200]
    assert whole and all(body == watch.mp4 for body in whole), [len(body) for body in whole]
    for response, body in streamed:
        if isinstance(response, Exception):
            assert "IncompleteRead" in str(response) or "Connection aborted" in str(response), response
        elif response.status_code != 200:
            assert response.status_code == 502 and b"502 Bad Gateway" in body, (response.status_code, body[:300])

    # gunicorn respawned them: two workers again, none of the killed ones,
    # and the next requests succeed (or are refused) as before.
    wait_for(lambda: len(gunicorn_workers(stack)) == 2 and not set(killed) & set(gunicorn_workers(stack)),
             15, lambda: stack.log_text("gunicorn")[-2000:])
    for _ in range(3):
        for kind in watch.urls:
            assert watch.right(kind, watch.get(viewer, kind)), kind
            denied = watch.get(outsider, kind)
            assert denied.status_code == 403 and not watch.leaks(denied), kind
    assert stack.processes["gunicorn"].poll() is None


# 4. the transcoding temp folder full ------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI and the dev container run as root)")
    folder = tmp_path / "scratch"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder, leave):
    """Fill ``folder``'s filesystem but ``leave`` bytes."""
    (folder / "filler").unlink(missing_ok=True)
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return folder / "filler"


def stored_rendition_folders(video):
    storage = private_storage()
    prefix = renditions_prefix(video.key)
    folders, _ = storage.listdir(prefix.rstrip("/")) if storage.exists(prefix.rstrip("/")) else ([], [])
    return sorted(folders)


def test_full_temp_folder_fails_the_job_cleanly_and_publishes_nothing(stack, tmp_path, small_tmpfs):
    page, video, members = ready_page(tmp_path, "full-disk")
    watch = Watch(stack, page, video)
    viewer = stack_session(make_user("fd-viewer", groups=[members]))
    published = sorted(video.renditions.values_list("pk", "file"))
    # The published set's folder (and the quick playable one, retired for its grace period).
    folders = stored_rendition_folders(video)
    fresh = make_video(make_test_video(tmp_path / "fresh.mp4", duration=2, width=160, height=90), title="fresh")

    # Room for the job's folder and some of its outputs, not all: the disk
    # fills mid-job. With 48 KiB left ffmpeg's encodes fit and a playlist
    # written by Python does not; with 8 KiB ffmpeg itself meets ENOSPC.
    with override_settings(TRANSCODING_TEMP_DIR=str(small_tmpfs), TRANSCODING_LADDER=TINY_LADDER):
        filler = fill(small_tmpfs, leave=48 * 1024)
        rerun = enqueue_transcode(video)
        filler = fill(small_tmpfs, leave=8 * 1024)
        first = enqueue_transcode(fresh)
    for job in (rerun, first):
        job.refresh_from_db()
        assert job.status == "failed", (job.pk, job.video_id, job.status, job.error, job.stage, job.attempts)
        assert job.error == "The server ran out of disk space while processing.", (job.error, job.stderr_tail)
    # Nothing left in the temp folder but the filler.
    assert [p.name for p in small_tmpfs.iterdir()] == ["filler"]
    # The re-run published nothing: same rows, same files, no new folder;
    # the fresh video has no rendition at all, nor any stored file.
    assert sorted(video.renditions.values_list("pk", "file")) == published
    assert stored_rendition_folders(video) == folders
    assert not fresh.renditions.exists() and stored_rendition_folders(fresh) == []
    # The previous renditions still serve.
    for kind in watch.urls:
        assert watch.right(kind, watch.get(viewer, kind)), kind

    # Space is back: a re-run succeeds and replaces the set.
    filler.unlink()
    with override_settings(TRANSCODING_TEMP_DIR=str(small_tmpfs), TRANSCODING_LADDER=TINY_LADDER):
        again = enqueue_transcode(video)
        fresh_again = enqueue_transcode(fresh)
    for job in (again, fresh_again):
        job.refresh_from_db()
        assert job.status == "ready", (job.error, job.stderr_tail)
    assert sorted(video.renditions.values_list("pk", "file")) != published
    assert fresh.renditions.filter(kind=Rendition.Kind.HLS_MASTER).exists()
    assert list(small_tmpfs.iterdir()) == []
    watch = Watch(stack, page, video)
    for kind in watch.urls:
        assert watch.right(kind, watch.get(viewer, kind)), kind


def test_a_full_disk_met_by_python_gets_the_disk_space_message_too():
    """ffmpeg's own ENOSPC is read from its stderr; the pipeline's own writes
    (playlists, the master) raise OSError, which must say the same thing
    rather than "Processing failed unexpectedly" (the tmpfs above cannot aim
    at one of those writes reliably)."""
    import errno

    from transcoding.pipeline import DISK_FULL, readable_crash

    assert readable_crash(OSError(errno.ENOSPC, "No space left on device")) == str(DISK_FULL)
    assert readable_crash(OSError(errno.EDQUOT, "Disk quota exceeded")) == str(DISK_FULL)
    assert readable_crash(OSError(errno.EACCES, "Permission denied")).startswith("Processing failed unexpectedly")


# 2. PostgreSQL restarted -------------------------------------------------------

PG = {name: os.environ.get(f"PV_TEST_PG_{name}", "") for name in ("BINDIR", "DATADIR", "OPTIONS", "LOG")}
DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
}


def pg_ctl(*args, check=True):
    command = [f"{PG['BINDIR']}/pg_ctl", "-D", PG["DATADIR"], *args]
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        command = ["runuser", "-u", "postgres", "--", *command]
    # The server's output goes to its log (-l), never to a pipe of ours.
    return subprocess.run(command, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def pg_start():
    pg_ctl("-l", PG["LOG"], "-o", PG["OPTIONS"], "-w", "start")


@pytest.fixture
def restartable_postgres():
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("the test database is SQLite; `make test-postgres` runs the PostgreSQL restart")
    if not PG["DATADIR"]:
        pytest.skip("PostgreSQL was not started by deploy/scripts/with-test-postgres (PV_TEST_PG_DATADIR "
                    "unset): not a server this test may restart")
    yield
    # Whatever happened, the rest of the run gets its database back.
    if pg_ctl("status", check=False).returncode != 0:
        pg_start()
    connection.close()


@pytest.fixture
def pg_stack(restartable_postgres, tmp_path_factory, stack_database_url, static_root):
    # Kept connections, as docs/settings.md recommends for production: a
    # restart leaves every worker holding a dead one.
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, with_worker=True, extra_env={
        "DATABASE_CONN_MAX_AGE": "60", "TRANSCODING_LEASE_SECONDS": "5"})
    yield stack
    stack.stop()


def test_postgres_restart_gives_clean_5xx_then_everything_recovers_and_no_job_is_lost(pg_stack, tmp_path):
    stack = pg_stack
    page, video, members = ready_page(tmp_path, "pg-restart")
    watch = Watch(stack, page, video)
    viewer = stack_session(make_user("pg-viewer", groups=[members]))
    outsider = stack_session(make_user("pg-outsider"))
    transcoder = stack.processes["transcoder"]
    log = lambda: stack.log_text("transcoder")[-4000:]  # noqa: E731

    busy = make_video(make_test_video(tmp_path / "busy.mp4", duration=6, width=320, height=180), title="busy")
    with override_settings(TASKS=DB_TASKS):
        job = enqueue_transcode(busy)
    wait_for(lambda: TranscodeJob.objects.filter(pk=job.pk, status="processing").exists(), 60, log)

    # The server goes away with a job running and viewers watching.
    pg_ctl("-m", "fast", "-w", "stop")
    down = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for session, allowed in ((viewer, True), (outsider, False)):
            for kind in watch.urls:
                down.append((kind, watch.get(session, kind)))
    pg_start()
    connection.close()  # this process's connection died with the server
    assert down
    for kind, response in down:
        assert_clean_error(response, {500, 502, 503})
        assert not watch.leaks(response), (kind, response.text[:300])

    # Right after: every request is answered (web workers reconnect by themselves).
    for session, allowed in ((viewer, True), (outsider, False)):
        for _ in range(3):
            for kind in watch.urls:
                response = watch.get(session, kind)
                if allowed:
                    assert watch.right(kind, response), (kind, response.status_code, response.text[:500])
                else:
                    assert response.status_code == 403 and not watch.leaks(response), kind

    # A quick restart nobody sees: the workers' kept connections are dead, and
    # the first request on each must not be the one that finds out.
    pg_ctl("-m", "fast", "-w", "stop")
    pg_start()
    connection.close()
    for _ in range(2):
        for kind in watch.urls:
            response = watch.get(viewer, kind)
            assert watch.right(kind, response), (kind, response.status_code, response.text[:500])

    # The interrupted job finishes; the same worker process then takes new work.
    done = wait_for(lambda: TranscodeJob.objects.filter(pk=job.pk, status__in=["ready", "failed"]).first(), 120, log)
    assert done.status == "ready", (done.error, done.stderr_tail, log())
    assert busy.renditions.filter(kind=Rendition.Kind.HLS_MASTER).exists()
    assert transcoder.poll() is None, log()
    later = make_video(make_test_video(tmp_path / "later.mp4", duration=1, width=160, height=90), title="later")
    with override_settings(TASKS=DB_TASKS):
        after = enqueue_transcode(later)
    after = wait_for(lambda: TranscodeJob.objects.filter(pk=after.pk, status__in=["ready", "failed"]).first(), 90, log)
    assert after.status == "ready" and after.worker.endswith(f":{transcoder.pid}"), (after.error, log())

    # The default queue's worker (the Procfile's "worker") survived too and
    # still runs tasks: a transcode task for no job is a harmless no-op.
    from django_tasks_db.models import DBTaskResult

    from transcoding.tasks import transcode_video

    default_worker = stack.processes["worker"]
    assert default_worker.poll() is None, stack.log_text("worker")[-4000:]
    with override_settings(TASKS={**DB_TASKS, "default": DB_TASKS["transcoding"]}):
        probe = transcode_video.using(backend="default").enqueue(0)
    finished = wait_for(lambda: DBTaskResult.objects.filter(pk=probe.id, status="SUCCESSFUL").first(), 30,
                        lambda: stack.log_text("worker")[-4000:])
    assert finished.return_value == "skipped"


# 3. Redis stopped for 10 s --------------------------------------------------------


class RedisServer:
    """A redis-server on a fixed free loopback port that can be stopped and
    started again (same port, no persistence: a restart starts empty)."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._ping(client), 10, lambda: "redis-server did not start")

    @staticmethod
    def _ping(client):
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def rq_stack(tmp_path_factory, stack_database_url, static_root):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, extra_env={
        "TRANSCODING_TASKS_BACKEND": "django_tasks_rq.RQBackend",
        "REDIS_URL": server.url,
        "TRANSCODING_LEASE_SECONDS": "5",
    })
    stack._spawn("rq", [str(VENV_BIN / "python"), "manage.py", "transcoding_worker"])
    stack.redis = server
    yield stack
    stack.stop()
    server.stop()


def test_redis_outage_loses_no_job_and_never_touches_serving(rq_stack, tmp_path):
    """Redis stops for 10 s and comes back empty (no persistence): a job the
    worker was running goes on, a job that sat in Redis's queue and one whose
    upload came during the outage are both done once Redis is back, by the
    same worker process; viewers of ready videos notice nothing."""
    from transcoding.runner import ffmpeg_slot

    stack = rq_stack
    page, video, members = ready_page(tmp_path, "redis-outage")
    watch = Watch(stack, page, video)
    viewer = stack_session(make_user("ro-viewer", groups=[members]))
    make_user("ro-editor", PASSWORD, superuser=True)
    editor = admin_session(stack, "ro-editor")
    worker = stack.processes["rq"]
    log = lambda: stack.log_text("rq")[-4000:]  # noqa: E731

    def upload(name):
        source = make_test_video(tmp_path / f"{name}.mp4", duration=1, width=160, height=90)
        response = post_video(stack, editor, source, f"{name}.mp4")
        assert response.status_code == 200, response.text[:500]
        return TranscodeJob.objects.get(video_id=response.json()["pk"])

    # This process holds the host's one ffmpeg slot: the worker's first job
    # waits in it, so the second stays in Redis's queue.
    with ffmpeg_slot():
        running = upload("running")
        wait_for(lambda: TranscodeJob.objects.filter(pk=running.pk, status="processing").exists(), 60, log)
        in_redis = upload("in-redis")
        assert TranscodeJob.objects.get(pk=in_redis.pk).task_id
        stack.redis.stop()
        stopped = time.monotonic()
        # An upload while Redis is down: the video is kept and its job
        # recorded, though it could not reach the queue.
        unsent = upload("during-outage")
        assert (unsent.status, unsent.task_id) == ("queued", "")
    # The running job goes on (and may finish) while Redis is down. Viewers of
    # ready videos are unaffected: serving never touches Redis (each answer
    # is right, and quick: no connection attempt timing out).
    served = 0
    while time.monotonic() - stopped < 10:
        for kind in watch.urls:
            started = time.monotonic()
            response = watch.get(viewer, kind)
            assert watch.right(kind, response), (kind, response.status_code, response.text[:500])
            assert time.monotonic() - started < 2, kind
            served += 1
        time.sleep(0.2)
    assert served >= 8
    assert worker.poll() is None, log()

    stack.redis.start()
    # The worker reconnects by itself; the lost and the unsent jobs are sent
    # again; all three are done by the same worker process.
    jobs = [running, in_redis, unsent]

    def finished():
        rows = list(TranscodeJob.objects.filter(pk__in=[job.pk for job in jobs]))
        return all(row.status in ("ready", "failed") for row in rows) and rows

    for row in wait_for(finished, 120, log):
        assert row.status == "ready", (row.pk, row.error, log())
        assert row.task_id and row.worker.endswith(f":{worker.pid}"), (row.task_id, row.worker)
        assert row.video.renditions.filter(kind=Rendition.Kind.HLS_MASTER).exists()
    assert worker.poll() is None, log()

    # A job whose task only Redis held, with no other job to pick it up
    # (a later job's ladder runs waiting quick phases itself): Redis comes
    # back empty, and the job is sent again rather than forgotten.
    worker.send_signal(signal.SIGTERM)  # idle: a warm shutdown
    worker.wait(timeout=30)
    forgotten = upload("forgotten")
    lost_task = TranscodeJob.objects.get(pk=forgotten.pk).task_id
    assert lost_task
    stack.redis.stop()
    stack.redis.start()
    stack._spawn("rq-2", [str(VENV_BIN / "python"), "manage.py", "transcoding_worker"])
    log = lambda: stack.log_text("rq-2")[-4000:]  # noqa: E731
    done = wait_for(lambda: TranscodeJob.objects.filter(pk=forgotten.pk, status__in=["ready", "failed"]).first(),
                    60, log)
    assert done.status == "ready" and done.task_id != lost_task, (done.error, log())
