"""S3 multipart uploads straight from the browser to the private bucket.

Django creates, signs, lists, completes and aborts the multipart upload; the
parts themselves go from the browser to the bucket through presigned
``UploadPart`` URLs, so no byte of the video passes through nginx or gunicorn.
Every call uses django-storages' own boto3 client of the private storage
(``storage.connection.meta.client``): no second set of credentials.

The JSON endpoints (admin login, CSRF, the owner's own upload only):

- ``s3_create``     POST {filename, length, collection, title?}
                    → {uploadId, key, partSize, partCount}
- ``s3_sign_part``  POST → {url, method: "PUT", size, expires} for part 1..partCount
- ``s3_list_parts`` GET  → {parts: [{PartNumber, ETag, Size}], partSize, partCount, length}
- ``s3_complete``   POST {parts: [{PartNumber, ETag}]} → {video: {id, title, edit_url}} or 400 {error}
- ``s3_abort``      DELETE (or POST) → {state: "cancelled"}

The object is written at ``layout.original_name(video_key)`` (no extension:
none is known before the probe); ``completion.complete_upload`` probes it in
place through a short presigned GET URL and copies it, inside the bucket, to
its final name with the probed container's extension.

Sizes are the server's, not the client's: the part size is fixed at creation
(``PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE``, raised to S3's 5 MiB floor and to what
10,000 parts need), each part URL is signed for that part's exact
Content-Length (SigV4 signs it, so S3 refuses a bigger body), and completion
checks every part S3 lists against the declared length before asking S3 to
assemble them.
"""

import json
import math
from datetime import timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.template.defaultfilters import filesizeformat
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from wagtail.models import Collection

from ..conf import setting
from ..layout import original_name
from ..storage import configured_private_storage
from ..validation import max_upload_size
from .models import Upload
from .permissions import default_collection, lost_right_message, may_add_to, uploads_visible_to
from .tus import clean_title

State = Upload.State

# S3's own bounds (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).
MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10_000


class _Refusal(Exception):
    def __init__(self, message, status=400):
        super().__init__(message)
        self.message, self.status = str(message), status


def _error(message, status):
    return JsonResponse({"error": str(message)}, status=status)


# --- sizes -----------------------------------------------------------------------


def part_size(length):
    """Bytes per part for an object of ``length`` bytes: the configured chunk
    size, at least S3's 5 MiB, and large enough that 10,000 parts hold it."""
    size = max(int(setting("UPLOAD_CHUNK_SIZE")), MIN_PART_SIZE, math.ceil(length / MAX_PARTS))
    return min(size, MAX_PART_SIZE)


def part_count(length):
    return max(1, math.ceil(length / part_size(length)))


def part_length(length, number):
    """The exact size of part ``number`` (1-based): the last one holds the rest."""
    size, count = part_size(length), part_count(length)
    return size if number < count else length - size * (count - 1)


# --- the bucket -----------------------------------------------------------------


def s3_storage():
    """The private storage when it is a bucket, else None (no S3 uploads then)."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:
        return None
    storage = configured_private_storage()
    return storage if isinstance(storage, S3Storage) else None


def _client(storage):
    # django-storages' own client (its credentials, endpoint, signature settings).
    return storage.connection.meta.client


def _error_code(exc):
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")


def _client_errors():
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _list_parts(storage, upload):
    """Every part S3 holds for the upload: {number: (etag, size)}."""
    client = _client(storage)
    parts, marker = {}, 0
    while True:
        answer = client.list_parts(
            Bucket=storage.bucket_name, Key=upload.s3_key, UploadId=upload.s3_upload_id, PartNumberMarker=marker
        )
        for part in answer.get("Parts", []):
            parts[int(part["PartNumber"])] = (part["ETag"], int(part["Size"]))
        if not answer.get("IsTruncated"):
            return parts
        marker = int(answer["NextPartNumberMarker"])


def abort(upload):
    """Abort the upload's multipart upload so no part is left in the bucket
    (S3 may still be storing a part while it aborts: its docs say to abort
    until ListParts finds the upload gone). Used by ``completion.cancel_upload``
    and ``expire_uploads``. An object already assembled under the upload's
    key (completed on S3 but never made a Video) is deleted too."""
    storage = s3_storage()
    if storage is None or not upload.s3_upload_id:
        return
    client = _client(storage)
    from botocore.exceptions import ClientError

    for _attempt in range(5):
        try:
            client.abort_multipart_upload(Bucket=storage.bucket_name, Key=upload.s3_key, UploadId=upload.s3_upload_id)
        except ClientError as exc:
            if _error_code(exc) not in ("NoSuchUpload", "404"):
                raise
        try:
            left = _list_parts(storage, upload)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchUpload", "404"):
                break
            raise
        if not left:
            break
    if upload.video_id is None:
        client.delete_object(Bucket=storage.bucket_name, Key=upload.s3_key)


# --- requests ------------------------------------------------------------------


def _payload(request):
    """The request's fields: a JSON object body, or form fields."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's recursion limit
            raise _Refusal(_("The request body is not valid JSON.")) from None
        if not isinstance(data, dict):
            raise _Refusal(_("The request body must be a JSON object."))
        return data
    return request.POST


