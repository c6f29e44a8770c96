"""Upload validation: a video is what ffprobe says it is, not what its name says."""

import os
import tempfile

from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from .conf import setting
from .probe import ProbeError, probe_video


def max_upload_size():
    return setting("MAX_UPLOAD_SIZE")


# Room for the multipart envelope and the form's other fields on top of the
# largest file.
UPLOAD_REQUEST_OVERHEAD = 16 * 1024 * 1024


def max_upload_request_size():
    """The largest body an upload request may have: the upload views refuse a
    larger Content-Length before reading the body, and the bundled nginx
    config uses the same figure for the upload URLs."""
    return max_upload_size() + UPLOAD_REQUEST_OVERHEAD


def _probe_uploaded(uploaded):
    """Probe the upload by its content alone. Django's temporary file ends
    with the uploader's extension (``.upload.m3u8``), and ffprobe weighs a
    name's extension when it picks a demuxer; so ffprobe gets a name with no
    extension: a link in a private folder (or, for in-memory uploads, a spooled
    copy). ffprobe itself opens it with the demuxer and protocol whitelists."""
    with tempfile.TemporaryDirectory(prefix="probe-") as folder:
        neutral = os.path.join(folder, "upload")
        if hasattr(uploaded, "temporary_file_path"):
            os.symlink(uploaded.temporary_file_path(), neutral)
        else:
            # In-memory uploads (small files, or a custom upload handler):
            # ffprobe needs a seekable file, so spool to disk first.
            with open(neutral, "wb") as spool:
                for chunk in uploaded.chunks():
                    spool.write(chunk)
        return probe_video(neutral)


def validate_video_upload(uploaded):
    """Refuse empty, oversized and non-video files. Returns the probe result."""
    if not uploaded.size:
        raise ValidationError(_("The file is empty."), code="empty")
    limit = max_upload_size()
    if uploaded.size > limit:
        raise ValidationError(
            _("This file is %(size)s; the largest video you can upload is %(limit)s."),
            code="file_too_large",
            params={"size": filesizeformat(uploaded.size), "limit": filesizeformat(limit)},
        )
    try:
        return _probe_uploaded(uploaded)
    except ProbeError as exc:
        raise ValidationError(
            _("“%(name)s” is not a video we can read: %(reason)s"),
            code="not_video",
            params={"name": uploaded.name, "reason": str(exc)},
        ) from None
