"""Every upload is hostile input to ffmpeg (DESIGN rule 4).

Through real nginx: playlists, concat lists, image patterns and stream
descriptions that name a private file on the server are refused with a clear
message, and so is a tiny file claiming hours; nothing is stored. Real videos
of every common container still upload and are stored under the extension of
the format ffprobe detected, whatever their name says. Below the web layer:
every ffprobe and ffmpeg command the worker runs carries the demuxer and
protocol whitelists and runs under kernel resource limits.
"""

import os
import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.test import override_settings
from django.urls import reverse

from private_video.models import Video
from transcoding.backends import StoryboardPlan, get_backend
from transcoding.models import TranscodeJob
from transcoding.pipeline import _probe_source
from private_video.probe import ProbeError, allowed_demuxers, probe, probe_video
from transcoding.profiles import Rung, plan_ladder
from transcoding.runner import FFmpegError, run_ffmpeg
from transcoding.tasks import enqueue_transcode
from transcoding.testmedia import make_test_video

from .helpers import csrf_token, make_user, make_video, stack_session

stack_db = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FF = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]


def _ffmpeg(*args):
    import subprocess

    subprocess.run([*FF, *map(str, args)], check=True, timeout=120)


def private_files():
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    return sorted(str(p) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(stack, session, name, data):
    url = stack.url(reverse("private_video:add"))
    token = csrf_token(session, url)
    return session.post(
        url,
        data={"csrfmiddlewaretoken": token},
        files={"file": (name, data, "video/mp4")},
        headers={"Accept": "application/json", "Referer": url},
        timeout=120,
    )


@pytest.fixture
def uploader(stack):
    return stack_session(make_user("ingest-admin", superuser=True))


@pytest.fixture
def private_original(sample_video):
    """Another editor's video: its original is a private file on the server."""
    video = make_video(sample_video, title="Someone else's private video")
    path = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    assert path.exists()
    return path


def _tiny_claiming_hours(folder, suffix):
    """Two 64×64 frames three hours apart: a real file of a few KB whose
    probed duration is 3 h (the ladder would make 3 h of every rung)."""
    path = folder / f"tiny-long{suffix}"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=1", "-frames:v", "2",
            "-vf", r"setpts='if(eq(N\,1)\,10800/TB\,PTS)'", "-fps_mode", "passthrough",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", path)
    return path


# --- hostile uploads through nginx -----------------------------------------


def hostile_uploads(secret, folder):
    """(upload name, bytes, phrase the refusal must contain)."""
    secret = str(secret)
    playlist = (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:5\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:4.0,\n{secret}\n#EXT-X-ENDLIST\n"
    ).encode()
    frames = folder / "frames"
    frames.mkdir()
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=5", "-frames:v", "3", "-c:v", "mjpeg",
            "-f", "image2", frames / "img%03d.jpg")
    return [
        ("holiday.m3u8", playlist, "playlist"),
        # The same playlist under a video's name: the content decides.
        ("holiday.mp4", playlist, "playlist"),
        ("list.ffconcat", f"ffconcat version 1.0\nfile '{secret}'\n".encode(), "playlist"),
        ("list.txt", f"ffconcat version 1.0\nfile 'file:{secret}'\nduration 4\n".encode(), "playlist"),
        ("img%03d.jpg", (frames / "img001.jpg").read_bytes(), "not a video"),
        ("frames.mjpeg", b"".join(p.read_bytes() for p in sorted(frames.iterdir())), "not a video"),
        ("stream.sdp", b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                       b"m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n", "playlist"),
        # An HLS playlist whose "segment" is a data URI carrying another playlist.
        ("nested.m3u8", ("#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n"
                         "data:application/vnd.apple.mpegurl;base64,I0VYVE0zVQ==\n#EXT-X-ENDLIST\n").encode(),
         "playlist"),
    ]


def assert_refused_clearly(response, name, phrase, secret):
    assert response.status_code == 400, (name, response.status_code, response.text[:500])
    body = response.json()
    assert body["success"] is False
    message = body["error_message"]
    assert f"“{name}”" in message, message
    assert phrase in message, (name, message)
    # Nothing about the server's files: no temp path, no data folder, no private path.
    for leak in (tempfile.gettempdir(), str(settings.DATA_DIR), str(secret), ".upload", "Invalid argument"):
        assert leak not in message, (leak, message)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_indirection_uploads_naming_a_private_file_are_refused(stack, uploader, private_original, tmp_path):
    before_files, before_rows = private_files(), Video.objects.count()
    for name, data, phrase in hostile_uploads(private_original, tmp_path):
        started = time.monotonic()
        response = upload(stack, uploader, name, data)
        assert_refused_clearly(response, name, phrase, private_original)
        # Refused at once, not after a network read times out.
        assert time.monotonic() - started < 15, name
    assert Video.objects.count() == before_rows
    assert private_files() == before_files


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_tiny_file_claiming_hours_is_refused(stack, uploader, tmp_path, suffix):
    tiny = _tiny_claiming_hours(tmp_path, suffix)
    assert tiny.stat().st_size < 16 * 1024
    before = private_files()
    response = upload(stack, uploader, f"long{suffix}", tiny.read_bytes())
    assert_refused_clearly(response, f"long{suffix}", "claims to last 3:00:01", "/nonexistent")
    assert "too small" in response.json()["error_message"]
    assert Video.objects.count() == 0
    assert private_files() == before