def _own_upload(request, upload_id):
    """The caller's own S3 upload, or 404 (another user's id answers as one that does not exist)."""
    return get_object_or_404(Upload, pk=upload_id, user=request.user, backend=Upload.Backend.S3)


def _receiving(upload):
    if upload.state != State.RECEIVING:
        message = _("This upload is %(state)s.") % {"state": upload.get_state_display()}
        if upload.error:
            message += " " + upload.error
        raise _Refusal(message, 409)
    if upload.expires_at <= timezone.now():
        raise _Refusal(_("This upload has expired; start it again."), 410)


def _still_may_add(request, upload):
    """403 once the user may no longer add to the upload's collection: no
    part URL, no part list (it keeps the upload alive), no assembly."""
    if not may_add_to(request.user, upload.collection):
        raise _Refusal(lost_right_message(upload), 403)


def _touch(upload, **fields):
    """Keep a live upload from expiring (the browser is still sending it)."""
    expires = timezone.now() + timedelta(seconds=setting("UPLOAD_EXPIRY"))
    Upload.objects.filter(pk=upload.pk, state=State.RECEIVING).update(
        expires_at=expires, updated_at=timezone.now(), **fields
    )


def _json_view(view):
    def wrapper(request, *args, **kwargs):
        storage = s3_storage()
        if storage is None:
            return _error(_("The private storage is not an S3 bucket; use the tus upload."), 404)
        try:
            return view(request, storage, *args, **kwargs)
        except _Refusal as refusal:
            return _error(refusal.message, refusal.status)
        except ObjectDoesNotExist:
            # The upload, or its collection, was deleted during the request.
            return _error(_("This upload no longer exists; start it again."), 410)
        except _client_errors() as exc:
            if _error_code(exc) == "NoSuchUpload":
                return _error(_("The store no longer has this upload; start it again."), 410)
            if _error_code(exc) in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                return _error(_("The store refused the parts (%(code)s); list them, send the missing ones "
                                "again and complete.") % {"code": _error_code(exc)}, 400)
            import logging

            logging.getLogger(__name__).exception("S3 multipart request failed")
            return _error(_("The video store did not answer; try again in a moment."), 502)

    wrapper.__name__ = view.__name__
    wrapper.__doc__ = view.__doc__
    return wrapper


def _length(value):
    if isinstance(value, int) and not isinstance(value, bool):
        length = value
    elif isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        if len(value.strip()) > 19:  # past any real size (and int() refuses 4300+ digits)
            raise _Refusal(_("This file is larger than one S3 object can be."), 413)
        length = int(value.strip())
    else:
        raise _Refusal(_("The file size is missing or not a whole number of bytes."))
    if length <= 0:
        raise _Refusal(_("The file is empty."))
    limit = max_upload_size()
    if length > limit:
        raise _Refusal(_("This file is %(size)s; the largest video you can upload is %(limit)s.") % {
            "size": filesizeformat(length), "limit": filesizeformat(limit)}, 413)
    if length > MAX_PARTS * MAX_PART_SIZE:
        raise _Refusal(_("This file is larger than one S3 object can be."), 413)
    return length


