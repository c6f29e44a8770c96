"""A tus 1.0 server (https://tus.io/protocols/resumable-upload) for local
storage: core protocol with the creation, expiration, termination and
checksum extensions.

    OPTIONS /admin/videos/uploads/tus/              what the server supports
    POST    /admin/videos/uploads/tus/              create (Upload-Length, Upload-Metadata)
    HEAD    /admin/videos/uploads/tus/<upload id>   the offset to resume from
    PATCH   /admin/videos/uploads/tus/<upload id>   append bytes at Upload-Offset
    DELETE  /admin/videos/uploads/tus/<upload id>   cancel

Behind the Wagtail admin login, with Django's CSRF check on POST, PATCH and
DELETE (tus clients send ``X-CSRFToken``). The user must be allowed to add
videos to the collection named in the metadata, when the upload starts,
for every chunk, and again when it completes; an upload is reachable here by its owner only
(anyone else gets the 404 of an unknown id). Bytes go to the private staging
folder straight from gunicorn's socket (``splice``; elsewhere 256 KiB reads),
never a whole request in memory; the offset is what
is on disk, so a request cut mid-way keeps what arrived and the client
resumes from there. One request writes an upload at a time (a file lock; a
second one gets 423). The last PATCH runs ``complete_upload``: 204 with
``Upload-Video: <id>``, or 422 with the reason as JSON (the bytes are gone)."""

import base64
import binascii
import hashlib
import logging
import os
import re

from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.http import http_date
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from wagtail.admin.auth import require_admin_access
from wagtail.models import Collection

from ..validation import max_upload_size
from . import staging
from .completion import UploadRefused, cancel_refusal, cancel_upload, complete_upload, expiry_from_now
from .models import Upload
from .permissions import default_collection, lost_right_message, may_add_to

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,expiration,termination,checksum"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
_DIGITS = re.compile(r"^[0-9]{1,19}$")
# Control characters (NUL included) and path separators never reach a stored name.
_UNSAFE_NAME_CHARS = re.compile(r"[\x00-\x1f\x7f]")

State = Upload.State
logger = logging.getLogger(__name__)


def _tus_response(status=204, body=None, **headers):
    if body is None:
        response = HttpResponse(status=status)
    elif isinstance(body, dict):
        response = JsonResponse(body, status=status)
    else:
        response = HttpResponse(body, status=status, content_type="text/plain; charset=utf-8")
    response["Tus-Resumable"] = TUS_VERSION
    response["Cache-Control"] = "no-store"
    for name, value in headers.items():
        response[name.replace("_", "-")] = str(value)
    return response


def _error(status, message, **headers):
    return _tus_response(status, {"error": str(message)}, **headers)


def _expires(upload):
    return http_date(upload.expires_at.timestamp())


def _version_mismatch(request):
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        return _error(412, _("This server speaks tus %(version)s.") % {"version": TUS_VERSION}, Tus_Version=TUS_VERSION)
    return None


