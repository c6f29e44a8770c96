"""`make bench-upload`: the resumable (tus) upload path vs nginx receiving the same bytes.

One run, one nginx (the shipped template, plus one bench-only location) in
front of gunicorn (BENCH_WORKERS, default 3 sync workers as in production),
one data folder under bench/media/upload-data/ (gitignored). The source is a
real video, made cheaply once: BENCH_UPLOAD_GB (2) GiB of uncompressed 4K
frames of noise stream-copied into Matroska (no encoding), so it probes as a
3840x2160 video at the end like any upload.

1. the tus path: POST /admin/videos/uploads/tus/ (creation, Upload-Length
   and metadata), then PATCH chunks of PRIVATE_VIDEO_TUS_CHUNK_SIZE
   through nginx's tus location (proxy_request_buffering off: gunicorn
   writes each chunk to the staging file as it arrives); the last PATCH
   completes the upload (probe, move into storage, Video row);
2. the baseline: one PUT of the same file to an nginx-only location
   (``dav_methods PUT``: nginx writes the body to a temp file and renames it
   into place; no Python), i.e. nginx receiving the bytes to disk.

Both use the same client (raw HTTP/1.1 with ``socket.sendfile``, so the
client costs next to nothing) and alternate over BENCH_ROUNDS (5) rounds,
each upload after an untimed ``sync`` (the previous upload's dirty pages
written out, so neither path pays for the other's writeback); the best of
each counts. The tus time is end to end, completion included; the
completion's own cost (the last PATCH's time beyond a plain chunk's) is
printed separately. While the tus uploads run, every gunicorn worker's VmRSS
is sampled every 50 ms; the growth is the largest rise of any worker over
its level after a small warm-up upload. The last line is key=value pairs.
"""