def _collection(request, value):
    if value in (None, ""):
        collection = default_collection(request.user)
    else:
        try:
            collection = Collection.objects.filter(pk=int(value)).first()
        except (TypeError, ValueError):
            collection = None
    if collection is None or not may_add_to(request.user, collection):
        raise _Refusal(_("You may not add videos to this collection."), 403)
    return collection


def _filename(value):
    import posixpath

    name = posixpath.basename(str(value or "").replace("\\", "/")).strip()
    if not name or len(name) > 255 or any(ord(c) < 32 for c in name):
        raise _Refusal(_("The file name is missing or too long."))
    return name


def object_parameters(storage, name):
    """The storage's own parameters for an object it writes at ``name``
    (encryption, KMS key, storage class, ACL, cache control, metadata): the
    multipart upload is created with them, and completion's copy to the
    video's final name passes them again (a copy keeps none of them)."""
    params = {
        key: value for key, value in storage.get_object_parameters(name).items()
        if key in ("CacheControl", "ServerSideEncryption", "SSEKMSKeyId", "StorageClass", "ACL", "Metadata")
    }
    if storage.default_acl:
        params["ACL"] = storage.default_acl
    return params


@require_POST
@_json_view
def create(request, storage):
    """Start a multipart upload at the video's original name: the size is
    checked against the limit and the collection against the user's rights
    before S3 is asked anything."""
    data = _payload(request)
    length = _length(data.get("length"))
    filename = _filename(data.get("filename"))
    collection = _collection(request, data.get("collection"))
    title = clean_title(str(data.get("title") or ""))
    upload = Upload(
        user=request.user, collection=collection, title=title, filename=filename, length=length,
        backend=Upload.Backend.S3, expires_at=timezone.now() + timedelta(seconds=setting("UPLOAD_EXPIRY")),
    )
    name = original_name(upload.video_key)
    upload.s3_key = storage.object_key(name)
    params = object_parameters(storage, name)
    answer = _client(storage).create_multipart_upload(
        Bucket=storage.bucket_name, Key=upload.s3_key, ContentType="application/octet-stream", **params
    )
    upload.s3_upload_id = answer["UploadId"]
    try:
        upload.save()
    except Exception:
        # No row (the collection or the user deleted meanwhile): nothing
        # would ever find this multipart upload again.
        try:
            _client(storage).abort_multipart_upload(
                Bucket=storage.bucket_name, Key=upload.s3_key, UploadId=upload.s3_upload_id
            )
        except _client_errors():
            import logging

            logging.getLogger(__name__).exception("could not abort the unsaved multipart upload %s", upload.s3_key)
        raise
    return JsonResponse({
        "uploadId": str(upload.pk),
        "key": upload.s3_key,
        "partSize": part_size(length),
        "partCount": part_count(length),
    }, status=201)


@require_POST
@_json_view
def sign_part(request, storage, upload_id, part):
    """A presigned UploadPart URL for part ``part`` of this upload only (its
    key, its S3 upload id, that part number, that part's exact length), valid
    ``PRIVATE_VIDEO_S3_UPLOAD_URL_LIFETIME`` seconds."""
    upload = _own_upload(request, upload_id)
    count = part_count(upload.length)
    if not 1 <= part <= min(count, MAX_PARTS):
        return _error(_("Part %(part)s does not exist: this upload has parts 1 to %(count)s.") % {
            "part": part, "count": count}, 400)
    _receiving(upload)
    _still_may_add(request, upload)
    lifetime = int(setting("S3_UPLOAD_URL_LIFETIME"))
    size = part_length(upload.length, part)
    url = _client(storage).generate_presigned_url(
        "upload_part",
        Params={
            "Bucket": storage.bucket_name, "Key": upload.s3_key, "UploadId": upload.s3_upload_id,
            "PartNumber": part, "ContentLength": size,
        },
        ExpiresIn=lifetime,
        HttpMethod="PUT",
    )
    _touch(upload, **_progress(storage, upload))
    return JsonResponse({"url": url, "method": "PUT", "size": size, "expires": lifetime})


