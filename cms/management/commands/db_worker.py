"""django-tasks-db's ``db_worker``, started again when the database drops it.

Its loop re-raises every database error but a locked SQLite file, so a
PostgreSQL restart ends the worker (the Procfile's "worker", the
privatevideo-tasks service): under ``make run`` honcho then stops the whole
stack. This command of the same name (the site's app comes first in
INSTALLED_APPS) runs the same loop again after a backoff instead; a task cut
off meanwhile stays as the database left it (transcoding's jobs have their
own lease and recovery).
"""

import logging
import time

from django.db import InterfaceError, OperationalError, connections
from django_tasks_db.management.commands.db_worker import Command as DBWorkerCommand

logger = logging.getLogger("django_tasks_db")


class Command(DBWorkerCommand):
    help = DBWorkerCommand.help + ", started again whenever the database connection is lost"

    def handle(self, *args, **options):
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                return super().handle(*args, **options)
            except (OperationalError, InterfaceError):
                connections.close_all()
                if time.monotonic() - started > 60:
                    delay = 1.0
                logger.warning("the database is unavailable; the worker starts again in %g s", delay, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
