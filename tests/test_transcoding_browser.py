"""Chromium plays the HLS master the pipeline made, through hls.js.

The renditions are served by a throwaway nginx under their rendition names
(the way media_access addresses them: siblings by name, byte ranges); the
real serving view is media_access's and has its own tests."""

import os
import shutil
import signal
import subprocess
import time

import pytest
import requests
from django.test import override_settings

from tests.browser import chromium_page
from tests.helpers import make_video
from tests.stack import REPO, _nginx_binary, free_port
from transcoding.profiles import Rung
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import make_test_video

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

HLS_JS = REPO / "media_access" / "static" / "media_access" / "player" / "vendor" / "hls.min.js"

PAGE = """<!doctype html>
<html><body>
<video id="player" muted playsinline width="320"></video>
<script src="/hls.min.js"></script>
<script>
  // The SourceBuffers hls.js fills, to see where it placed sound and picture.
  window.sourceBuffers = [];
  const addSourceBuffer = MediaSource.prototype.addSourceBuffer;
  MediaSource.prototype.addSourceBuffer = function (type) {
    const buffer = addSourceBuffer.call(this, type);
    window.sourceBuffers.push([type, buffer]);
    return buffer;
  };
  window.hlsErrors = [];
  window.levels = null;
  const video = document.getElementById("player");
  const hls = new Hls({ startLevel: 0 });
  hls.on(Hls.Events.MANIFEST_PARSED, (event, data) => {
    window.levels = data.levels.map((level) => level.height);
    video.play();
  });
  hls.on(Hls.Events.ERROR, (event, data) => window.hlsErrors.push(data.details + (data.fatal ? " (fatal)" : "")));
  hls.loadSource("/v/hls-master");
  hls.attachMedia(video);
</script>
</body></html>
"""

NGINX_CONF = """
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    types {{ text/html html; application/javascript js; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
    }}
}}
"""


@pytest.fixture
def throwaway_nginx(tmp_path):
    port = free_port()
    (tmp_path / "www" / "v").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    conf = tmp_path / "nginx.conf"
    # Workers of an nginx started as root drop to "nobody", who can't read
    # pytest's private temp folders.
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(root=tmp_path, port=port, user=user))
    process = subprocess.Popen(
        [_nginx_binary(), "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((tmp_path / "error.log").read_text())
                time.sleep(0.1)
        yield base, tmp_path / "www"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


def test_chromium_plays_the_hls_master_without_fatal_errors(media_dir, throwaway_nginx, output_dir):
    if not HLS_JS.exists():
        pytest.fail(f"{HLS_JS} is missing: run `make frontend`")
    base, www = throwaway_nginx
    source = make_test_video(media_dir / "browser.mp4", duration=6)
    video = make_video(source, title="Browser")
    with override_settings(TRANSCODING_LADDER=[Rung(144, 300), Rung(90, 150)]):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == "ready", job.error
    for rendition in video.renditions.all():
        shutil.copy(rendition.file.path, www / "v" / rendition.name)
    shutil.copy(HLS_JS, www / "hls.min.js")
    (www / "index.html").write_text(PAGE)

    with chromium_page(output_dir) as page:
        page.goto(base + "/index.html")
        page.wait_for_function("Array.isArray(window.levels)", timeout=20_000)
        assert page.evaluate("window.levels") == [90, 144]
        page.wait_for_function("document.getElementById('player').currentTime > 2", timeout=30_000)
        state = page.evaluate(
            "({w: player.videoWidth, h: player.videoHeight, errors: window.hlsErrors, paused: player.paused})"
        )
        buffered = page.evaluate(
            "window.sourceBuffers.map(([type, b]) => [type.split('/')[0], b.buffered.length ? b.buffered.start(0) : null])"
        )
    assert state["w"] > 0 and state["h"] > 0 and not state["paused"]
    assert not [error for error in state["errors"] if "fatal" in error], state["errors"]
    # Sound and picture start together, as in the source: the first picture
    # is not x264's reordering delay (80 ms) behind the sound.
    starts = dict(buffered)
    assert set(starts) == {"video", "audio"}, buffered
    assert abs(starts["video"] - starts["audio"]) < 0.005, buffered
    # Segments came as byte ranges of the one file per rung.
    log = (www.parent / "access.log").read_text()
    assert " 206 " in log and "/v/hls-90p-media" in log