def _progress(storage, upload):
    """The bytes the bucket already holds, for the admin's in-progress list
    (the browser asks for the next part URL as each part is sent): the parts
    S3 lists, so only what really arrived counts. Best effort."""
    try:
        held = _list_parts(storage, upload)
    except _client_errors():
        return {}
    return {"offset": min(sum(size for _etag, size in held.values()), upload.length)}


@require_GET
@_json_view
def list_parts(request, storage, upload_id):
    """The parts S3 already holds (for resuming after a reload); also records
    their total as the upload's progress."""
    upload = _own_upload(request, upload_id)
    _receiving(upload)
    _still_may_add(request, upload)
    parts = _list_parts(storage, upload)
    received = sum(size for _etag, size in parts.values())
    _touch(upload, offset=min(received, upload.length))
    return JsonResponse({
        "parts": [{"PartNumber": n, "ETag": etag, "Size": size} for n, (etag, size) in sorted(parts.items())],
        "partSize": part_size(upload.length),
        "partCount": part_count(upload.length),
        "length": upload.length,
    })


def _video_json(video):
    return {"id": video.pk, "title": video.title, "edit_url": reverse("private_video:edit", args=[video.pk])}


def _checked_parts(request, storage, upload):
    """The parts to assemble, from S3's own list, after checking that they are
    exactly parts 1..partCount of the announced sizes (and, when the client
    sent its list, the same parts)."""
    data = _payload(request)
    held = _list_parts(storage, upload)
    count = part_count(upload.length)
    missing = [n for n in range(1, count + 1) if n not in held]
    if missing:
        raise _Refusal(_("%(missing)s of %(count)s parts have not reached the store (first missing: part %(first)s); "
                         "send them and complete again.") % {
            "missing": len(missing), "count": count, "first": missing[0]})
    for number, (_etag, size) in sorted(held.items()):
        if number > count or size != part_length(upload.length, number):
            raise _Refusal(_("Part %(part)s is %(size)s bytes, not the %(expected)s this upload announced.") % {
                "part": number, "size": size,
                "expected": part_length(upload.length, number) if number <= count else 0})
    sent = data.get("parts") if hasattr(data, "get") else None
    if sent is not None:
        try:
            claimed = {int(p["PartNumber"]): str(p["ETag"]).strip('"') for p in sent}
        except (TypeError, KeyError, ValueError):
            raise _Refusal(_("“parts” must be a list of {PartNumber, ETag}.")) from None
        if claimed != {n: etag.strip('"') for n, (etag, _size) in held.items()}:
            raise _Refusal(_("The parts sent do not match the parts the store holds; list them and send the "
                             "missing ones again."))
    return [{"PartNumber": n, "ETag": etag} for n, (etag, _size) in sorted(held.items())]


@require_POST
@_json_view
def complete(request, storage, upload_id):
    """Assemble the parts into one object, then hand it to
    ``complete_upload``, which probes it in place and creates the Video, or
    refuses it (the object deleted, no Video, a readable error)."""
    from .completion import UploadRefused, complete_upload

    upload = _own_upload(request, upload_id)
    if upload.state == State.COMPLETE and upload.video is not None:
        # As the upload status: the video is described only to whoever may
        # still change it (it may have moved out of the uploader's reach since).
        from ..permissions import videos_user_may

        reachable = videos_user_may(request.user, "change").filter(pk=upload.video_id).exists()
        return JsonResponse({"video": _video_json(upload.video) if reachable else None})
    _receiving(upload)
    # Before the parts are assembled: refused here, they stay, as a refused
    # tus chunk keeps the bytes before it (completion checks again).
    _still_may_add(request, upload)
    if not _assembled(storage, upload):
        parts = _checked_parts(request, storage, upload)
        _client(storage).complete_multipart_upload(
            Bucket=storage.bucket_name, Key=upload.s3_key, UploadId=upload.s3_upload_id,
            MultipartUpload={"Parts": parts},
        )
    Upload.objects.filter(pk=upload.pk).update(offset=upload.length, updated_at=timezone.now())
    try:
        video = complete_upload(upload, ("s3", original_name(upload.video_key)))
    except UploadRefused as refused:
        return _error(refused.message, refused.status or 400)
    return JsonResponse({"video": _video_json(video)})


