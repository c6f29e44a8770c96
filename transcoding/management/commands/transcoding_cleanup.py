"""Housekeeping that every transcoding worker also does in the background,
as one command for a timer (cron, a systemd timer): re-queue jobs whose
worker died, send jobs whose send failed, remove job folders of stopped
workers on this host, and delete replaced rendition files whose grace period
is over."""

from django.core.management.base import BaseCommand

from transcoding.publish import delete_retired_files
from transcoding.tasks import recover_stale_jobs
from transcoding.workdirs import remove_abandoned_workdirs


class Command(BaseCommand):
    help = (
        "Transcoding housekeeping: recover stale jobs, remove abandoned job folders, "
        "delete replaced files after their grace period."
    )

    def handle(self, *, verbosity, **options):
        sent = recover_stale_jobs()
        folders = remove_abandoned_workdirs()
        deleted = delete_retired_files()
        if verbosity:
            self.stdout.write(
                f"jobs sent again: {len(sent)}; abandoned job folders removed: {len(folders)}; "
                f"replaced files deleted: {deleted}"
            )
