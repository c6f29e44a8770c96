"""The task worker for the transcoding backend (``db_worker`` for the
database backend, ``rqworker`` for RQ on Redis), plus the lease keeper that
re-queues jobs whose worker died."""

import logging
import threading

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from transcoding.profiles import setting
from transcoding.tasks import recover_stale_jobs, task_backend_alias

logger = logging.getLogger("transcoding.worker")


def _recover_forever(stop, every):
    while not stop.wait(every):
        try:
            close_old_connections()
            if requeued := recover_stale_jobs():
                logger.warning("re-queued transcode jobs with expired leases: %s", requeued)
        except Exception:  # noqa: BLE001 - the watchdog must outlive a bad query
            logger.exception("stale job recovery failed")
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
        requeued = recover_stale_jobs()
        if requeued:
            logger.warning("re-queued transcode jobs with expired leases: %s", requeued)
        stop = threading.Event()
        every = max(1.0, setting("LEASE_SECONDS", 120) / 4)
        threading.Thread(target=_recover_forever, args=(stop, every), daemon=True).start()
        try:
            if _uses_rq():
                self.run_rq_worker(max_tasks, verbosity)
                return
            call_command(
                "db_worker",
                backend_name=task_backend_alias(),
                queue_name="*",
                interval=interval,
                startup_delay=startup_delay,
                max_tasks=max_tasks,
                reload=False,
                verbosity=verbosity,
            )
        finally:
            stop.set()

    def run_rq_worker(self, max_tasks, verbosity):
        from django_tasks import task_backends

        backend = task_backends[task_backend_alias()]
        options = {
            "job_class": "django_tasks_rq.Job",
            # No fork per job: the lease keeper thread and Django's database
            # connections must not be copied into a child mid-use. A crash
            # takes the whole worker down; systemd restarts it and the lease
            # re-queues its job.
            "worker_class": "rq.worker.SimpleWorker",
            "verbosity": verbosity,
        }
        if max_tasks:
            options["max_jobs"] = max_tasks
        call_command("rqworker", *sorted(backend.queues), **options)
