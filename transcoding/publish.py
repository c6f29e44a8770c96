"""Publishing finished outputs: upload under a fresh prefix, then switch the
Rendition rows in one locked transaction. Viewers find files only through
those rows, so a half-uploaded set is never reachable; playlists go up last.
Files of a replaced set stay for a grace period (players hold signed URLs to
them) and are deleted by ``delete_retired_files``."""

import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from private_video.layout import renditions_prefix
from private_video.storage import private_storage

from .models import Rendition, RetiredFile, TranscodeJob
from .conf import setting
from .profiles import segment_seconds
from .signal_handlers import _delete_with_empty_folder, retiring

logger = logging.getLogger(__name__)

Kind = Rendition.Kind

# Upload order: media before the indexes that point at it, the master last.
_ORDER = {Kind.HLS_VIDEO: 1, Kind.HLS_AUDIO: 1, Kind.STORYBOARD_VTT: 1, Kind.HLS_MASTER: 2}


class JobSuperseded(Exception):
    """The job lost its claim (replaced original, newer job, recovered elsewhere)."""


@dataclass
class Output:
    name: str
    path: Path
    content_type: str
    # What the file is (a Rendition.Kind): media_access and the player go by it, not by the name.
    kind: str = field(kw_only=True)
    width: int | None = None
    height: int | None = None
    bitrate: int | None = None
    peak_bitrate: int | None = None
    codecs: str = ""
    duration: float | None = None
    # Text outputs that name local files: local file name -> rendition name.
    references: dict = field(default_factory=dict)

    def upload_order(self):
        return _ORDER.get(self.kind, 0)


def rendition_prefix(video, job):
    return f"{renditions_prefix(video.key)}{job.pk}-{secrets.token_hex(4)}/"


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


def signed_url_lifetime():
    """The longest a signed URL to a published file stays valid, in seconds:
    the largest answer of the ``transcoding_signed_url_lifetime`` hooks (the
    app that serves the files, media_access, registers one; transcoding
    cannot import it), 0 when nothing hands out signed URLs."""
    from wagtail import hooks

    return max((float(fn()) for fn in hooks.get_hooks("transcoding_signed_url_lifetime")), default=0.0)


def retired_file_grace_seconds():
    """How long a replaced file stays: a player may have fetched a playlist
    naming it just before the switch and keeps using its signed URL until
    the token expires, then fetches one more segment."""
    configured = setting("RETIRED_FILE_GRACE_SECONDS")
    if configured is not None:
        return float(configured)
    return signed_url_lifetime() + segment_seconds() + 60


def publish(job, video, outputs, *, complete, on_upload=None):
    """Store ``outputs`` and make them the video's renditions; a published
    video never gets worse.

    ``complete``: a whole set (the full ladder); it replaces every published
    rendition, whose files are retired for the grace period instead of being
    deleted while players still fetch them. Otherwise a quick playable set,
    published only while the video has nothing published: never over a
    previous full ladder. Returns the stored names, or None when skipped.
    """
    for output in outputs:
        Kind(output.kind)  # ValueError before anything is stored: every rendition has a kind
    storage = private_storage()
    if not complete and Rendition.objects.filter(video=video).exists():
        return None
    prefix = rendition_prefix(video, job)
    stored, sizes = {}, {}
    published = False
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
            _lock_as_current(job, video)
            existing = Rendition.objects.filter(video=video)
            if not complete and existing.exists():
                return None
            _retire(video, existing)
            Rendition.objects.bulk_create(
                Rendition(
                    video=video,
                    name=output.name,
                    kind=output.kind,
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
            published = True
    finally:
        if not published:
            for name in stored.values():
                try:
                    _delete_with_empty_folder(storage, name)
                except Exception:  # noqa: BLE001 - cleanup must not hide the cause
                    logger.warning("could not delete unpublished %s", name, exc_info=True)
    return stored


def _lock_as_current(job, video):
    """Lock the video's row, then the job's (PostgreSQL row locks, in the
    order saving a video takes them; SQLite's IMMEDIATE transactions hold
    the database's write lock already), and check under the lock that this
    worker still owns the job and the original is the job's. A stale worker
    and its replacement thus publish one after the other, and the second
    finds it lost the job."""
    source_name = (
        type(video).objects.select_for_update().filter(pk=video.pk).values_list("file", flat=True).first()
    )
    owner = (
        TranscodeJob.objects.select_for_update()
        .filter(pk=job.pk, status=TranscodeJob.Status.PROCESSING, worker=job.worker)
        .values_list("pk", flat=True)
        .first()
    )
    if owner is None or source_name != job.source_name:
        raise JobSuperseded()


def _retire(video, renditions):
    """Delete the rows of ``renditions`` but keep their files for the grace period."""
    names = [name for name in renditions.values_list("file", flat=True) if name]
    delete_after = timezone.now() + timedelta(seconds=retired_file_grace_seconds())
    RetiredFile.objects.bulk_create(
        RetiredFile(video=video, name=name, delete_after=delete_after) for name in names
    )
    retiring.names = set(names)
    try:
        renditions.delete()
    finally:
        retiring.names = ()


def delete_retired_files(now=None):
    """Delete replaced files whose grace period is over (each row's file goes
    after commit). Run by every transcoding worker and by
    ``manage.py transcoding_cleanup``. Returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        count, _ = RetiredFile.objects.filter(delete_after__lte=now).delete()
    return count
