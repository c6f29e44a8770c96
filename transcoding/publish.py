"""Publishing finished outputs: upload under a fresh prefix, then switch the
Rendition rows in one transaction. Viewers find files only through those
rows, so a half-uploaded set is never reachable; playlists go up last."""

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File
from django.db import transaction

from cms.storage import private_storage

from .models import Rendition, TranscodeJob

logger = logging.getLogger(__name__)

# Upload order: media before the indexes that point at it, the master last.
_ORDER = {"video/mp4": 0, "image/jpeg": 0, "text/vtt": 1, "application/vnd.apple.mpegurl": 2}


class JobSuperseded(Exception):
    """The job lost its claim (replaced original, newer job, recovered elsewhere)."""


@dataclass
class Output:
    name: str
    path: Path
    content_type: str
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None
    peak_bitrate: int | None = None
    codecs: str = ""
    duration: float | None = None
    # Text outputs that name local files: local file name -> rendition name.
    references: dict = field(default_factory=dict)

    def upload_order(self):
        order = _ORDER.get(self.content_type, 0)
        return order + (1 if self.name == "hls-master" else 0)


def rendition_prefix(video, job):
    hex_key = video.key.hex
    return f"videos/{hex_key[:2]}/{hex_key}/renditions/{job.pk}-{secrets.token_hex(4)}/"


def _rewrite_references(output):
    if not output.references:
        return
    text = output.path.read_text()
    for local_name, rendition_name in output.references.items():
        text = text.replace(local_name, rendition_name)
    output.path.write_text(text)


class _FinishedFile(File):
    """A finished output on local disk: FileSystemStorage moves it into
    place (a rename on the same filesystem) instead of copying the bytes;
    other storages upload it as usual."""

    def temporary_file_path(self):
        return self.name


def publish(job, video, outputs, *, replace_all, on_upload=None):
    """Store ``outputs`` and make them the video's renditions. With
    ``replace_all`` every other rendition goes, else only same-named ones."""
    storage = private_storage()
    prefix = rendition_prefix(video, job)
    stored, sizes = {}, {}
    try:
        for output in sorted(outputs, key=Output.upload_order):
            _rewrite_references(output)
            sizes[output.name] = output.path.stat().st_size
            with output.path.open("rb") as handle:
                upload = _FinishedFile(handle, name=str(output.path))
                stored[output.name] = storage.save(prefix + output.path.name, upload)
            if on_upload:
                on_upload()
        with transaction.atomic():
            current = TranscodeJob.objects.filter(
                pk=job.pk, status=TranscodeJob.Status.PROCESSING, worker=job.worker
            ).exists()
            source_name = type(video).objects.filter(pk=video.pk).values_list("file", flat=True).first()
            if not current or source_name != job.source_name:
                raise JobSuperseded()
            existing = Rendition.objects.filter(video=video)
            if not replace_all:
                existing = existing.filter(name__in=list(stored))
            # Each row's file goes after commit (signal handler).
            existing.delete()
            Rendition.objects.bulk_create(
                Rendition(
                    video=video,
                    name=output.name,
                    file=stored[output.name],
                    content_type=output.content_type,
                    size=sizes[output.name],
                    width=output.width,
                    height=output.height,
                    bitrate=output.bitrate,
                    codecs=output.codecs,
                    duration=output.duration,
                )
                for output in outputs
            )
    except BaseException:
        for name in stored.values():
            try:
                storage.delete(name)
            except Exception:  # noqa: BLE001 - cleanup must not hide the cause
                logger.warning("could not delete unpublished %s", name, exc_info=True)
        raise
    return stored
