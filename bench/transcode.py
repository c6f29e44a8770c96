"""Transcoding benchmark (`make bench-transcode`, docs/benchmarks.md).

On a generated 1080p30 clip (60 s unless BENCH_SECONDS says otherwise;
kept under bench/media/, which git ignores) it measures, in one run:

* the full ladder (default profiles, one decode, one ffmpeg process) as a
  realtime factor;
* the same rungs made by one ffmpeg process each, for the one-decode ratio
  (wall clock, the target, and CPU time, which neighbours disturb less);
* time-to-playable of a standard H.264/AAC upload and of a non-standard one
  (H.264 4:2:2, as cameras write), through the real pipeline (``run_job``)
  on a throwaway database and data folder;
* all renditions of the standard upload as a multiple of the original;
* a burst: 20 standard uploads of 30 s committed at once, two real
  ``transcoding_worker`` processes on the database queue, and the p95 (and
  max) time from the commit to each video being playable, plus a check
  that no full ladder started before the last video was playable.

The last line is key=value for machines.
"""

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "bench" / "media"
SECONDS = int(os.environ.get("BENCH_SECONDS", "60"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
BURST_UPLOADS = int(os.environ.get("BENCH_BURST_UPLOADS", "20"))
BURST_SECONDS = int(os.environ.get("BENCH_BURST_SECONDS", "30"))
BURST_WORKERS = 2


def setup_django(data_dir):
    os.environ["CMS_DATA_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "cms.settings.base"
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'bench.sqlite3'}"
    # Jobs run in this process, on purpose: this measures the pipeline, not the queue.
    os.environ["TRANSCODING_TASKS_BACKEND"] = "django_tasks.backends.immediate.ImmediateBackend"
    os.environ["TRANSCODING_AUTO_ENQUEUE"] = "0"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_sources():
    from transcoding.testmedia import make_test_video

    # Phone-like: 1080p30 H.264 High (CABAC, B-frames) at ~8 Mbit/s with
    # AAC stereo, keyframes every 2 s. A lavfi pattern at a default CRF would
    # be a few hundred kbit/s and make every storage ratio meaningless; an
    # "ultrafast" (CAVLC) source would make decoding unrealistically cheap.
    rate = ("-b:v", "8M", "-maxrate", "8M", "-bufsize", "16M")
    made = []
    for name, seconds, extra in (
        (f"bench-1080p30-{SECONDS}s-phone-8M.mp4", SECONDS, {}),
        (f"bench-1080p30-{SECONDS}s-phone-8M-422.mp4", SECONDS, {"pix_fmt": "yuv422p"}),
        (f"bench-1080p30-{BURST_SECONDS}s-phone-8M.mp4", BURST_SECONDS, {}),
    ):
        path = MEDIA / name
        if not path.exists():
            print(f"generating {path.name} …", flush=True)
            make_test_video(path.with_suffix(".tmp.mp4"), duration=seconds, width=1920, height=1080, fps=30,
                            preset="veryfast", video_args=rate, extra_args=("-ac", "2", "-b:a", "128k"), **extra)
            path.with_suffix(".tmp.mp4").rename(path)
        made.append(path)
    return made


def timed(cmd):
    """(wall seconds, CPU seconds of ffmpeg) for one command."""
    from transcoding.runner import run_ffmpeg

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    run_ffmpeg(cmd)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def ladder_timings(source, workdir, rounds):
    """One decode for every rung vs one ffmpeg process per rung, same rungs,
    alternated ``rounds`` times; the best round of each counts (the machine
    is shared, so the slowest rounds measure the neighbours)."""
    from transcoding.backends import get_backend
    from private_video.probe import probe_video
    from transcoding.profiles import plan_ladder

    info = probe_video(source)
    planned = plan_ladder(info)
    backend = get_backend()
    one_dir, each_dir = workdir / "one", workdir / "each"
    one_dir.mkdir()
    each_dir.mkdir()
    ones, eachs = [], []
    for round_number in range(rounds):
        ones.append(timed(backend.ladder_command(source, info, planned, one_dir)))
        runs = [timed(backend.ladder_command(source, info, [rung], each_dir)) for rung in planned]
        eachs.append((sum(w for w, _ in runs), sum(c for _, c in runs)))
        print(f"round {round_number + 1}: one decode {ones[-1][0]:.1f} s wall / {ones[-1][1]:.1f} s CPU; "
              f"per rung {eachs[-1][0]:.1f} s wall / {eachs[-1][1]:.1f} s CPU", flush=True)
    return info, planned, min(ones), min(eachs)


def run_pipeline(source, title, **settings_overrides):
    from django.core.files import File
    from django.test import override_settings

    from private_video.models import Video
    from private_video.probe import probe_video
    from transcoding.tasks import enqueue_transcode

    with override_settings(**settings_overrides):
        video = Video(title=title, original_filename=source.name, file_size=source.stat().st_size)
        video.apply_probe(probe_video(source))
        with source.open("rb") as handle:
            video.file.save(source.name, File(handle), save=False)
        video.save()
        job = enqueue_transcode(video)
    job.refresh_from_db()
    if job.status != "ready":
        raise SystemExit(f"{title}: job {job.status}: {job.error}\n{job.stderr_tail}")
    return video, job


def _new_video(source, title):
    from django.core.files import File

    from private_video.models import Video
    from private_video.probe import probe_video

    video = Video(title=title, original_filename=source.name, file_size=source.stat().st_size)
    video.apply_probe(probe_video(source))
    with source.open("rb") as handle:
        video.file.save(source.name, File(handle), save=False)
    video.save()
    return video


def burst(source, data_dir):
    """BURST_UPLOADS videos committed in one transaction; two transcoding
    workers (separate processes, database queue, one ffmpeg slot each).
    Returns (seconds from commit to playable per video, ladders started
    before the last video was playable)."""
    import subprocess

    from django.db import transaction
    from django.test import override_settings
    from django.utils import timezone

    from transcoding.models import TranscodeJob

    env = {
        **os.environ,
        "TRANSCODING_TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "TRANSCODING_MAX_FFMPEG_PROCESSES": str(BURST_WORKERS),
        "PYTHONUNBUFFERED": "1",
    }
    logs = [open(data_dir / f"worker-{i}.log", "w") for i in range(BURST_WORKERS)]
    workers = [
        subprocess.Popen([sys.executable, "manage.py", "transcoding_worker", "--interval", "0.2",
                          "--no-startup-delay"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
        for log in logs
    ]
    tasks = {
        "default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
        "transcoding": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": []},
    }
    try:
        time.sleep(3)  # both workers up and polling, as in production
        with override_settings(TASKS=tasks, TRANSCODING_AUTO_ENQUEUE=True):
            with transaction.atomic():
                videos = [_new_video(source, f"burst {i}") for i in range(BURST_UPLOADS)]
                committed = timezone.now()
        jobs = TranscodeJob.objects.filter(video__in=videos)
        deadline = time.monotonic() + 600
        while jobs.filter(playable_at__isnull=True).exclude(status="failed").exists():
            if time.monotonic() > deadline:
                raise SystemExit("burst: not every video became playable in 10 minutes")
            time.sleep(0.2)
        failed = list(jobs.filter(status="failed").values_list("error", flat=True))
        if failed:
            raise SystemExit(f"burst: {len(failed)} jobs failed: {failed[:3]}")
        ttp = sorted((j.playable_at - committed).total_seconds() for j in jobs)
        last_playable = max(j.playable_at for j in jobs)
        early = jobs.filter(ladder_started_at__lt=last_playable).count()
    finally:
        for worker in workers:
            os.killpg(worker.pid, 15)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
                worker.wait()
        for log in logs:
            log.close()
    return ttp, early


def percentile(values, share):
    """Nearest-rank percentile of sorted ``values``."""
    import math

    return values[max(0, math.ceil(share * len(values)) - 1)]


def main():
    MEDIA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-transcode-") as tmp:
        tmp = Path(tmp)
        setup_django(tmp)
        standard, other, burst_source = make_sources()
        from django.db.models import Sum

        from transcoding.profiles import Rung

        cores = os.cpu_count()
        print(f"source: {standard.name} ({standard.stat().st_size / 1e6:.1f} MB), {cores} cores", flush=True)

        info, planned, (one, one_cpu), (each, each_cpu) = ladder_timings(standard, tmp, ROUNDS)
        duration = info.duration
        print(f"rungs: {', '.join(f'{p.width}x{p.height}' for p in planned)}")
        print(f"best: one decode {one:.1f} s ({one_cpu:.1f} s CPU); per rung {each:.1f} s ({each_cpu:.1f} s CPU)",
              flush=True)

        video, job = run_pipeline(standard, "standard")
        ttp_standard = (job.playable_at - job.started_at).total_seconds()
        total_standard = (job.finished_at - job.started_at).total_seconds()
        stored = video.renditions.aggregate(total=Sum("size"))["total"]
        storage_multiple = stored / standard.stat().st_size
        print(f"standard upload: playable after {ttp_standard:.2f} s, all renditions after {total_standard:.1f} s; "
              f"renditions {stored / 1e6:.1f} MB", flush=True)

        # Only the playable step matters here: a one-rung ladder keeps the
        # lowest rung (360p) and skips the long part.
        _, job_other = run_pipeline(other, "non-standard", TRANSCODING_LADDER=[Rung(360, 800, crf=24)])
        ttp_other = (job_other.playable_at - job_other.started_at).total_seconds()
        print(f"non-standard (H.264 4:2:2) upload: playable after {ttp_other:.2f} s", flush=True)

        ttps, early_ladders = burst(burst_source, tmp)
        burst_p95, burst_max = percentile(ttps, 0.95), ttps[-1]
        print(f"burst: {len(ttps)} × {BURST_SECONDS} s uploads, {BURST_WORKERS} workers: playable after "
              f"p50 {percentile(ttps, 0.5):.2f} s, p95 {burst_p95:.2f} s, max {burst_max:.2f} s from the commit; "
              f"ladders started before the last was playable: {early_ladders}", flush=True)

    minutes = duration / 60
    figures = {
        "source_seconds": f"{duration:.0f}",
        "cores": cores,
        "ladder_realtime_factor": f"{duration / one:.2f}",
        "one_decode_s": f"{one:.1f}",
        "per_rung_s": f"{each:.1f}",
        "one_decode_speedup": f"{each / one:.2f}",
        "one_decode_cpu_saving": f"{each_cpu / one_cpu:.2f}",
        "ttp_standard_s": f"{ttp_standard:.2f}",
        "ttp_standard_s_per_min": f"{ttp_standard / minutes:.2f}",
        "ttp_nonstandard_s": f"{ttp_other:.2f}",
        "storage_multiple": f"{storage_multiple:.2f}",
        "burst_uploads": len(ttps),
        "burst_ttp_p95_s": f"{burst_p95:.2f}",
        "burst_ttp_max_s": f"{burst_max:.2f}",
        "burst_early_ladders": early_ladders,
    }
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
