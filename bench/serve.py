"""`make bench-serve`: how media_access's X-Accel path compares, on loopback.

One run, one nginx (the shipped template) in front of one gunicorn with a
fixed worker count, one data folder under bench/media/ (gitignored):

1. raw nginx static serving of the file (the ceiling),
2. the authorised X-Accel path (/watch/..., policy + nginx sendfile),
3. the same file through Django's FileResponse (same policy, Python moves bytes),
4. a bare Django view returning an empty response (the floor for any Python answer).

The client is wrk (bench/serve_client.wrk, scripts in bench/wrk/); slow
viewers are the paced Python client. ``--postgres`` (with DATABASE_URL set,
as `deploy/scripts/with-test-postgres` does) measures 2 vs 4 instead on
PostgreSQL with BENCH_SESSIONS (500) distinct signed-in viewers, each wrk
request carrying the next one's session cookie, while a side process signs
someone in twice a second and publishes a page every 10 s.

The last line is key=value pairs for CI logs.
"""

import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

POSTGRES = "--postgres" in sys.argv[1:]
DATA_DIR = REPO / "bench" / "media" / ("serve-pg-data" if POSTGRES else "serve-data")
os.environ["CMS_DATA_DIR"] = str(DATA_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.serve_settings"
if POSTGRES:
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        raise SystemExit("--postgres needs DATABASE_URL=postgres://... "
                         "(deploy/scripts/with-test-postgres .venv/bin/python bench/serve.py --postgres)")
else:
    os.environ.pop("DATABASE_URL", None)

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
WHOLE_MB = int(os.environ.get("BENCH_WHOLE_MB", "256"))
BIG_GB = float(os.environ.get("BENCH_BIG_GB", "4"))
SLOW_VIEWERS = int(os.environ.get("BENCH_SLOW_VIEWERS", "200"))
SLOW_RATE = 2_000_000 // 8  # ~2 Mbit/s, a modest video bitrate
SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "6"))
SLOW_RAMP = float(os.environ.get("BENCH_SLOW_RAMP", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "4"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "500"))
PG_ROUNDS = int(os.environ.get("BENCH_PG_ROUNDS", "3"))
PG_ROUND_SECONDS = int(os.environ.get("BENCH_PG_ROUND_SECONDS", "6"))
PG_WARMUP_PASSES = int(os.environ.get("BENCH_PG_WARMUP_PASSES", "8"))


def setup_django():
    import django

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if POSTGRES:
        from bench.load.common import create_database

        create_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command

    from django.db import connection
    from django.db.migrations.exceptions import InconsistentMigrationHistory

    try:
        call_command("migrate", verbosity=0, interactive=False)
    except InconsistentMigrationHistory:
        # A bench database left by an older layout of the apps: start it afresh.
        if connection.vendor != "sqlite":
            raise
        connection.close()
        Path(connection.settings_dict["NAME"]).unlink()
        call_command("migrate", verbosity=0, interactive=False)