def _assembled(storage, upload):
    """True when an earlier completion already assembled the parts (its probe
    could not run then, see ``complete_upload``): the object is there, whole,
    and the multipart upload is gone, so the completion goes on from the probe."""
    from botocore.exceptions import ClientError

    client = _client(storage)
    try:
        client.list_parts(Bucket=storage.bucket_name, Key=upload.s3_key, UploadId=upload.s3_upload_id, MaxParts=1)
        return False
    except ClientError as exc:
        if _error_code(exc) not in ("NoSuchUpload", "404"):
            raise
    try:
        head = client.head_object(Bucket=storage.bucket_name, Key=upload.s3_key)
    except ClientError:
        return False  # neither parts nor object: the NoSuchUpload answer follows
    return head.get("ContentLength") == upload.length


@require_http_methods(["POST", "DELETE"])
@_json_view
def abort_view(request, storage, upload_id):
    """Abort: no part is left in the bucket; the upload is CANCELLED. The
    owner, or whoever may see the upload in the admin's list."""
    from .completion import cancel_refusal, cancel_upload

    upload = get_object_or_404(uploads_visible_to(request.user), pk=upload_id, backend=Upload.Backend.S3)
    refusal = cancel_refusal(upload)
    if refusal:
        return _error(refusal, 409)
    cancel_upload(upload)
    return JsonResponse({"state": upload.state})


# --- the bucket's CORS rule (system check private_video.W002) ---------------------


def _origin(base_url):
    from urllib.parse import urlsplit

    parts = urlsplit(base_url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origin_matches(pattern, origin):
    """S3's AllowedOrigin: an exact origin, or one with a single ``*``."""
    import re

    return bool(re.fullmatch(".*".join(re.escape(piece) for piece in pattern.lower().split("*")), origin))


def cors_problem(storage, base_url):
    """Why the bucket's CORS configuration would stop the admin's browser
    from PUTting parts (and reading their ETag) from ``base_url``'s origin,
    or None. S3 applies the first rule matching the origin and method, so
    that rule must expose ETag."""
    from botocore.exceptions import BotoCoreError, ClientError

    origin = _origin(base_url)
    if origin is None:
        return (f"WAGTAILADMIN_BASE_URL ({base_url!r}) is not the site's http(s) address, so the origin "
                "the rule must allow is unknown")
    try:
        rules = _client(storage).get_bucket_cors(Bucket=storage.bucket_name).get("CORSRules", [])
    except ClientError as exc:
        if _error_code(exc) == "NoSuchCORSConfiguration":
            return "the bucket has no CORS configuration"
        return f"its CORS configuration could not be read ({_error_code(exc) or exc})"
    except BotoCoreError as exc:
        return f"its CORS configuration could not be read ({exc})"
    for rule in rules:
        if "PUT" not in [method.upper() for method in rule.get("AllowedMethods", [])]:
            continue
        if not any(_origin_matches(pattern, origin) for pattern in rule.get("AllowedOrigins", [])):
            continue
        if "etag" not in [header.lower() for header in rule.get("ExposeHeaders", [])]:
            return f"the CORS rule that lets {origin} PUT does not expose the ETag header"
        return None
    return f"no CORS rule lets {origin} PUT"


# The URL patterns (names in the ``private_video`` namespace), which
# ``uploads.urls`` adds under the video viewset's /admin/videos/.
urlpatterns = [
    path("uploads/s3/", create, name="s3_create"),
    path("uploads/s3/<uuid:upload_id>/part/<int:part>/", sign_part, name="s3_sign_part"),
    path("uploads/s3/<uuid:upload_id>/parts/", list_parts, name="s3_list_parts"),
    path("uploads/s3/<uuid:upload_id>/complete/", complete, name="s3_complete"),
    path("uploads/s3/<uuid:upload_id>/", abort_view, name="s3_abort"),
]
