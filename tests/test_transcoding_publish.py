"""Publishing never makes a ready video worse, seen from a player: while a
ready video is transcoded again by the stack's worker, a player keeps
fetching through nginx both the segments of the playlists it loaded before
(signed URLs of the old files) and the master and rungs a new player gets.
No request fails and the master never has fewer rungs."""

import re
import time

import pytest
import requests
from django.test import override_settings

from transcoding.models import RetiredFile, TranscodeJob
from transcoding.tasks import rerun
from transcoding.testmedia import make_test_video

from .conftest import _start_stack
from .helpers import make_video, make_video_page, wait_for_job

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DB_TASKS = {
    "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
}
BYTERANGE = re.compile(r"#EXT-X-BYTERANGE:(\d+)@(\d+)\s*\n(/stream/\S+)")


@pytest.fixture
def worker_stack(tmp_path_factory, stack_database_url, static_root):
    stack = _start_stack(tmp_path_factory, stack_database_url, static_root, with_worker=True)
    yield stack
    stack.stop()


class Player:
    """What an HLS player fetches: the master, each rung's playlist, segments."""

    def __init__(self, stack, page, video):
        self.stack = stack
        self.session = requests.Session()
        self.master_url = stack.url(f"/hls/{page.pk}/{video.pk}/hls-master.m3u8")

    def get(self, url, **kwargs):
        response = self.session.get(self.stack.url(url) if url.startswith("/") else url, timeout=10, **kwargs)
        assert response.status_code in (200, 206), (url, response.status_code, response.text[:200])
        return response

    def load(self):
        """(rung URLs in the master, [(length, offset, segment URL)] of every rung)."""
        master = self.get(self.master_url)
        rungs = [line for line in master.text.splitlines() if line and not line.startswith("#")]
        segments = []
        for rung in rungs:
            segments += [(int(n), int(o), url) for n, o, url in BYTERANGE.findall(self.get(rung).text)]
        return rungs, segments

    def fetch(self, segment):
        length, offset, url = segment
        response = self.get(url, headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        assert response.status_code == 206 and len(response.content) == length, url
        assert b"moof" in response.content[:4096]


def test_rerun_of_a_ready_video_while_a_player_streams_it(worker_stack, tmp_path):
    stack = worker_stack
    # 960x540: the default ladder gives it two rungs (540p, 360p); its quick
    # version would be one.
    source = make_test_video(tmp_path / "streamed.mp4", duration=3, width=960, height=540)
    with override_settings(TRANSCODING_AUTO_ENQUEUE=True, TASKS=DB_TASKS):
        video = make_video(source, title="Streamed")
    first = wait_for_job(video, stack)
    page = make_video_page(video, title="Streamed page")
    player = Player(stack, page, video)
    rungs, held = player.load()
    assert len(rungs) == 2 and held, rungs
    old_files = set(video.renditions.values_list("file", flat=True))

    with override_settings(TASKS=DB_TASKS):
        job = rerun(video)
    checks, fresh_rungs, done_at = 0, set(), None
    deadline = time.monotonic() + 120
    while done_at is None or time.monotonic() < done_at + 1.5:
        assert time.monotonic() < deadline, stack.log_text("transcoder")[-3000:]
        # The player that loaded its playlists before the re-run goes on.
        for segment in held:
            player.fetch(segment)
        # A player starting now never sees less than before.
        now_rungs, segments = player.load()
        assert len(now_rungs) >= len(rungs), now_rungs
        fresh_rungs.add(tuple(now_rungs))
        for segment in segments[:: max(1, len(segments) // 4)]:
            player.fetch(segment)
        checks += 1
        status = TranscodeJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
        assert status != "failed", TranscodeJob.objects.get(pk=job.pk).error
        if status == "ready" and done_at is None:
            done_at = time.monotonic()

    job.refresh_from_db()
    assert job.pk != first.pk and job.attempts == 1
    new_files = set(video.renditions.values_list("file", flat=True))
    assert new_files and new_files.isdisjoint(old_files), "the re-run published a new set"
    # The player kept checking across the switch, and its old files are kept for the grace period.
    assert checks >= 3
    assert old_files <= set(RetiredFile.objects.filter(video=video).values_list("name", flat=True))