import base64
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.client import HTTPResponse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA_DIR = REPO / "bench" / "media" / "upload-data"
os.environ["CMS_DATA_DIR"] = str(DATA_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.serve_settings"
os.environ.pop("DATABASE_URL", None)

WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
SIZE_GB = float(os.environ.get("BENCH_UPLOAD_GB", "2"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
FRAME_BYTES = 3840 * 2160 * 3 // 2  # one yuv420p 4K frame
CSRF = "benchcsrfbenchcsrfbenchcsrf12345"  # a 32-character CSRF secret, sent as cookie and header
PUT_PATH = "/bench-put/upload.mkv"


def setup_django():
    import django

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_source(path, frames):
    """A real video of ``frames`` uncompressed 4K frames of noise (seconds to make, no encoding)."""
    if path.exists() and path.stat().st_size >= frames * FRAME_BYTES:
        return path
    subprocess.run([
        "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "yuv420p",
        "-s", "3840x2160", "-r", "25", "-i", "/dev/urandom", "-frames:v", str(frames), "-c:v", "copy", str(path),
    ], check=True, timeout=300)
    return path


def make_user_session():
    from django.contrib.auth import get_user_model
    from django.test import Client

    User = get_user_model()
    user = User.objects.filter(username="bench-uploader").first()
    if user is None:
        user = User.objects.create_superuser("bench-uploader", "bench@example.com", None)
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class PutStack:
    """The shipped stack plus one nginx-only PUT location (the baseline)."""

    @staticmethod
    def make(base):
        class _Stack(base):
            def _spawn(self, name, cmd):
                if name == "nginx":
                    add_put_location(self.nginx_conf, DATA_DIR / "put")
                super()._spawn(name, cmd)

        return _Stack


def add_put_location(conf, root):
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    text = conf.read_text()
    block = f"""
    # bench/upload.py only: nginx receives a PUT body to disk (temp file, then renamed), no Python.
    location ^~ /bench-put/ {{
        root {root};
        client_body_temp_path {root / 'tmp'};
        client_max_body_size 0;
        client_body_timeout 300s;
        dav_methods PUT;
        create_full_put_path on;
    }}
"""
    marker = "    location = /_upload_gate {"
    if marker not in text:
        raise SystemExit(f"no place for the PUT location in {conf}")
    conf.write_text(text.replace(marker, block + marker, 1))


def send(port, method, path, headers, source=None, offset=0, count=0):
    """One request; the body (``count`` bytes of ``source`` from ``offset``) goes by sendfile.
    Returns (status, headers dict lower-cased, body bytes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=300)
    try:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {count}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if count:
            with open(source, "rb") as handle:
                sent = sock.sendfile(handle, offset, count)
            if sent != count:
                raise RuntimeError(f"sent {sent} of {count} bytes")
        response = HTTPResponse(sock)
        response.begin()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        sock.close()


def tus_upload(port, auth, source, size, chunk):
    """Create + PATCH chunks; (seconds, [each PATCH's seconds], video id)."""
    meta = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                    for k, v in (("filename", source.name), ("title", "bench upload")))
    started = time.perf_counter()
    status, headers, body = send(port, "POST", "/admin/videos/uploads/tus/", {
        **auth, "Tus-Resumable": "1.0.0", "Upload-Length": str(size), "Upload-Metadata": meta})
    if status != 201:
        raise RuntimeError(f"tus create: {status} {body[:300]!r}")
    location = headers["location"]
    if "://" in location:
        location = "/" + location.split("://", 1)[1].split("/", 1)[1]
    offset, patches, video = 0, [], None
    while offset < size:
        count = min(chunk, size - offset)
        began = time.perf_counter()
        status, headers, body = send(port, "PATCH", location, {
            **auth, "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream"}, source, offset, count)
        patches.append(time.perf_counter() - began)
        if status != 204:
            raise RuntimeError(f"tus PATCH at {offset}: {status} {body[:300]!r}")
        offset = int(headers["upload-offset"])
        video = headers.get("upload-video", video)
    return time.perf_counter() - started, patches, video


def put_upload(port, source, size):
    target = DATA_DIR / "put" / PUT_PATH.lstrip("/")
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    status, _, body = send(port, "PUT", PUT_PATH, {"Content-Type": "application/octet-stream"}, source, 0, size)
    elapsed = time.perf_counter() - started
    if status not in (201, 204) or target.stat().st_size != size:
        raise RuntimeError(f"PUT: {status} {body[:300]!r}")
    target.unlink()
    return elapsed


def _stat_fields(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pids, system_only=False):
    """User + system (or system only) CPU seconds the processes have used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for fields in filter(None, map(_stat_fields, pids)):
        total += (0 if system_only else int(fields[11])) + int(fields[12])
    return total / ticks


def minor_faults(pids):
    """Minor page faults of the processes so far (each a page the kernel had to map in)."""
    return sum(int(fields[7]) for fields in filter(None, map(_stat_fields, pids)))


class RssSampler(threading.Thread):
    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids, self.peak, self.stopping = pids, {pid: 0.0 for pid in pids}, threading.Event()

    def run(self):
        from bench.serve_client import rss_mb

        while not self.stopping.is_set():
            for pid in self.pids:
                try:
                    self.peak[pid] = max(self.peak[pid], rss_mb(pid))
                except OSError:
                    pass
            time.sleep(0.05)


def drop_video(video_id):
    from private_video.models import Video

    video = Video.objects.filter(pk=video_id).first()
    if video is not None:
        video.file.delete(save=False)
        video.delete()


def main():
    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    setup_django()
    from private_video.conf import setting
    from private_video.models import Video

    from bench.serve_client import bench_stack, rss_mb, worker_pids
    from tests.stack import Stack

    frames = max(2, round(SIZE_GB * 1024**3 / FRAME_BYTES))
    source = make_source(DATA_DIR / f"source-{frames}f.mkv", frames)
    small = make_source(DATA_DIR / "warmup-2f.mkv", 2)
    size = source.stat().st_size
    chunk = int(setting("TUS_CHUNK_SIZE"))
    session = make_user_session()
    auth = {"Cookie": f"sessionid={session}; csrftoken={CSRF}", "X-CSRFToken": CSRF}

    stack = bench_stack(DATA_DIR, workers=WORKERS, stack_class=PutStack.make(Stack),
                        extra_env={"GUNICORN_ACCESS_LOG": str(DATA_DIR / "stack" / "gunicorn-access.log")})
    times = {"tus": [], "put": []}
    cpu = {"tus": [], "put": []}
    gunicorn_system, gunicorn_faults = [], []
    completion = []
    try:
        port = stack.port
        # Warm-up: every worker imports the upload and probe code before RSS is read.
        for _ in range(WORKERS):
            _, _, video = tus_upload(port, auth, small, small.stat().st_size, chunk)
            drop_video(video)
        put_upload(port, small, small.stat().st_size)
        pids = worker_pids(stack.processes["gunicorn"].pid)
        nginx_pids = worker_pids(stack.processes["nginx"].pid)
        baseline = {pid: rss_mb(pid) for pid in pids}
        sampler = RssSampler(pids)
        sampler.start()
        print(f"# nginx + gunicorn ({WORKERS} sync workers) on 127.0.0.1:{port}; a {size / 1024**3:.2f} GiB "
              f"video ({frames} 4K frames, Matroska), tus chunks of {chunk // 1024**2} MiB; "
              f"{ROUNDS} alternated rounds", flush=True)
        for number in range(ROUNDS):
            for path in ("tus", "put") if number % 2 == 0 else ("put", "tus"):
                # The previous upload's 2 GiB of dirty pages go to disk first, untimed:
                # otherwise whichever path runs next pays for the other's writeback.
                os.sync()
                cpu_before = (cpu_seconds(pids), cpu_seconds(nginx_pids))
                system_before, faults_before = cpu_seconds(pids, system_only=True), minor_faults(pids)
                if path == "tus":
                    seconds, patches, video_id = tus_upload(port, auth, source, size, chunk)
                    video = Video.objects.get(pk=video_id)
                    assert (video.width, video.height, video.file_size) == (3840, 2160, size), (
                        video.width, video.height, video.file_size)
                    drop_video(video_id)
                    plain = statistics.median(patches[:-1]) if len(patches) > 1 else 0.0
                    last_share = (size - chunk * (len(patches) - 1)) / chunk
                    completion.append(max(0.0, patches[-1] - plain * last_share))
                else:
                    seconds = put_upload(port, source, size)
                times[path].append(seconds)
                cpu[path].append((cpu_seconds(pids) - cpu_before[0], cpu_seconds(nginx_pids) - cpu_before[1]))
                detail = ""
                if path == "tus":
                    gunicorn_system.append(cpu_seconds(pids, system_only=True) - system_before)
                    gunicorn_faults.append(minor_faults(pids) - faults_before)
                    detail = f" (system {gunicorn_system[-1]:.2f} s, {gunicorn_faults[-1]} page faults)"
                print(f"round {number + 1} {path:3s} {seconds:6.2f} s  {size / seconds / 1e6:7.1f} MB/s  "
                      f"CPU gunicorn {cpu[path][-1][0]:5.2f} s{detail}, nginx {cpu[path][-1][1]:5.2f} s  "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        sampler.stopping.set()
        sampler.join()
    finally:
        stack.stop()

    best = {path: min(values) for path, values in times.items()}
    ratio = best["put"] / best["tus"]
    growth = max(sampler.peak[pid] - baseline[pid] for pid in pids)
    print(f"worker RSS (MB) after warm-up -> peak during the tus uploads: "
          f"{', '.join(f'{baseline[p]:.1f}->{sampler.peak[p]:.1f}' for p in pids)}")
    print(f"# {time.perf_counter() - began:.0f} s; target resumable/raw PUT >= 0.7, RSS growth < 20 MB; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"resumable_vs_raw_put={ratio:.2f} worker_rss_growth_mb={growth:.1f} "
          f"tus_mb_s={size / best['tus'] / 1e6:.0f} put_mb_s={size / best['put'] / 1e6:.0f} "
          f"completion_s={min(completion):.2f} tus_gunicorn_cpu_s={min(c[0] for c in cpu['tus']):.2f} "
          f"tus_gunicorn_faults={min(gunicorn_faults)} tus_nginx_cpu_s={min(c[1] for c in cpu['tus']):.2f} put_nginx_cpu_s={min(c[1] for c in cpu['put']):.2f} "
          f"upload_bytes={size} chunk_mib={chunk // 1024**2} workers={WORKERS} "
          f"wmem_default={wmem_default()}")


def wmem_default():
    """net.core.wmem_default: the send buffer nginx's Unix socket to gunicorn
    gets (nginx sets none), which bounds how far nginx can run ahead of the
    worker (docs/benchmarks.md). Printed so runs are comparable; never changed."""
    try:
        return int(Path("/proc/sys/net/core/wmem_default").read_text())
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    main()
