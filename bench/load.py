"""`make bench-load`: 500 HLS viewers on PostgreSQL, with logins and publishes beside.

Needs DATABASE_URL=postgres://... (`make bench-load` runs it under
deploy/scripts/with-test-postgres). One data folder under bench/media/
(gitignored): a 60 s 640x360 clip is made once with ffmpeg's lavfi and put
through the real transcoding pipeline's playable phase (fMP4 HLS, 6 s
segments); a live VideoPage shows it to a group of BENCH_VIEWERS (500)
signed-in users, each with a session of its own.

Then the shipped nginx template in front of gunicorn with the default
3 sync workers, and, together for BENCH_SECONDS (80), viewers arriving at BENCH_SPAWN_RATE (10) a second:

- locust headless (bench/load/locustfile.py, FastHttpUser): every viewer
  fetches the playback JSON, the master, a media playlist (video and audio),
  the init segments, then one segment pair per 6 s (real time), a watch
  beacon every ~10 s, and starts over at the end of the clip;
- bench/load/churn.py: 2 sign-ins per second and a page publish every 10 s.

Afterwards the gunicorn access log is read: a segment request that reached
Python would be there (`python_segment_requests` must be 0; nginx serves
them from the signed URL). The last line is key=value pairs for CI logs:
viewers, errors, p95 (and p99) of the Python answers (JSON and playlists;
target < 100 ms), segments served, beacons.
"""

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA_DIR = REPO / "bench" / "media" / "load-data"
os.environ["CMS_DATA_DIR"] = str(DATA_DIR)
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.serve_settings"
if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
    raise SystemExit("bench/load.py needs DATABASE_URL=postgres://... "
                     "(deploy/scripts/with-test-postgres .venv/bin/python bench/load.py; `make bench-load` does it)")

