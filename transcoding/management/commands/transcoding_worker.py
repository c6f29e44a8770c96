"""The task worker for the transcoding backend (``db_worker`` for the
database backend, ``rqworker`` for RQ on Redis, reading the playable queue
before the ladder queue), plus the housekeeping thread: it re-queues jobs
whose worker died, sends jobs whose send failed, removes job folders of
stopped workers on this host and deletes replaced files after their grace
period. On start, folders of stopped workers go first."""

import logging
import signal
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from transcoding.conf import setting
from transcoding.publish import delete_retired_files
from transcoding.tasks import phase_queues, recover_stale_jobs, task_backend_alias
from transcoding.workdirs import remove_abandoned_workdirs

logger = logging.getLogger("transcoding.worker")


def housekeeping():
    """One pass; each part runs even if another fails."""
    for step in (recover_stale_jobs, remove_abandoned_workdirs, delete_retired_files):
        try:
            close_old_connections()
            if done := step():
                logger.warning("%s: %s", step.__name__, done)
        except Exception:  # noqa: BLE001 - the watchdog must outlive a bad query
            logger.exception("transcoding housekeeping step %s failed", step.__name__)


def _housekeeping_forever(stop, every):
    while not stop.wait(every):
        try:
            housekeeping()
        finally:
            connection.close()


def _uses_rq():
    from django_tasks import task_backends

    return type(task_backends[task_backend_alias()]).__module__.startswith("django_tasks_rq")


class Command(BaseCommand):
    help = "Run a transcoding worker: the task worker for TRANSCODING_TASK_BACKEND plus job recovery."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=1)
        parser.add_argument("--no-startup-delay", action="store_false", dest="startup_delay")
        parser.add_argument("--max-tasks", type=int, default=None)

    def handle(self, *, interval, startup_delay, max_tasks, verbosity, **options):
        housekeeping()
        stop = threading.Event()
        every = max(1.0, setting("LEASE_SECONDS") / 4)
        threading.Thread(target=_housekeeping_forever, args=(stop, every), daemon=True).start()
        try:
            if _uses_rq():
                self.run_rq_worker(max_tasks, verbosity)
                return
            self.run_db_worker(interval, startup_delay, max_tasks, verbosity)
        finally:
            stop.set()

    def run_db_worker(self, interval, startup_delay, max_tasks, verbosity):
        """django-tasks-db's worker loop, started again whenever the database
        drops it: its loop re-raises any error but a locked SQLite file, so a
        PostgreSQL restart would end the worker. A job cut off meanwhile is
        re-queued (by run_job, or by its lease)."""
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                call_command(
                    "db_worker",
                    # As an argument, not backend_name=: db_worker checks its default
                    # ("default") otherwise, which a site may give a non-database backend.
                    f"--backend={task_backend_alias()}",
                    queue_name="*",
                    interval=interval,
                    startup_delay=startup_delay,
                    max_tasks=max_tasks,
                    reload=False,
                    verbosity=verbosity,
                )
                return
            except (OperationalError, InterfaceError):
                connection.close()
                if time.monotonic() - started > 60:
                    delay = 1.0
                logger.warning("the database is unavailable; the worker starts again in %g s",
                               delay, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def run_rq_worker(self, max_tasks, verbosity):
        from django_tasks import task_backends

        backend = task_backends[task_backend_alias()]
        options = {
            "job_class": "django_tasks_rq.Job",
            # No fork per job: the lease keeper thread and Django's database
            # connections must not be copied into a child mid-use. A crash
            # takes the whole worker down; systemd restarts it and the lease
            # re-queues its job. Losing Redis does not (see below).
            "worker_class": "rq.worker.SimpleWorker",
            "verbosity": verbosity,
        }
        if max_tasks:
            options["max_jobs"] = max_tasks
        # RQ takes from the first non-empty queue in this order: quick
        # playable versions before any full ladder.
        first = [name for name in phase_queues() if name in backend.queues]
        queues = [*first, *sorted(set(backend.queues) - set(first))]
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                call_command("rqworker", *queues, **options)
                return
            except SystemExit as exc:
                # django_rq's rqworker exits 1 when Redis goes away at a moment
                # RQ does not retry (recording a finished job): start again.
                if exc.code != 1:
                    raise
            # RQ's signal handlers belong to the worker that stopped.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            close_old_connections()
            delay = 1.0 if time.monotonic() - started > 60 else delay
            logger.warning("the RQ worker lost Redis; it starts again in %g s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