def make_file(path, size, *, sparse):
    if path.exists() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if sparse:
        with path.open("wb") as handle:
            handle.truncate(size)
    else:
        block = os.urandom(1024 * 1024)
        with path.open("wb") as handle:
            for _ in range(size // len(block)):
                handle.write(block)
    return path


def make_fixtures(whole_mb=WHOLE_MB, big=True):
    """A user in a granted group, a live VideoPage per file, and the static copy."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client
    from wagtail.models import Site

    from cms.models import VideoPage
    from private_video.models import Video
    from media_access.models import ViewerGrant

    private = Path(settings.PRIVATE_MEDIA_ROOT)
    whole = make_file(private / "videos/bench/whole.mp4", whole_mb * 1024 * 1024, sparse=False)
    big = make_file(private / "videos/bench/big.mp4", int(BIG_GB * 1024**3) if big else 1024, sparse=True)
    static_copy = Path(settings.STATIC_ROOT) / "bench" / "whole.mp4"
    static_copy.parent.mkdir(parents=True, exist_ok=True)
    if not static_copy.exists():
        os.link(whole, static_copy)

    group, _ = Group.objects.get_or_create(name="Bench viewers")
    user, created = get_user_model().objects.get_or_create(username="bench-viewer")
    user.groups.add(group)
    root = Site.objects.get(is_default_site=True).root_page
    pages = {}
    for name, path in (("whole", whole), ("big", big)):
        video, _ = Video.objects.get_or_create(
            title=f"bench {name}",
            defaults={"file": f"videos/bench/{path.name}", "original_filename": path.name,
                      "file_size": path.stat().st_size},
        )
        page = VideoPage.objects.filter(slug=f"bench-{name}").first()
        if page is None:
            page = root.add_child(instance=VideoPage(title=f"Bench {name}", slug=f"bench-{name}", video=video))
            page.save_revision().publish()
            ViewerGrant.objects.create(page=page, group=group)
        pages[name] = (page.pk, video.pk)
    client = Client()
    client.force_login(user)
    return pages, client.cookies["sessionid"].value, group


def alternate(rounds, names, measure):
    """Each name measured ``rounds`` times, alternating the order each round
    (the 2 cores are shared: neighbours' noise falls on every path alike)."""
    results = {name: [] for name in names}
    for number in range(rounds):
        for name in names if number % 2 == 0 else tuple(reversed(names)):
            results[name].append(measure(name))
    return results


def main():
    began = time.perf_counter()
    setup_django()
    pages, session, _ = make_fixtures()

    from bench.serve_client import Connection, bench_stack, rss_mb, slow_viewers, worker_pids, wrk, wrk_checked

    stack = bench_stack(
        DATA_DIR,
        workers=WORKERS,
        # Persistent database connections, as recommended for production;
        # the same for every path measured.
        extra_env={"DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "60")},
    )
    try:
        port = stack.port
        cookie = {"Cookie": f"sessionid={session}"}
        whole_page, whole_video = pages["whole"]
        big_page, big_video = pages["big"]
        paths = {
            "static": "/static/bench/whole.mp4",
            "xaccel": f"/watch/{whole_page}/{whole_video}/original/",
            "fileresponse": f"/bench/file/{whole_page}/{whole_video}/",
            "bare": "/bench/bare/",
            "bare_user": "/bench/bare-user/",
        }
        # Sanity and warm-up: every path answers as expected before timing.
        conn = Connection(port)
        for name, path in paths.items():
            status, _ = conn.get(path, {**cookie, "Range": "bytes=0-1"})
            assert status in (200, 206), (name, status)
        status, _ = conn.get(paths["xaccel"], {"Range": "bytes=0-1"})
        assert status in (302, 403), ("anonymous X-Accel", status)
        conn.close()
        print(f"# wrk against nginx + gunicorn ({WORKERS} sync workers) on 127.0.0.1:{port}; "
              f"whole file {WHOLE_MB} MiB, big file {BIG_GB:g} GiB (sparse)")

        # 1 vs 2 (vs 3): whole-file throughput, 2 connections, median of 3 alternated rounds.
        rounds = alternate(3, ("static", "xaccel", "fileresponse"), lambda name: wrk_checked(
            port, paths[name], headers=cookie, connections=2, seconds=2)["bytes_per_s"])
        whole = {name: statistics.median(values) for name, values in rounds.items()}
        for name, value in whole.items():
            print(f"whole-file throughput {name:13s} {value / 1e9:6.2f} GB/s  "
                  f"(rounds {', '.join(f'{v / 1e9:.2f}' for v in rounds[name])})")
        xaccel_vs_static = whole["xaccel"] / whole["static"]

        # 2 vs 4: small range requests per second, best of 2 alternated rounds.
        small = {**cookie, "Range": "bytes=0-1"}
        rounds = alternate(2, ("bare", "bare_user", "xaccel"), lambda name: wrk_checked(
            port, paths[name], headers=small, connections=CONNECTIONS, seconds=3))
        rps = {name: max(r["rps"] for r in values) for name, values in rounds.items()}
        p99 = {name: max(r["p99_us"] for r in values) / 1000 for name, values in rounds.items()}
        print(f"small requests/s       bare Django {rps['bare']:7.0f}   bare + session user "
              f"{rps['bare_user']:7.0f}   X-Accel (policy) {rps['xaccel']:7.0f}   "
              f"(p99 {p99['bare']:.1f} / {p99['bare_user']:.1f} / {p99['xaccel']:.1f} ms, "
              f"{CONNECTIONS} connections)")
        policy_vs_bare = rps["xaccel"] / rps["bare"]

        # Concurrent slow viewers with the fixed worker count (the paced Python client).
        slow = slow_viewers(port, paths["xaccel"], cookie, viewers=SLOW_VIEWERS, rate=SLOW_RATE,
                            seconds=SLOW_SECONDS, ramp=SLOW_RAMP)
        xaccel_ok = slow["ok"] == SLOW_VIEWERS and not slow["errors"] and slow["ttfb_p95"] < 0.1
        print(f"slow viewers X-Accel      {slow['ok']}/{SLOW_VIEWERS} ok, "
              f"TTFB p95 {slow['ttfb_p95'] * 1000:.0f} ms, errors {len(slow['errors'])}")
        stalls_at = None
        for viewers in (WORKERS, WORKERS + 1, WORKERS * 4, WORKERS * 8):
            result = slow_viewers(port, paths["fileresponse"], cookie, viewers=viewers, rate=SLOW_RATE,
                                  seconds=2.0, ramp=0.2, ttfb_timeout=3)
            print(f"slow viewers FileResponse {result['ok']}/{viewers} ok, "
                  f"TTFB p95 {result['ttfb_p95'] * 1000:.0f} ms, errors {len(result['errors'])}")
            if stalls_at is None and (result["errors"] or result["ttfb_p95"] >= 0.1):
                stalls_at = viewers
                break

        # Worker memory while nginx sends a multi-GB file.
        workers = worker_pids(stack.processes["gunicorn"].pid)
        before = {pid: rss_mb(pid) for pid in workers}
        big_path = f"/watch/{big_page}/{big_video}/original/"
        big_rate = wrk(port, big_path, headers=cookie, connections=1, seconds=4)["bytes_per_s"]
        wrk_checked(port, big_path, headers={**cookie, "Range": "bytes=3000000000-3000999999"},
                    connections=2, seconds=1)
        after = {pid: rss_mb(pid) for pid in workers if Path(f"/proc/{pid}").exists()}
        growth = max(after[pid] - before[pid] for pid in after)
        print(f"big file via X-Accel     {BIG_GB:g} GiB at {big_rate / 1e9:.2f} GB/s; "
              f"worker RSS {', '.join(f'{before[p]:.1f}->{after[p]:.1f} MB' for p in after)}")
    finally:
        stack.stop()

    print(f"# {time.perf_counter() - began:.0f} s; FileResponse stalls at "
          f"{stalls_at or 'n/a'} slow viewers with {WORKERS} workers; load average {os.getloadavg()[0]:.1f}")
    print(
        f"xaccel_vs_static_whole={xaccel_vs_static:.2f} policy_vs_bare_django={policy_vs_bare:.2f} "
        f"xaccel_slow_viewers_ok={str(xaccel_ok).lower()} worker_rss_growth_mb={growth:.1f} "
        f"fileresponse_stalls_at={stalls_at or 'none'} slow_viewers={slow['ok']}/{SLOW_VIEWERS} "
        f"slow_ttfb_p95_ms={slow['ttfb_p95'] * 1000:.0f} p99_ms={p99['xaccel']:.1f}"
    )


def main_postgres():
    """2 vs 4 on PostgreSQL: BENCH_SESSIONS signed-in viewers, logins and publishes going on."""
    began = time.perf_counter()
    setup_django()
    pages, _, group = make_fixtures(whole_mb=1, big=False)

    from wagtail.models import Site

    from bench.load.common import make_churn_page, make_churn_users, make_viewer_sessions, start_churn, stop_churn
    from bench.serve_client import Connection, bench_stack, cpu_seconds_by_name, wrk_checked

    sessions = make_viewer_sessions(SESSIONS, group)
    make_churn_users()
    make_churn_page(Site.objects.get(is_default_site=True).root_page)
    cookies = DATA_DIR / "sessions.txt"
    cookies.write_text("\n".join(sessions) + "\n")
    database_url = os.environ["DATABASE_URL"]
    env = {"DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "60")}
    stack = bench_stack(DATA_DIR, workers=WORKERS, extra_env=env, database_url=database_url)
    churn = None
    try:
        port = stack.port
        page, video = pages["whole"]
        paths = {"bare": "/bench/bare/", "xaccel": f"/watch/{page}/{video}/original/"}
        conn = Connection(port)
        for key in (sessions[0], sessions[-1]):
            status, got = conn.get(paths["xaccel"], {"Cookie": f"sessionid={key}", "Range": "bytes=0-1"})
            assert (status, got) == (206, 2), ("signed-in viewer", status, got)
        status, _ = conn.get(paths["xaccel"], {"Range": "bytes=0-1"})
        assert status in (302, 403), ("anonymous", status)
        conn.close()
        churn = start_churn({**stack.env, **env}, log_path=DATA_DIR / "churn.log")
        print(f"# wrk against nginx + gunicorn ({WORKERS} sync workers) on PostgreSQL, 127.0.0.1:{port}; "
              f"{len(sessions)} signed-in viewers in turn, {CONNECTIONS} connections, "
              f"2 logins/s + a publish every 10 s beside; {PG_ROUNDS} alternated rounds of {PG_ROUND_SECONDS:g} s")

        def run(name, seconds, offset=0):
            before = cpu_seconds_by_name()
            figures = wrk_checked(port, paths[name], headers={"Range": "bytes=0-1"}, connections=CONNECTIONS,
                                  seconds=seconds, script="sessions.lua",
                                  env={"BENCH_COOKIES": str(cookies), "BENCH_OFFSET": str(offset)})
            after = cpu_seconds_by_name()
            # CPU per request of each part (churn's logins and publishes included, alike for both paths).
            figures["cpu_us"] = {part: (after[part] - before[part]) / figures["requests"] * 1e6 for part in after}
            return figures

        # Warm-up: the steady state is every viewer known to every worker (each
        # worker remembers its own decisions; a viewer's first request on a
        # worker runs the whole policy). Requests land on a worker by chance,
        # so each session goes BENCH_PG_WARMUP_PASSES (8) times round (a given
        # viewer is then unknown to a given one of 2 workers with odds 2^-8),
        # in 3 s runs that carry on through the list, at most 90 s.
        warm_began, warm_requests, warm_rates = time.perf_counter(), 0, []
        while warm_requests < PG_WARMUP_PASSES * len(sessions) and time.perf_counter() - warm_began < 90:
            figures = run("xaccel", 3, offset=warm_requests)
            warm_requests += figures["requests"]
            warm_rates.append(figures["rps"])
        print(f"warm-up: {warm_requests} X-Accel requests in {time.perf_counter() - warm_began:.0f} s, "
              f"requests/s {', '.join('%.0f' % r for r in warm_rates)}", flush=True)
        rounds = alternate(PG_ROUNDS, ("bare", "xaccel"), lambda name: run(name, PG_ROUND_SECONDS))
        churned = stop_churn(churn)
        churn = None
    finally:
        if churn is not None:
            stop_churn(churn)
        stack.stop()

    for name, values in rounds.items():
        listed = ", ".join("%.0f" % r["rps"] for r in values)
        p99s = ", ".join("%.1f" % (r["p99_us"] / 1000) for r in values)
        print(f"{name:7s} requests/s {listed}; p99 {p99s} ms")
    for name, values in rounds.items():
        cpu = {part: statistics.median(r["cpu_us"][part] for r in values) for part in values[0]["cpu_us"]}
        print(f"{name:7s} CPU per request (medians, µs): " + ", ".join(f"{part} {us:.0f}" for part, us in cpu.items()))
    rps = {name: statistics.median(r["rps"] for r in values) for name, values in rounds.items()}
    p99 = max(r["p99_us"] for r in rounds["xaccel"]) / 1000
    ratio = rps["xaccel"] / rps["bare"]
    print(f"# {time.perf_counter() - began:.0f} s; medians; target policy/bare >= 0.7; "
          f"load average {os.getloadavg()[0]:.1f}; {churned}")
    print(f"policy_vs_bare_django_pg={ratio:.2f} p99_ms={p99:.1f} policy_rps={rps['xaccel']:.0f} "
          f"bare_rps={rps['bare']:.0f} sessions={len(sessions)} connections={CONNECTIONS} workers={WORKERS} {churned}")


if __name__ == "__main__":
    main_postgres() if POSTGRES else main()
