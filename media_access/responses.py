"""How an authorised media request is answered.

A response builder is a tiny interface, ``build(request, served) -> HttpResponse``,
chosen by ``MEDIA_ACCESS_RESPONSE_BUILDER`` (a dotted path) or, failing that,
by ``MEDIA_ACCESS_SERVE_MODE``: "xaccel" hands the bytes to nginx, "django"
serves them from Python with correct Range support (runserver, no proxy).
Builders run only after the policy has allowed the request.
"""

import email.utils
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.signals import setting_changed
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import http_date
from django.utils.module_loading import import_string

from . import s3
from .conf import setting
from .content_types import content_type_for, content_types  # noqa: F401 (the names views import from here)

BUILDERS_BY_MODE = {
    "xaccel": "media_access.responses.XAccelResponseBuilder",
    "django": "media_access.responses.RangeFileResponseBuilder",
}
_CHUNK_SIZE = 256 * 1024
# Methods a storage is asked to let nginx use (a presigned URL is made for one).
NGINX_METHODS = ("GET", "HEAD")
NOT_AN_NGINX_STORAGE = (
    "The private storage cannot say how nginx reaches its files (it has no nginx_root() and "
    "nginx_source()): use private_video.storage.PrivateFileSystemStorage or PrivateS3Storage, or a subclass."
)


@dataclass(frozen=True)
class ServedFile:
    """One private file, as the database describes it (never as the request does)."""

    storage: object
    name: str
    filename: str
    content_type: str
    attachment: bool = False


def content_disposition(filename, *, attachment=False):
    """RFC 6266: an ASCII fallback and the exact name in ``filename*``."""
    # CR, LF and other controls would split or smuggle headers.
    cleaned = "".join(ch for ch in filename if ch.isprintable()) or "video"
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;%' else "_" for ch in cleaned)
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def accel_redirect_path(name):
    """The X-Accel-Redirect value for a stored file: the internal prefix plus
    the percent-encoded storage name. The one place this is built."""
    normalised = posixpath.normpath(name)
    if (
        not name
        or name.startswith("/")
        or normalised != name
        or normalised.startswith("..")
        or any(ord(ch) < 32 for ch in name)
    ):
        raise SuspiciousFileOperation(f"Refusing to hand nginx the path {name!r}")
    return accel_prefix() + quote(name, safe="/")


def valid_accel_prefix(prefix):
    return (
        isinstance(prefix, str) and prefix.startswith("/") and prefix.endswith("/")
        and not any(c in prefix for c in " ;{}\"'") and not any(ord(c) < 32 for c in prefix)
    )


def accel_prefix():
    """``MEDIA_ACCESS_ACCEL_PREFIX``: nginx's internal location for local files."""
    prefix = setting("ACCEL_PREFIX")
    if not valid_accel_prefix(prefix):
        raise ImproperlyConfigured(
            "MEDIA_ACCESS_ACCEL_PREFIX must be a plain path that starts and ends with '/'."
        )
    return prefix


def nginx_source(storage, name, method="GET"):
    """How nginx reaches ``name`` for a ``method`` request: the storage
    answers (a local path, or a URL presigned for that method)."""
    if method not in NGINX_METHODS:
        raise ValueError(f"Only GET and HEAD are handed to nginx, not {method!r}")
    if not hasattr(storage, "nginx_source"):
        raise ImproperlyConfigured(NOT_AN_NGINX_STORAGE)
    return storage.nginx_source(name, http_method=method, expire=s3.url_lifetime())


def private_headers(response, served):
    response["Content-Type"] = served.content_type
    response["Content-Disposition"] = content_disposition(served.filename, attachment=served.attachment)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


class XAccelResponseBuilder:
    """An empty response that tells nginx which internal file to send; nginx
    then does Range, If-Range, HEAD and sendfile."""

    def build(self, request, served):
        local = _local_headers.get(served)
        if local is not None:
            # A file nginx reads from disk: the same headers for every
            # request, already checked and encoded by HttpResponse when they
            # were kept (the copy skips doing that again, on every request).
            response = HttpResponse(b"")
            response.headers._store = local.copy()
            return response
        response = HttpResponse(b"")
        private_headers(response, served)
        method = "HEAD" if request.method == "HEAD" else "GET"
        source = nginx_source(served.storage, served.name, method)
        if source.url is not None:
            # storage: S3 - nginx proxies to a URL presigned for this method.
            response["X-Accel-Redirect"] = s3.accel_redirect_target(served.storage, source.url)
            # nginx sets it from the same allow-list (rendered into its config):
            # one copied on the redirect would stay on a plain 404/502 from S3 too.
            del response["Content-Type"]
        else:
            response["X-Accel-Redirect"] = accel_redirect_path(served.name)
        # Nothing to buffer here, and nginx must not hold the file in proxy buffers.
        response["X-Accel-Buffering"] = "no"
        del response["Content-Length"]
        if source.url is None:
            if len(_local_headers) >= _LOCAL_HEADERS_MAX:
                _local_headers.clear()
            _local_headers[served] = response.headers._store.copy()
        return response


