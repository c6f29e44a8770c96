"""The end of every resumable upload: probe, create the Video, or refuse.

``complete_upload`` takes the finished bytes (a staged local file from tus,
or an object in the private S3 bucket from a multipart upload) through the
same rules as the upload form (``validation.validate_video_upload``: size,
the ffprobe demuxer allow-list, its sandbox), checks again that the owner may
still add to the collection, and creates the Video in one transaction, so
transcoding's post_save queues its transcode as for a form upload. A refused
file loses its bytes at once and leaves no Video: the upload is FAILED with a
readable ``error``."""

import logging
import os
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import get_video_model
from ..conf import setting
from ..layout import original_name
from ..probe import ProbeError, probe_video_url
from ..storage import configured_private_storage
from ..validation import max_upload_size, validate_video_upload
from . import staging
from .models import Upload
from .permissions import lost_right_message, may_add_to, upload_user_may_still_add

logger = logging.getLogger(__name__)

State = Upload.State
# Seconds a presigned URL for probing a completed S3 object lives.
_PROBE_URL_LIFETIME = 300


class _RightLost(Exception):
    """The uploader lost the right to add to the collection while the file was checked or stored."""


class UploadRefused(Exception):
    """The finished upload is not accepted; ``message`` is for the uploader,
    ``status`` the HTTP status when it is not the view's usual refusal."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = str(message)
        self.status = status


def expiry_from_now():
    return timezone.now() + timedelta(seconds=setting("UPLOAD_EXPIRY"))


class _StagedFile(File):
    """A staged tus file as the form's UploadedFile looks to the validation
    and to FileSystemStorage: its ``temporary_file_path`` lets the storage
    move it into place (a rename on the same file system) instead of copying."""

    def __init__(self, path, name):
        super().__init__(open(path, "rb"), name=name)
        self._path = str(path)

    def temporary_file_path(self):
        return self._path


class _LocalSource:
    def __init__(self, upload, path):
        self.upload, self.path = upload, path

    def size(self):
        return os.path.getsize(self.path)

    def probe(self):
        with _StagedFile(self.path, self.upload.filename) as staged:
            return validate_video_upload(staged)

    def store(self, storage, name):
        with _StagedFile(self.path, self.upload.filename) as staged:
            return storage.save(name, staged)

    def discard(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


class _S3Source:
    """A completed multipart upload: an object in the private bucket, named
    ``key`` (a storage name), that the web server never held."""

    def __init__(self, upload, key):
        self.upload, self.key = upload, key
        self.storage = configured_private_storage()

    def size(self):
        return self.storage.size(self.key)

    def probe(self):
        url = self.storage.nginx_source(self.key, expire=_PROBE_URL_LIFETIME).url
        try:
            return probe_video_url(url, self.size())
        except ProbeError as exc:
            raise ValidationError(
                _("“%(name)s” is not a video we can read: %(reason)s") % {"name": self.upload.filename, "reason": exc}
            ) from None

    def store(self, storage, name):
        if name == self.key:
            return name
        # A server-side copy (multipart for large objects), then the upload's own key goes.
        from .s3_multipart import object_parameters

        bucket = self.storage.bucket
        # With the storage's encryption, ACL and storage class again: a copy
        # would otherwise write the original without them.
        extra = {**object_parameters(self.storage, name), "ContentType": "application/octet-stream",
                 "MetadataDirective": "REPLACE"}
        bucket.copy({"Bucket": bucket.name, "Key": self.storage.object_key(self.key)}, self.storage.object_key(name),
                    ExtraArgs=extra)
        self.storage.delete(self.key)
        return name

    def discard(self):
        self.storage.delete(self.key)


def _source_for(upload, source):
    if isinstance(source, tuple) and len(source) == 2 and source[0] == "s3":
        return _S3Source(upload, source[1])
    return _LocalSource(upload, source)


def _delete_quietly(delete, what, upload):
    """Delete bytes a refused upload leaves; a store that cannot be reached
    just now must not leave the upload stuck *processing*: log it, go on."""
    try:
        delete()
    except Exception:  # noqa: BLE001 - logged with the name to delete by hand
        logger.exception("upload %s: could not delete %s", upload.pk, what)


def _fail(upload, source, message):
    _delete_quietly(source.discard, "its received bytes", upload)
    Upload.objects.filter(pk=upload.pk).update(
        state=State.FAILED, error=message, expires_at=expiry_from_now(), updated_at=timezone.now()
    )
    upload.state, upload.error = State.FAILED, message
    raise UploadRefused(message)


def _message(exc):
    return " ".join(str(message) for message in exc.messages) if isinstance(exc, ValidationError) else str(exc)


def complete_upload(upload, source):
    """Turn a finished upload into a Video, or refuse it (UploadRefused, the
    upload FAILED, its bytes gone, no Video row). ``source``: the staged file's
    path (tus) or ``("s3", name)``. An upload already completed returns its Video."""
    from ..forms import title_from_filename

    source = _source_for(upload, source)
    claimed = Upload.objects.filter(pk=upload.pk, state=State.RECEIVING).update(
        state=State.PROCESSING, updated_at=timezone.now()
    )
    try:
        upload.refresh_from_db()
    except Upload.DoesNotExist:
        # Deleted since it was read (with its collection or owner): its
        # bytes go with the row once that delete commits.
        raise UploadRefused(_("This upload no longer exists; start it again."), status=410) from None
    if not claimed:
        if upload.state == State.COMPLETE and upload.video is not None:
            return upload.video
        raise UploadRefused(_("This upload is %(state)s.") % {"state": upload.get_state_display()})

    if not may_add_to(upload.user, upload.collection):
        _fail(upload, source, lost_right_message(upload))
    try:
        try:
            size = source.size()
        except FileNotFoundError:
            _fail(upload, source, _("The uploaded bytes are gone; start the upload again."))
        if size != upload.length:
            _fail(upload, source, _("%(received)s bytes were received but %(declared)s were announced.") % {
                "received": f"{size:,}", "declared": f"{upload.length:,}"
            })
        if size > max_upload_size():
            _fail(upload, source, _("This file is %(size)s; the largest video you can upload is %(limit)s.") % {
                "size": filesizeformat(size), "limit": filesizeformat(max_upload_size())
            })
        try:
            info = source.probe()
        except (ValidationError, ProbeError) as exc:
            _fail(upload, source, _message(exc))
    except UploadRefused:
        raise
    except Exception:
        # The store or the probe could not be reached (not a verdict on the
        # file): the bytes stay and the upload can be completed again.
        logger.exception("upload %s: the finished file could not be checked", upload.pk)
        Upload.objects.filter(pk=upload.pk, state=State.PROCESSING).update(
            state=State.RECEIVING, updated_at=timezone.now()
        )
        upload.state = State.RECEIVING
        raise UploadRefused(_("The upload could not be checked just now; nothing is lost, try completing it again."))

    Video = get_video_model()
    extension = info.extension
    name = original_name(upload.video_key, f".{extension}" if extension else "")
    storage = configured_private_storage()
    stored = None
    try:
        stored = source.store(storage, name)
        with transaction.atomic():
            # Again, in the transaction that makes the Video: the probe and
            # the store (an S3 copy of gigabytes) take time, and a right
            # taken away meanwhile must still mean no Video.
            if not upload_user_may_still_add(upload):
                raise _RightLost
            video = Video(
                title=(upload.title or title_from_filename(upload.filename))[:255],
                collection=upload.collection,
                key=upload.video_key,
                uploaded_by_user=upload.user,
                original_filename=upload.filename[:255],
                file_size=size,
            )
            video.apply_probe(info)
            video.file.name = stored
            video.save()
            Upload.objects.filter(pk=upload.pk).update(
                state=State.COMPLETE, video=video, error="", offset=size,
                expires_at=expiry_from_now(), updated_at=timezone.now(),
            )
    except _RightLost:
        _delete_quietly(lambda: storage.delete(stored), f"the stored copy {stored!r}", upload)
        _fail(upload, source, lost_right_message(upload))
    except Exception:
        logger.exception("upload %s: storing the finished file failed", upload.pk)
        if stored:
            _delete_quietly(lambda: storage.delete(stored), f"the stored copy {stored!r}", upload)
        _fail(upload, source, _("The video could not be stored; please upload it again."))
    try:
        upload.refresh_from_db()
    except Upload.DoesNotExist:
        pass  # deleted since (its owner removed): the Video is made all the same
    return video


def cancel_refusal(upload):
    """Why ``upload`` can no longer be cancelled (a finished upload is its
    Video's; one being probed ends on its own), or None. The tus DELETE and
    the S3 abort answer 409 with it instead of a 2xx that changed nothing."""
    if upload.state == State.COMPLETE:
        return _("This upload is already a video; delete the video instead.")
    if upload.state == State.PROCESSING:
        return _("This upload is being checked and can no longer be cancelled; "
                 "if it becomes a video, delete the video instead.")
    return None


def cancel_upload(upload):
    """Stop an unfinished upload: its bytes go (the staged file, or the S3
    multipart upload is aborted), the row stays CANCELLED until it expires."""
    if upload.state in (State.COMPLETE, State.CANCELLED, State.PROCESSING):
        return upload  # nothing to stop, or the probe is running: it ends on its own
    discard_bytes(upload)
    Upload.objects.filter(pk=upload.pk, state__in=[State.RECEIVING, State.FAILED]).update(
        state=State.CANCELLED, expires_at=expiry_from_now(), updated_at=timezone.now()
    )
    upload.refresh_from_db()
    return upload


def discard_bytes(upload):
    """Delete what an unfinished upload holds outside the database: its staged
    file (tus), or its S3 multipart upload (aborted). Nothing for a finished
    one: its bytes are its Video's."""
    if upload.backend == Upload.Backend.S3:
        if upload.state not in (State.RECEIVING, State.PROCESSING):
            return  # completed: the object is the video's; failed: already deleted
        from . import s3_multipart

        s3_multipart.abort(upload)
    else:
        staging.discard(upload.pk)


def expire_uploads(now=None):
    """Delete uploads past ``expires_at``: the bytes of unfinished ones
    (staged file, or the S3 multipart upload aborted) and every such row
    (finished rows too: their Video, if any, stays). An upload being written
    right now is left for the next run. Returns the number of rows deleted."""
    now = now or timezone.now()
    removed = 0
    for upload in Upload.objects.filter(expires_at__lt=now):
        try:
            with staging.lock(upload.pk) as fd:
                if fd is None:
                    continue  # a request is writing it right now
                removed += _expire_one(upload, now)
        except FileNotFoundError:  # nothing staged (finished, S3, or already gone)
            removed += _expire_one(upload, now)
    return removed


def _expire_one(upload, now):
    if not Upload.objects.filter(pk=upload.pk, expires_at__lt=now).exists():
        return 0  # written to since the query
    try:
        discard_bytes(upload)
    except Exception:  # noqa: BLE001 - an unreachable store: try again next run
        logger.exception("upload %s: its bytes could not be deleted; will retry", upload.pk)
        return 0
    # Already done: the row's post_delete handler need not do it again.
    upload.bytes_discarded = True
    upload.delete()
    return 1