# --- real videos keep working, named by their content ----------------------


def _make(kind, folder):
    path = folder / f"real.{kind}"
    if kind == "webm":
        return make_test_video(path, duration=2, vcodec="libvpx-vp9", acodec="libopus",
                               video_args=("-deadline", "realtime", "-cpu-used", "8"))
    if kind == "avi":
        return make_test_video(path, duration=2, acodec="mp3")
    if kind == "mov":
        return make_test_video(path, duration=2, extra_args=["-f", "mov"])
    return make_test_video(path, duration=2)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("kind,name,extension", [
    ("mp4", "clip.mp4", ".mp4"),
    ("webm", "clip.webm", ".webm"),
    ("mkv", "clip.mkv", ".mkv"),
    ("mov", "clip.mov", ".mov"),
    ("avi", "clip.avi", ".avi"),
    ("ts", "clip.ts", ".ts"),
    # The name is data only: an MP4 called .m3u8 or .exe is an MP4.
    ("mp4", "clip.m3u8", ".mp4"),
    ("mp4", "clip.exe", ".mp4"),
    ("webm", "clip.mp4", ".webm"),
    ("mkv", "no-extension", ".mkv"),
])
def test_real_videos_upload_and_are_stored_by_detected_format(stack, uploader, tmp_path, kind, name, extension):
    source = _make(kind, tmp_path)
    response = upload(stack, uploader, name, source.read_bytes())
    assert response.status_code == 200, response.text[:1000]
    video = Video.objects.get(pk=response.json()["pk"])
    assert video.file.name == f"videos/{video.key.hex[:2]}/{video.key.hex}/original{extension}"
    stored = Path(settings.PRIVATE_MEDIA_ROOT) / video.file.name
    assert stored.read_bytes() == source.read_bytes()
    assert video.original_filename == name
    assert video.duration == pytest.approx(2, abs=0.3)