# ServedFile -> the headers of its X-Accel answer, for files nginx reads from
# disk (a presigned S3 URL is made per request). Emptied when a setting changes.
_local_headers = {}
_LOCAL_HEADERS_MAX = 10_000


class RangeFileResponseBuilder:
    """Serves the file from Python, streamed in chunks, with single-range
    support (200, 206, 416, If-Range, HEAD). For runserver and setups without
    the bundled nginx; still behind the same policy."""

    def build(self, request, served):
        size = served.storage.size(served.name)
        modified = served.storage.get_modified_time(served.name)
        last_modified = http_date(modified.timestamp())
        etag = f'"{int(modified.timestamp()):x}-{size:x}"'

        byte_range = parse_range(request.headers.get("Range"), size)
        if byte_range is not None and not if_range_matches(
            request.headers.get("If-Range"), etag, last_modified
        ):
            byte_range = None

        if byte_range == "unsatisfiable":
            response = HttpResponse(b"", status=416)
            private_headers(response, served)
            response["Content-Range"] = f"bytes */{size}"
            response["Content-Type"] = "text/plain"
            return response

        start, end = byte_range or (0, size - 1)
        length = max(end - start + 1, 0)
        if request.method == "HEAD":
            response = HttpResponse(b"")
        else:
            response = StreamingHttpResponse(_read_range(served, start, length))
        response.status_code = 206 if byte_range else 200
        private_headers(response, served)
        response["Content-Length"] = str(length)
        response["Accept-Ranges"] = "bytes"
        response["Last-Modified"] = last_modified
        response["ETag"] = etag
        if byte_range:
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response


def _read_range(served, start, length):
    with served.storage.open(served.name, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(_CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
# A byte position with more digits than this is past the end of any file (and
# int() refuses more than 4300 digits): it counts as this many bytes.
_MAX_POSITION_DIGITS = 18


def _position(digits):
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else 10**_MAX_POSITION_DIGITS


def parse_range(header, size):
    """One byte range as (first, last) inclusive, "unsatisfiable", or None to send it all.

    Several ranges are answered with the whole file, which RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE.match(spec)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = _position(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = _position(first)
    if last and _position(last) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    last = _position(last) if last else size - 1
    return first, min(last, size - 1)


def if_range_matches(header, etag, last_modified):
    if not header:
        return True
    header = header.strip()
    if header.startswith(("W/", '"')):
        # Only a strong, exact ETag can validate a range.
        return header == etag
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a year past any calendar
        return False
    return http_date(parsed.timestamp()) == last_modified


def get_response_builder():
    path = setting("RESPONSE_BUILDER")
    if not path:
        mode = setting("SERVE_MODE")
        if not isinstance(mode, str) or mode not in BUILDERS_BY_MODE:
            raise ImproperlyConfigured(
                f"MEDIA_ACCESS_SERVE_MODE must be one of {sorted(BUILDERS_BY_MODE)}, not {mode!r}."
            )
        path = BUILDERS_BY_MODE[mode]
    builder_class = _builder_classes.get(path) if isinstance(path, str) else None
    if builder_class is not None:
        return builder_class()
    if not isinstance(path, str):
        raise ImproperlyConfigured(f"MEDIA_ACCESS_RESPONSE_BUILDER must be a dotted path, not {path!r}.")
    try:
        builder_class = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"MEDIA_ACCESS_RESPONSE_BUILDER {path!r} cannot be imported: {error}")
    if not callable(getattr(builder_class, "build", None)):
        raise ImproperlyConfigured(
            f"MEDIA_ACCESS_RESPONSE_BUILDER {path!r} is not a response builder (it has no build(request, served))."
        )
    _builder_classes[path] = builder_class
    return builder_class()


_builder_classes = {}


def _forget(**kwargs):
    _local_headers.clear()
    _builder_classes.clear()


setting_changed.connect(_forget, dispatch_uid="media_access_responses_forget")