def parse_metadata(header):
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs, as a
    dict of str. ValueError for anything malformed."""
    metadata = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _sep, encoded = pair.partition(" ")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key) or key in metadata:
            raise ValueError(key)
        try:
            metadata[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(key) from None
    return metadata


def clean_filename(value):
    """The uploader's file name as data: its last path part, no control
    characters, at most 255 characters (the extension kept)."""
    name = _UNSAFE_NAME_CHARS.sub("", value or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if name in ("", ".", ".."):
        name = "video"
    if len(name) > 255:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext) <= 16 else ""
        name = stem[: 255 - len(ext)] + ext
    return name


def clean_title(value):
    """The title the client sent, as data: no control characters, at most 255 characters."""
    return _UNSAFE_NAME_CHARS.sub("", value or "").strip()[:255]


# --- OPTIONS and POST: /uploads/tus/ ----------------------------------------------


@require_admin_access
@require_http_methods(["OPTIONS", "POST"])
def tus_create(request):
    if request.method == "OPTIONS":
        return _tus_response(
            204,
            Tus_Version=TUS_VERSION,
            Tus_Extension=EXTENSIONS,
            Tus_Max_Size=max_upload_size(),
            Tus_Checksum_Algorithm=",".join(CHECKSUM_ALGORITHMS),
        )
    refusal = _version_mismatch(request)
    if refusal:
        return refusal
    if request.headers.get("Upload-Defer-Length"):
        return _error(400, _("The upload's size must be known when it starts (Upload-Length)."))
    length = request.headers.get("Upload-Length", "")
    if not _DIGITS.match(length):
        return _error(400, _("Upload-Length must be the file's size in bytes."))
    length = int(length)
    if length == 0:
        return _error(400, _("The file is empty."))
    if length > max_upload_size():
        return _error(413, _("This file is %(size)s; the largest video you can upload is %(limit)s.") % {
            "size": filesizeformat(length), "limit": filesizeformat(max_upload_size())
        })
    if _content_length(request):
        return _error(400, _("Send the file's bytes with PATCH requests after creating the upload."))
    try:
        metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    except ValueError:
        return _error(400, _("Upload-Metadata is malformed."))

    collection_id = metadata.get("collection", "").strip()
    if collection_id:
        if not _DIGITS.match(collection_id):
            return _error(400, _("The collection must be given by its id."))
        collection = Collection.objects.filter(pk=int(collection_id)).first()
    else:
        collection = default_collection(request.user)
    if collection is None or not may_add_to(request.user, collection):
        return _error(403, _("You may not add videos to that collection."))

    upload = Upload(
        user=request.user,
        collection=collection,
        filename=clean_filename(metadata.get("filename")),
        title=clean_title(metadata.get("title")),
        length=length,
        backend=Upload.Backend.TUS,
        expires_at=expiry_from_now(),
    )
    staging.create(upload.pk)
    try:
        upload.save(force_insert=True)
    except Exception:
        staging.discard(upload.pk)
        raise
    return _tus_response(
        201,
        Location=reverse("private_video:tus_upload", args=[upload.pk]),
        Upload_Offset=0,
        Upload_Expires=_expires(upload),
    )


def _content_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


# --- HEAD, PATCH, DELETE: /uploads/tus/<id> ------------------------------------------


@require_admin_access
@require_http_methods(["HEAD", "PATCH", "DELETE", "OPTIONS"])
def tus_upload(request, upload_id):
    if request.method == "OPTIONS":
        return tus_create(request)
    # Only the owner's own tus uploads: anyone else's id is an unknown one.
    upload = get_object_or_404(Upload, pk=upload_id, user=request.user, backend=Upload.Backend.TUS)
    refusal = _version_mismatch(request)
    if refusal:
        return refusal
    try:
        if request.method == "DELETE":
            refusal = cancel_refusal(upload)
            if refusal:
                return _error(409, refusal, **_finished_headers(upload))
            cancel_upload(upload)
            return _tus_response(204)
        gone = _gone(upload)
        if gone:
            return gone
        if request.method == "HEAD":
            return _head(upload)
        return _patch(request, upload)
    except ObjectDoesNotExist:
        # The upload, or its collection, was deleted during the request
        # (its bytes go with the row).
        return _error(410, _("This upload no longer exists; start it again."))


def _gone(upload):
    """410 for an upload that takes no more bytes (cancelled, failed, expired);
    None while it may receive, or once it is complete (HEAD says so)."""
    if upload.state in (State.CANCELLED, State.FAILED):
        return _error(410, upload.error or _("This upload was %(state)s.") % {"state": upload.get_state_display()})
    if upload.state == State.RECEIVING and upload.expires_at <= timezone.now():
        return _error(410, _("This upload has expired; start it again."))
    return None


def _finished_headers(upload):
    headers = {}
    if upload.video_id:
        headers["Upload_Video"] = upload.video_id
    return headers


def _head(upload):
    if upload.state == State.RECEIVING:
        on_disk = staging.size(upload.pk)
        if on_disk is None:
            return _error(410, _("This upload's bytes are gone; start it again."))
        offset = on_disk
    else:
        offset = upload.offset if upload.state != State.COMPLETE else upload.length
    return _tus_response(
        200, Upload_Offset=offset, Upload_Length=upload.length, Upload_Expires=_expires(upload),
        **_finished_headers(upload),
    )


def _parse_checksum(header):
    """(algorithm, digest bytes) from ``Upload-Checksum``, None if absent; ValueError if malformed."""
    if not header:
        return None
    algorithm, _sep, encoded = header.strip().partition(" ")
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise ValueError(algorithm)
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise ValueError(algorithm) from None


def _patch(request, upload):
    if request.content_type != OFFSET_CONTENT_TYPE:
        return _error(415, _("PATCH bodies must be sent as %(type)s.") % {"type": OFFSET_CONTENT_TYPE})
    offset = request.headers.get("Upload-Offset", "")
    if not _DIGITS.match(offset):
        return _error(400, _("Upload-Offset must be a number of bytes."))
    offset = int(offset)
    if "CONTENT_LENGTH" not in request.META or _content_length(request) is None:
        return _error(411, _("PATCH requests need a Content-Length."))
    body_length = _content_length(request)
    try:
        checksum = _parse_checksum(request.headers.get("Upload-Checksum"))
    except ValueError:
        return _error(400, _("Upload-Checksum must be one of %(names)s and a base64 digest.") % {
            "names": ", ".join(CHECKSUM_ALGORITHMS)
        })
    if upload.state != State.RECEIVING:
        # Complete (or being completed): nothing more to take.
        return _error(409, _("This upload has all its bytes."), Upload_Offset=upload.length, **_finished_headers(upload))
    # The right to add to the collection is checked for every chunk, before
    # any byte is read (as for every S3 part URL): a user who lost it stores
    # nothing more. The upload stays, to be cancelled, expire, or resume if
    # the right comes back; completion checks it again.
    if not may_add_to(request.user, upload.collection):
        return _error(403, lost_right_message(upload))

    try:
        with staging.lock(upload.pk) as fd:
            if fd is None:
                return _error(423, _("Another request is writing this upload; try again shortly."))
            upload.refresh_from_db()
            if upload.state != State.RECEIVING:
                return _error(409, _("This upload has all its bytes."), Upload_Offset=upload.length,
                              **_finished_headers(upload))
            return _write(request, upload, fd, offset, body_length, checksum)
    except FileNotFoundError:
        return _error(410, _("This upload's bytes are gone; start it again."))


def _write(request, upload, fd, offset, body_length, checksum):
    on_disk = os.fstat(fd).st_size
    if offset != on_disk:
        return _error(409, _("This upload is at byte %(offset)s, not %(sent)s.") % {
            "offset": on_disk, "sent": offset
        }, Upload_Offset=on_disk)
    if on_disk + body_length > upload.length:
        return _error(413, _("These bytes go past the upload's announced size (%(length)s bytes).") % {
            "length": upload.length
        }, Upload_Offset=on_disk)

    os.lseek(fd, on_disk, os.SEEK_SET)
    hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
    try:
        received = staging.write_body(request, fd, body_length, hasher)
    except staging.WriteFailed:
        # The disk could not take them: keep the bytes before, not a torn piece.
        os.ftruncate(fd, on_disk)
        logger.exception("upload %s: the staged file could not be written", upload.pk)
        return _error(507, _("The server has no room for this upload right now; try again later."),
                      Upload_Offset=on_disk)
    remaining = body_length - received

    status, error = 204, None
    if checksum and (remaining or hasher.digest() != checksum[1]):
        # Only bytes that match their checksum are kept.
        os.ftruncate(fd, on_disk)
        status, error = 460, _("The bytes received do not match Upload-Checksum; send them again.")
    new_offset = os.fstat(fd).st_size
    expires_at = expiry_from_now()
    Upload.objects.filter(pk=upload.pk, state=State.RECEIVING).update(
        offset=new_offset, expires_at=expires_at, updated_at=timezone.now()
    )
    upload.offset, upload.expires_at = new_offset, expires_at
    headers = {"Upload_Offset": new_offset, "Upload_Expires": _expires(upload)}
    if status == 460:
        response = _error(460, error, **headers)
        response.reason_phrase = "Checksum Mismatch"
        return response
    if remaining:
        return _error(400, _("The request ended before its Content-Length."), **headers)
    if new_offset < upload.length:
        return _tus_response(204, **headers)
    try:
        video = complete_upload(upload, staging.path_for(upload.pk))
    except UploadRefused as refused:
        return _error(refused.status or 422, refused.message, Upload_Offset=new_offset)
    return _tus_response(204, Upload_Offset=new_offset, Upload_Video=video.pk)


# --- the upload's state as JSON --------------------------------------------------------


@require_admin_access
@require_http_methods(["GET"])
def upload_status(request, upload_id):
    """``{state, offset, length, error, video}`` for an upload the user may see."""
    from ..permissions import videos_user_may
    from .permissions import uploads_visible_to

    upload = get_object_or_404(uploads_visible_to(request.user).select_related("video"), pk=upload_id)
    offset = upload.offset
    if upload.backend == Upload.Backend.TUS and upload.state == State.RECEIVING:
        offset = staging.size(upload.pk) or 0
    video = None
    # The video is described only to whoever may still change it: it may
    # have moved to a collection the user has no rights on since.
    if upload.video is not None and videos_user_may(request.user, "change").filter(pk=upload.video_id).exists():
        video = {"id": upload.video.pk, "title": upload.video.title, "edit_url": upload.video.get_admin_edit_url()}
    response = JsonResponse({
        "id": str(upload.pk),
        "state": upload.state,
        "filename": upload.filename,
        "title": upload.title,
        "offset": offset,
        "length": upload.length,
        "error": upload.error,
        "video": video,
    })
    response["Cache-Control"] = "private, no-store"
    return response
