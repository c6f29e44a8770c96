"""Rendition files behind signed URLs, when nginx cannot send them itself.

With local files nginx checks the ``secure_link`` token and sends the file
without Python. With ``STORAGE=s3`` it still checks the token first, then
hands the request here, because only Django can presign for the bucket. This
view checks the token again (it must not rely on having been called by
nginx), then answers through the same response builder as ``serve``: an
X-Accel-Redirect to a presigned URL that nginx fetches and the viewer never
sees. Without nginx (``MEDIA_ACCESS_SERVE_MODE=django``) the same view
streams the file from Python.

The token opens one video's ``renditions/`` folder for one browser, exactly
as nginx's check does: the hash covers the viewer cookie
(``MEDIA_ACCESS_VIEWER_COOKIE``), which nginx passes on alone (never the
session) and this view reads from the request, so a URL copied into another
browser is refused here too. It needs no database query; the URL shape is the
one nginx matches, and anything else (a missing or malformed cookie
included) is a 403 with no body.
"""

import hmac
import posixpath
import re
import time

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from private_video import layout
from private_video.storage import private_storage

from .. import tokens
from ..responses import ServedFile, content_type_for, get_response_builder
from .serve import private, require_safe

# As the bundled nginx config's secure_link location matches them.
_SIGNED_NAME = re.compile(
    rf"^(?P<prefix>{layout.RENDITIONS_PREFIX_PATTERN})(?P<file>{layout.RENDITION_FILE_PATTERN})$"
)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def token_allows(token, expires, name, viewer, *, now=None):
    """True when ``token`` signs ``name``'s rendition folder for ``viewer`` (the
    request's viewer cookie) and has not expired."""
    match = _SIGNED_NAME.match(name)
    if not match or not _TOKEN.match(token) or not tokens.valid_viewer(viewer):
        return False
    if expires < int(now if now is not None else time.time()):
        return False
    expected = tokens.secure_link_token(match.group("prefix"), expires, viewer)
    return hmac.compare_digest(expected, token)


def denied():
    # As nginx's own refusal of a bad token: 403, no body, plain text.
    return private(HttpResponse(b"", status=403, content_type="text/plain"))


@csrf_exempt
@require_safe
def rendition_file(request, token, expires, name):
    if not token_allows(token, int(expires), name, tokens.cookie_viewer(request)):
        return denied()
    served = ServedFile(
        storage=private_storage(),
        name=name,
        filename=posixpath.basename(name),
        content_type=content_type_for(name),
    )
    return private(get_response_builder().build(request, served))
