"""`make bench-hls`: segment requests through the signed-token path vs raw nginx static.

One nginx from the shipped template (gunicorn behind it only so the stack
starts; no request here reaches Python), one data folder under bench/media/
(gitignored). The same file, hard-linked, is served two ways:

1. raw static: ``/static/bench/hls.m4s`` (the ceiling),
2. the token path: ``/stream/<token>/<expires>/videos/../renditions/../hls-bench.m4s``
   (nginx checks secure_link, then sendfile).

Each request is a byte range the size of a 6 s segment (BENCH_SEGMENT_BITRATE,
default 2 Mbit/s → 1.5 MB), walking the file like a player, on keep-alive
connections at the same concurrency; the two paths alternate rounds and the
best of each counts, since the 2 cores are shared. The last line is
key=value pairs for CI logs.
"""

import os
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA_DIR = REPO / "bench" / "media" / "hls-data"
os.environ["CMS_DATA_DIR"] = str(DATA_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.serve_settings"
os.environ.pop("DATABASE_URL", None)

FILE_MB = int(os.environ.get("BENCH_HLS_FILE_MB", "96"))
SEGMENT_SECONDS = 6
SEGMENT_BYTES = int(os.environ.get("BENCH_SEGMENT_BITRATE", "2000000")) // 8 * SEGMENT_SECONDS
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# A fixed video key, so reruns reuse the file.
BENCH_KEY = uuid.UUID("5e9a0000-0000-4000-8000-00000000b0b0")


def setup_django():
    import django

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    django.setup()
    from django.core.management import call_command

    # The stack's readiness check renders /login/.
    call_command("migrate", verbosity=0, interactive=False)


def make_files():
    from django.conf import settings

    hex_key = BENCH_KEY.hex
    name = f"videos/{hex_key[:2]}/{hex_key}/renditions/1-bench/hls-bench.m4s"
    private = Path(settings.PRIVATE_MEDIA_ROOT) / name
    size = FILE_MB * 1024 * 1024
    if not private.exists() or private.stat().st_size != size:
        private.parent.mkdir(parents=True, exist_ok=True)
        block = os.urandom(1024 * 1024)
        with private.open("wb") as handle:
            for _ in range(FILE_MB):
                handle.write(block)
    static_copy = Path(settings.STATIC_ROOT) / "bench" / "hls.m4s"
    static_copy.parent.mkdir(parents=True, exist_ok=True)
    if static_copy.exists() and static_copy.stat().st_ino != private.stat().st_ino:
        static_copy.unlink()
    if not static_copy.exists():
        os.link(private, static_copy)
    return name, size


class _Video:
    key = BENCH_KEY


def segment_requests_per_second(port, path, size, *, connections, seconds):
    """Segment-sized byte ranges on keep-alive connections for a fixed time,
    each connection walking the file from its own starting point."""
    from bench.serve_client import Connection

    segments = size // SEGMENT_BYTES
    counts = [0] * connections
    received = [0] * connections
    bad = []
    stop = time.perf_counter() + seconds

    def worker(index):
        conn = Connection(port)
        segment = index * segments // connections
        try:
            while time.perf_counter() < stop:
                start = (segment % segments) * SEGMENT_BYTES
                status, got = conn.get(path, {"Range": f"bytes={start}-{start + SEGMENT_BYTES - 1}"})
                if status != 206 or got != SEGMENT_BYTES:
                    bad.append((status, got))
                    return
                counts[index] += 1
                received[index] += got
                segment += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if bad:
        raise RuntimeError(f"{path}: unexpected answers {bad[:5]}")
    return sum(counts) / elapsed, sum(received) / elapsed


def main():
    began = time.perf_counter()
    setup_django()
    name, size = make_files()

    from bench.serve_client import Connection, bench_stack
    from media_access.tokens import VideoToken

    stack = bench_stack(DATA_DIR, workers=1)
    try:
        port = stack.port
        token = VideoToken.issue(_Video, lifetime=3600)
        paths = {"static": "/static/bench/hls.m4s", "token": token.url_for(name)}
        # Sanity: both answer the same bytes' worth; a forged token gets nothing.
        conn = Connection(port)
        for label, path in paths.items():
            status, got = conn.get(path, {"Range": "bytes=0-1"})
            assert (status, got) == (206, 2), (label, status, got)
        forged = paths["token"].replace(token.value, "A" + token.value[1:] if token.value[0] != "A" else "B" + token.value[1:])
        status, got = conn.get(forged, {"Range": "bytes=0-1"})
        assert (status, got) == (403, 0), ("forged", status, got)
        conn.close()
        print(f"# nginx (shipped template) on 127.0.0.1:{port}; {FILE_MB} MiB file, "
              f"{SEGMENT_BYTES / 1e6:.2f} MB ranges (6 s at {SEGMENT_BYTES * 8 / SEGMENT_SECONDS / 1e6:g} Mbit/s), "
              f"{CONNECTIONS} keep-alive connections, {ROUNDS} alternated rounds of {ROUND_SECONDS:g} s")
        best = {}
        for round_number in range(ROUNDS):
            for label in ("static", "token") if round_number % 2 == 0 else ("token", "static"):
                rps, rate = segment_requests_per_second(
                    port, paths[label], size, connections=CONNECTIONS, seconds=ROUND_SECONDS
                )
                print(f"round {round_number + 1} {label:6s} {rps:8.1f} segments/s  {rate / 1e9:5.2f} GB/s")
                if rps > best.get(label, (0, 0))[0]:
                    best[label] = (rps, rate)
    finally:
        stack.stop()

    ratio = best["token"][0] / best["static"][0]
    print(f"# {time.perf_counter() - began:.0f} s; target token/static >= 0.9")
    print(
        f"token_rps={best['token'][0]:.1f} static_rps={best['static'][0]:.1f} "
        f"token_vs_static={ratio:.2f} segment_bytes={SEGMENT_BYTES} connections={CONNECTIONS} "
        f"token_gbps={best['token'][1] * 8 / 1e9:.2f} static_gbps={best['static'][1] * 8 / 1e9:.2f}"
    )


if __name__ == "__main__":
    main()
