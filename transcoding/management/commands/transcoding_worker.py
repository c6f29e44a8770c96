"""``db_worker`` for the transcoding backend, plus the lease keeper that
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
