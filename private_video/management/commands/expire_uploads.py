from django.core.management.base import BaseCommand

from ...uploads.completion import expire_uploads


class Command(BaseCommand):
    help = (
        "Delete resumable uploads past their expiry: the staged bytes (or the S3 multipart "
        "upload) of unfinished ones, and their rows. Run it from cron, e.g. hourly."
    )

    def handle(self, *args, **options):
        removed = expire_uploads()
        self.stdout.write(f"{removed} expired upload(s) removed.")
