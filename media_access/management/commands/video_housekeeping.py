"""The hourly housekeeping in one command (deploy/systemd/privatevideo-housekeeping.service).

Every step runs whatever happened to the one before: an S3 outage that stops
``expire_uploads`` must not also keep the watch analytics and the playback log
past their retention. A failed step is logged with its traceback, and the
command fails at the end, naming each step that failed, so the timer's unit is
marked failed and the operator sees it.
"""

import logging

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

logger = logging.getLogger(__name__)

# Each step is its own command, runnable on its own.
STEPS = ("expire_uploads", "delete_watch_analytics", "delete_playback_log")


class Command(BaseCommand):
    help = (
        "Hourly housekeeping: " + ", ".join(STEPS) + ". Every step runs even when one "
        "before it fails; the command fails at the end if any did."
    )

    def handle(self, *args, **options):
        failed = []
        for step in STEPS:
            try:
                call_command(step, stdout=self.stdout, stderr=self.stderr)
            except Exception as error:  # noqa: BLE001 - the next steps run whatever this one raised
                logger.exception("housekeeping step %s failed", step)
                self.stderr.write(f"{step} failed: {type(error).__name__}: {error}")
                failed.append(step)
        if failed:
            raise CommandError(f"{len(failed)} of {len(STEPS)} housekeeping steps failed: {', '.join(failed)}.")