@pytest.mark.django_db
def test_low_bitrate_screen_recordings_are_accepted(tmp_path):
    """A still screen for minutes: a 1 fps recording with a ten-minute GOP and
    a variable-rate one with three frames in five minutes."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=1", "-frames:v", "1", tmp_path / "slide.png")
    steady = tmp_path / "steady.mp4"
    _ffmpeg("-loop", "1", "-framerate", "1", "-t", "300", "-i", tmp_path / "slide.png",
            "-c:v", "libx264", "-g", "600", "-pix_fmt", "yuv420p", steady)
    sparse = tmp_path / "sparse.mp4"
    _ffmpeg("-loop", "1", "-framerate", "1", "-t", "300", "-i", tmp_path / "slide.png",
            "-vf", r"select='eq(n\,0)+eq(n\,150)+eq(n\,299)'", "-fps_mode", "vfr",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", sparse)
    for path in (steady, sparse):
        info = probe_video(path)
        assert info.duration == pytest.approx(300, abs=2)
        # Genuinely sparse: well under a kilobyte per second.
        assert path.stat().st_size / info.duration < 400


# --- the worker: probe and every ffmpeg command ----------------------------


@pytest.fixture
def argv_log(monkeypatch):
    """Record the argv of every ffprobe/ffmpeg the code under test starts (they still run)."""
    import subprocess

    calls = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):
        def __init__(self, args, *a, **kw):
            calls.append(list(map(str, args)))
            super().__init__(args, *a, **kw)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    return calls


def assert_inputs_whitelisted(argv, forced=None):
    """Each ``-i`` is preceded, among its own input options, by the demuxer
    and protocol whitelists (and ``-f`` when the demuxer is known)."""
    inputs = [index for index, arg in enumerate(argv) if arg == "-i"]
    assert inputs, argv
    start = 0
    for index in inputs:
        options = argv[start:index]
        assert "-format_whitelist" in options, argv
        assert options[options.index("-format_whitelist") + 1] == ",".join(allowed_demuxers()), argv
        assert "-protocol_whitelist" in options, argv
        assert options[options.index("-protocol_whitelist") + 1] == "file", argv
        if forced:
            assert "-f" in options and options[options.index("-f") + 1] == forced, argv
        start = index + 2


def test_whitelist_is_real_containers_only():
    allowed = set(allowed_demuxers())
    assert {"mov", "matroska", "avi", "mpegts", "mxf", "flv"} <= allowed
    assert not allowed & {"hls", "concat", "image2", "image2pipe", "sdp", "rtp", "rtsp", "dash",
                          "webm_dash_manifest", "tee", "lavfi", "data", "subfile", "mpjpeg"}


def test_misconfigured_whitelist_naming_a_playlist_format_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    with override_settings(PRIVATE_VIDEO_INPUT_FORMATS=["mov", "hls"]):
        with pytest.raises(ImproperlyConfigured, match="hls"):
            allowed_demuxers()


def test_worker_probe_carries_the_whitelists(sample_video, argv_log, tmp_path):
    info = _probe_source(Path(sample_video))
    assert info.demuxer == "mov"
    probes = [argv for argv in argv_log if argv[0] == "ffprobe"]
    assert probes
    for argv in probes:
        assert_inputs_whitelisted(argv)

    playlist = tmp_path / "source.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n{sample_video}\n#EXT-X-ENDLIST\n")
    with pytest.raises(ProbeError, match="playlist"):
        _probe_source(playlist)


def test_every_backend_command_carries_the_whitelists_and_forces_the_demuxer(sample_video, tmp_path):
    backend = get_backend()
    info = probe_video(sample_video)
    planned = plan_ladder(info)
    commands = {
        "remux": backend.remux_command(sample_video, info, "180p", tmp_path),
        "ladder": backend.ladder_command(sample_video, info, planned, tmp_path,
                                         storyboard=StoryboardPlan(2, 2, 2, 160, 90)),
        "poster": backend.poster_command(sample_video, info, tmp_path / "p.jpg", seek=1, width=320, height=180),
    }
    for name, argv in commands.items():
        assert_inputs_whitelisted(argv, forced="mov"), name
    # The progressive MP4 is cut from the ladder's own fMP4: an MP4 demuxer too.
    assert_inputs_whitelisted(backend.progressive_command(tmp_path / "hls-180p.m4s", tmp_path / "out.mp4"),
                              forced="mov")


def test_forced_demuxer_refuses_a_source_swapped_after_the_probe(sample_video, tmp_path):
    """The probe said MP4; if the file on disk is then a playlist, ffmpeg must
    not read it as one (and so must not read the file it names)."""
    info = probe_video(sample_video)
    swapped = tmp_path / "original.mp4"
    swapped.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n{sample_video}\n#EXT-X-ENDLIST\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FFmpegError):
        run_ffmpeg(get_backend().remux_command(swapped, info, "180p", out))
    assert not (out / "mp4-180p.mp4").exists() or (out / "mp4-180p.mp4").stat().st_size == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_stored_playlist_that_skipped_the_form_fails_its_job(sample_video):
    """A playlist in storage (stored before this check, or by other code) never
    reaches ffmpeg as a playlist: the job fails readably and makes nothing."""
    secret = make_video(sample_video, title="Secret")
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:5\n#EXTINF:4.0,\n{secret.file.path}\n#EXT-X-ENDLIST\n"
    video = Video(title="Playlist", original_filename="p.m3u8", file_size=len(playlist))
    video.file.save("p.m3u8", ContentFile(playlist.encode()), save=False)
    video.save()
    with override_settings(TRANSCODING_LADDER=[Rung(144, 300)], TRANSCODING_PROGRESSIVE_HEIGHT=144):
        job = enqueue_transcode(video)
    job.refresh_from_db()
    assert job.status == TranscodeJob.Status.FAILED
    assert "playlist" in job.error
    assert video.renditions.count() == 0


def _listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    connections = []

    def accept():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                connections.append(server.accept()[0])
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    return server, connections


def test_no_network_for_probe_or_ffmpeg(sample_video, tmp_path):
    server, connections = _listener()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/video.mp4"
    try:
        with pytest.raises(ProbeError):
            probe(url)
        info = probe_video(sample_video)
        with pytest.raises(FFmpegError):
            run_ffmpeg(get_backend().remux_command(url, info, "180p", tmp_path))
        time.sleep(0.5)
        assert connections == []
    finally:
        server.close()


# --- resource limits -------------------------------------------------------


def _limits(text):
    rows = {}
    for line in text.splitlines():
        match = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_ffmpeg_runs_under_cpu_memory_and_file_size_limits():
    limits = {"cpu_seconds": 1234, "memory_bytes": 3 * 1024**3, "file_size_bytes": 5 * 1024**3}
    with override_settings(TRANSCODING_FFMPEG_LIMITS=limits):
        tail = run_ffmpeg(["sh", "-c", "cat /proc/self/limits >&2"])
    rows = _limits(tail)
    assert rows["Max cpu time"][0] == "1234"
    assert rows["Max address space"][0] == str(3 * 1024**3)
    assert rows["Max file size"][0] == str(5 * 1024**3)
    assert rows["Max core file size"][0] == "0"


def test_output_over_the_file_size_limit_fails_readably(tmp_path):
    with override_settings(TRANSCODING_FFMPEG_LIMITS={"file_size_bytes": 64 * 1024}):
        with pytest.raises(FFmpegError, match="larger than"):
            run_ffmpeg([*FF, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "20",
                        "-c:v", "rawvideo", "-f", "nut", str(tmp_path / "big.nut")])
    assert (tmp_path / "big.nut").stat().st_size <= 64 * 1024


def test_cpu_time_limit_stops_ffmpeg_readably(tmp_path):
    with override_settings(TRANSCODING_FFMPEG_LIMITS={"cpu_seconds": 1}):
        with pytest.raises(FFmpegError, match="CPU time"):
            run_ffmpeg([*FF, "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "600",
                        "-c:v", "libx264", "-preset", "veryslow", "-f", "null", "-"], timeout=60)


def test_a_silent_idle_ffmpeg_is_killed_as_stalled_and_a_long_one_as_timed_out(tmp_path):
    # Waiting for input that never comes (a network read that hangs): no
    # progress, so it is killed after the stall timeout, not the 6 h limit.
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(FFmpegError, match="made no progress for 1 s"):
        run_ffmpeg([*FF, "-progress", "pipe:1", "-f", "rawvideo", "-s", "16x16", "-pix_fmt", "gray",
                    "-i", str(fifo), "-f", "null", "-"], stall_timeout=1, timeout=60)
    assert time.monotonic() - started < 30
    # Busy and reporting, but past the wall-clock limit.
    with pytest.raises(FFmpegError, match="took longer than 1 s"):
        run_ffmpeg([*FF, "-progress", "pipe:1", "-stats_period", "0.2", "-f", "lavfi",
                    "-i", "testsrc2=size=1280x720:rate=25", "-t", "600",
                    "-c:v", "libx264", "-preset", "veryslow", "-f", "null", "-"], timeout=1)


def test_ffprobe_runs_under_limits_too(sample_video):
    assert probe(sample_video).has_video
    # Far too little address space to even start: the limit is applied.
    with override_settings(PRIVATE_VIDEO_FFPROBE_LIMITS={"memory_bytes": 8 * 1024**2}):
        with pytest.raises(ProbeError) as caught:
            probe(sample_video)
    assert str(sample_video) not in str(caught.value)


def test_probe_errors_never_show_server_paths(tmp_path):
    hidden = tmp_path / "secret-folder" / "x.mp4"
    hidden.parent.mkdir()
    hidden.write_bytes(b"\0" * 5000)
    with pytest.raises(ProbeError) as caught:
        probe_video(hidden)
    assert str(tmp_path) not in str(caught.value)


def test_ffmpeg_dies_with_its_worker_and_keeps_its_limits():
    """The kernel limits do not replace PDEATHSIG: a worker killed with
    SIGKILL takes its ffmpeg with it."""
    import os
    import signal
    import subprocess
    import sys

    from .stack import REPO

    script = (
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'cms.settings.test'); django.setup()\n"
        "from transcoding.runner import run_ffmpeg\n"
        "run_ffmpeg(['sleep', '120'])\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, start_new_session=True)
    child = None
    try:
        # The child is listed from its fork on; its limits and PDEATHSIG are set
        # between the fork and the exec, so wait until it is `sleep` itself.
        deadline, child = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
            child = int(children[0]) if children else None
            if child and _command(child) == "sleep":
                break
            time.sleep(0.1)
        assert child, "run_ffmpeg started nothing"
        assert _command(child) == "sleep", _command(child)
        rows = _limits(Path(f"/proc/{child}/limits").read_text())
        assert rows["Max address space"][0] == str(8 * 1024**3)
        assert rows["Max core file size"][0] == "0"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(child), "ffmpeg outlived its worker"
    finally:
        if worker.poll() is None:
            worker.kill()
        if child and _running(child):
            os.kill(child, signal.SIGKILL)


def _command(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None


def _running(pid):
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
