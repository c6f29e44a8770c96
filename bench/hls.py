"""`make bench-hls`: segment requests through the signed-token path vs raw nginx static.

One nginx from the shipped template (gunicorn behind it only so the stack
starts; no request here reaches Python), one data folder under bench/media/
(gitignored). The same file, hard-linked, is served two ways:

1. raw static: ``/static/bench/hls.m4s`` (the ceiling),
2. the token path: ``/stream/<token>/<expires>/videos/../renditions/../hls-bench.m4s``
   with the viewer cookie the token is bound to (nginx validates the cookie,
   checks secure_link over expiry, folder and cookie, then sendfile).

The client is wrk (Debian package, C; bench/wrk/hls_ranges.lua), so the
client is not the ceiling on 2 shared cores as the Python one was. Each
request is a byte range the size of a 6 s segment (BENCH_SEGMENT_BITRATE,
default 2 Mbit/s → 1.5 MB), walking the file like a player, on keep-alive
connections at the same concurrency. The 2 cores are shared (with other
work too), so the two paths run back to back in each round, the order
alternating, and ``token_vs_static`` is the median of the rounds' own
ratios: a neighbour's burst slows both runs of a round alike, or spoils one
round, not the figure. The best-of ratio is printed too. Any status >= 400
fails the run. The last line is key=value pairs for CI logs.
"""

import os
import statistics
import sys
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
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
TARGET = 0.95
# A fixed video key, so reruns reuse the file.
BENCH_KEY = uuid.UUID("5e9a0000-0000-4000-8000-00000000b0b0")
# The bench browser's viewer cookie (media_access.tokens: signed URLs are bound to it).
VIEWER = "bench-viewer-0123456789abcdefgh"


def setup_django():
    import django

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    django.setup()
    from django.core.management import call_command

    from django.db import connection
    from django.db.migrations.exceptions import InconsistentMigrationHistory

    # The stack's readiness check renders /login/.
    try:
        call_command("migrate", verbosity=0, interactive=False)
    except InconsistentMigrationHistory:
        # A bench database left by an older layout of the apps: it holds
        # nothing the bench needs (the file is rebuilt too), so start afresh.
        connection.close()
        (DATA_DIR / "db.sqlite3").unlink()
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


def segment_rounds(port, paths, size, cookies):
    """``ROUNDS`` wrk runs per path, alternating which goes first."""
    from bench.serve_client import wrk_checked

    results = {label: [] for label in paths}
    for number in range(ROUNDS):
        order = list(paths) if number % 2 == 0 else list(reversed(paths))
        for label in order:
            figures = wrk_checked(
                port, paths[label], connections=CONNECTIONS, seconds=ROUND_SECONDS, script="hls_ranges.lua",
                env={"BENCH_HLS_SIZE": str(size), "BENCH_HLS_SEGMENT": str(SEGMENT_BYTES),
                     "BENCH_HLS_COOKIE": cookies.get(label, "")},
            )
            # Every answer a whole segment (headers aside): no short or empty 2xx.
            if figures["bytes"] < figures["requests"] * SEGMENT_BYTES:
                raise RuntimeError(f"{label}: {figures['bytes']} bytes for {figures['requests']} segments")
            results[label].append(figures)
            print(f"round {number + 1} {label:6s} {figures['rps']:8.1f} segments/s  "
                  f"{figures['bytes_per_s'] / 1e9:5.2f} GB/s  p99 {figures['p99_us'] / 1000:6.1f} ms")
    return results


def load_average():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main():
    began = time.perf_counter()
    setup_django()
    name, size = make_files()

    from bench.serve_client import Connection, bench_stack
    from media_access.tokens import VideoToken, viewer_cookie_name

    idle_load = load_average()
    stack = bench_stack(DATA_DIR, workers=1)
    try:
        port = stack.port
        token = VideoToken.issue(_Video, viewer=VIEWER, lifetime=3600)
        paths = {"static": "/static/bench/hls.m4s", "token": token.url_for(name)}
        cookie = f"{viewer_cookie_name()}={VIEWER}"
        cookies = {"token": cookie}
        # Sanity: both answer the same bytes' worth; a forged token, the token
        # without its viewer cookie or with another browser's get nothing.
        conn = Connection(port)
        for label, path in paths.items():
            headers = {"Range": "bytes=0-1", **({"Cookie": cookies[label]} if label in cookies else {})}
            status, got = conn.get(path, headers)
            assert (status, got) == (206, 2), (label, status, got)
        forged = paths["token"].replace(token.value, ("A" if token.value[0] != "A" else "B") + token.value[1:])
        for label, path, headers in (
            ("forged", forged, {"Cookie": cookie}),
            ("no cookie", paths["token"], {}),
            ("another browser", paths["token"], {"Cookie": f"{viewer_cookie_name()}={'o' * 32}"}),
        ):
            status, got = conn.get(path, {"Range": "bytes=0-1", **headers})
            assert (status, got) == (403, 0), (label, status, got)
        conn.close()
        print(f"# wrk against nginx (shipped template) on 127.0.0.1:{port}; {FILE_MB} MiB file, "
              f"{SEGMENT_BYTES / 1e6:.2f} MB ranges (6 s at {SEGMENT_BYTES * 8 / SEGMENT_SECONDS / 1e6:g} Mbit/s), "
              f"{CONNECTIONS} keep-alive connections, {ROUNDS} alternated rounds of {ROUND_SECONDS:g} s; "
              f"load average before: {idle_load:.2f} on {os.cpu_count()} CPUs")
        results = segment_rounds(port, paths, size, cookies)
    finally:
        stack.stop()

    best = {label: max(runs, key=lambda f: f["rps"]) for label, runs in results.items()}
    rounds = [token["rps"] / static["rps"] for token, static in zip(results["token"], results["static"])]
    ratio = statistics.median(rounds)
    best_ratio = best["token"]["rps"] / best["static"]["rps"]
    print(f"# {time.perf_counter() - began:.0f} s; target token/static >= {TARGET}; "
          f"load average after: {load_average():.2f}")
    print(
        f"token_rps={best['token']['rps']:.1f} static_rps={best['static']['rps']:.1f} "
        f"token_vs_static={ratio:.2f} best_token_vs_best_static={best_ratio:.2f} "
        f"round_ratios_min={min(rounds):.2f} round_ratios_max={max(rounds):.2f} "
        f"segment_bytes={SEGMENT_BYTES} connections={CONNECTIONS} "
        f"token_gbps={best['token']['bytes_per_s'] * 8 / 1e9:.2f} static_gbps={best['static']['bytes_per_s'] * 8 / 1e9:.2f} "
        f"token_p99_ms={best['token']['p99_us'] / 1000:.1f} static_p99_ms={best['static']['p99_us'] / 1000:.1f} "
        f"client=wrk"
    )


if __name__ == "__main__":
    main()