VIEWERS = int(os.environ.get("BENCH_VIEWERS", "500"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "80"))
SPAWN_RATE = float(os.environ.get("BENCH_SPAWN_RATE", "10"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
CLIP_SECONDS = int(os.environ.get("BENCH_CLIP_SECONDS", "60"))
PACE = os.environ.get("BENCH_PACE", "1")


def setup_django():
    import django

    from bench.load.common import create_database

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    create_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_hls_video():
    """The clip, transcoded by the real pipeline's playable phase (once per database)."""
    from django.core.files import File

    from private_video.models import Video
    from private_video.probe import probe_video
    from transcoding import pipeline
    from transcoding.models import TranscodeJob
    from transcoding.testmedia import make_test_video

    title = f"bench load {CLIP_SECONDS} s"
    video = Video.objects.filter(title=title).first()
    if video is not None and video.renditions.exists():
        return video
    clip = DATA_DIR / f"clip-{CLIP_SECONDS}s.mp4"
    if not clip.exists():
        make_test_video(clip, duration=CLIP_SECONDS, width=640, height=360, fps=25,
                        video_args=("-b:v", "800k"))
    video = Video(title=title, original_filename=clip.name, file_size=clip.stat().st_size)
    video.apply_probe(probe_video(clip))
    with clip.open("rb") as handle:
        video.file.save(clip.name, File(handle), save=False)
    video.save()
    job = TranscodeJob.objects.filter(video=video).first()
    if job is None:
        raise SystemExit("saving a video queued no transcode job (TRANSCODING_AUTO_ENQUEUE off?)")
    outcome = pipeline.run_job(job.pk, TranscodeJob.Phase.PLAYABLE)
    if outcome not in ("playable", "ready"):
        job.refresh_from_db()
        raise SystemExit(f"transcode {outcome}: {job.error}")
    return video


def make_fixtures():
    from django.contrib.auth.models import Group
    from wagtail.models import Page, Site

    from bench.load.common import make_churn_page, make_churn_users, make_viewer_sessions
    from cms.models import VideoPage
    from media_access.models import ViewerGrant

    video = make_hls_video()
    group, _ = Group.objects.get_or_create(name="Bench load viewers")
    root = Site.objects.get(is_default_site=True).root_page
    page = Page.objects.filter(slug="bench-load").first()
    if page is None:
        page = root.add_child(instance=VideoPage(title="Bench load", slug="bench-load", video=video))
        page.save_revision().publish()
        ViewerGrant.objects.create(page=page, group=group)
    sessions = make_viewer_sessions(VIEWERS, group, prefix="load-viewer-")
    make_churn_users()
    make_churn_page(root)
    return page.pk, video.pk, sessions


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def main():
    began = time.perf_counter()
    setup_django()
    page, video, sessions = make_fixtures()
    sessions_file = DATA_DIR / "sessions.txt"
    sessions_file.write_text("\n".join(sessions) + "\n")
    results_file = DATA_DIR / "locust-results.json"
    results_file.unlink(missing_ok=True)

    from bench.load.common import start_churn, stop_churn
    from bench.serve_client import bench_stack

    access_log = DATA_DIR / "stack" / "gunicorn-access.log"
    access_log.parent.mkdir(parents=True, exist_ok=True)
    access_log.unlink(missing_ok=True)
    env = {"DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "60"),
           "GUNICORN_ACCESS_LOG": str(access_log)}
    stack = bench_stack(DATA_DIR, workers=WORKERS, extra_env=env, database_url=os.environ["DATABASE_URL"])
    churn = None
    try:
        print(f"# {VIEWERS} viewers (locust, FastHttpUser) for {SECONDS} s, arriving at {SPAWN_RATE:g}/s, "
              f"through nginx + gunicorn ({WORKERS} sync workers) on PostgreSQL, 127.0.0.1:{stack.port}; "
              f"{CLIP_SECONDS} s clip, 6 s segments at real-time pace x{PACE}; "
              f"2 logins/s + a publish every 10 s beside", flush=True)
        churn = start_churn({**stack.env, **env}, log_path=DATA_DIR / "churn.log", seconds=SECONDS + 60)
        locust = subprocess.run(
            [str(Path(sys.executable).parent / "locust"), "-f", str(REPO / "bench" / "load" / "locustfile.py"),
             "--headless", "--users", str(VIEWERS), "--spawn-rate", str(SPAWN_RATE),
             "--run-time", f"{SECONDS}s", "--stop-timeout", "2", "--host", stack.base_url,
             "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"],
            cwd=REPO, capture_output=True, text=True, timeout=SECONDS + 120,
            env={**os.environ, "BENCH_SESSIONS_FILE": str(sessions_file), "BENCH_PAGE": str(page),
                 "BENCH_VIDEO": str(video), "BENCH_RESULTS": str(results_file), "BENCH_PACE": PACE},
        )
        churned = stop_churn(churn)
        churn = None
        if not results_file.exists():
            raise SystemExit(f"locust wrote no results ({locust.returncode}):\n{locust.stdout[-3000:]}\n"
                             f"{locust.stderr[-3000:]}")
    finally:
        if churn is not None:
            stop_churn(churn)
        stack.stop()

    results = json.loads(results_file.read_text())
    samples, failures, stats = results["samples"], results["failures"], results["stats"]
    python_names = ("json", "master", "media")
    python_times = [t for name in python_names for t in samples.get(name, [])]
    counts = {name: len(samples.get(name, [])) for name in ("json", "master", "media", "segment", "beacon")}
    errors = sum(len(v) for v in failures.values())
    for name, values in sorted(samples.items()):
        print(f"{name:8s} {len(values):6d} requests  p50 {percentile(values, 0.5):6.1f} ms  "
              f"p95 {percentile(values, 0.95):6.1f} ms  p99 {percentile(values, 0.99):6.1f} ms  "
              f"max {max(values):7.1f} ms  failures {len(failures.get(name, []))}")
    for name, messages in failures.items():
        print(f"  {name} failures, first: {sorted(set(messages))[:3]}")

    # Which requests reached Python: gunicorn logs every one it answers.
    request_line = re.compile(r'"(?:GET|HEAD|POST) (\S+)')
    python_paths = [m.group(1) for m in map(request_line.search, access_log.read_text().splitlines()) if m]
    segment_like = [p for p in python_paths if re.search(r"\.(m4s|mp4|ts|aac|vtt|jpg)(\?|$)", p)
                    and not p.startswith(("/hls/", "/playback/"))]
    print(f"# gunicorn answered {len(python_paths)} requests; {len(segment_like)} were segment files")
    print(f"# {time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.1f}; {churned}")
    beacons = "off" if not counts["beacon"] else counts["beacon"]
    print(
        f"viewers={VIEWERS} errors={errors} p95_ttfb_ms={percentile(python_times, 0.95):.0f} "
        f"p99_ttfb_ms={percentile(python_times, 0.99):.0f} python_segment_requests={len(segment_like)} "
        f"segments={counts['segment']} playbacks={stats.get('playbacks', 0)} beacons={beacons} "
        f"json={counts['json']} playlists={counts['master'] + counts['media']} workers={WORKERS} {churned}"
    )


if __name__ == "__main__":
    main()
