"""nginx asks this (``auth_request``) before it reads the body of a POST to a
video upload URL, the only URLs that take a video-sized body: 204 lets the
body in, 403 refuses it from the headers alone. So a visitor who may not
upload cannot make nginx read and buffer gigabytes; the upload views still
check everything (CSRF, the collection, the file) once the body is in."""

from django.http import HttpResponse
from django.views.decorators.cache import never_cache

from private_video.permissions import video_permission_policy


def may_upload(user):
    return bool(
        user.is_authenticated
        and user.is_active
        and user.has_perm("wagtailadmin.access_admin")
        and video_permission_policy().user_has_any_permission(user, ["add", "change"])
    )


def announces_body(request):
    """The gated request says a body follows: a length other than 0, or any
    transfer coding (chunked). nginx passes both (the subrequest has none)."""
    length = request.headers.get("X-Original-Content-Length", "").strip()
    return length not in ("", "0") or bool(request.headers.get("X-Original-Transfer-Encoding", "").strip())


@never_cache
def upload_gate(request):
    # A GET, HEAD or OPTIONS without a body gets Django's own answer (the
    # sign-in redirect, the upload page). Any method can carry a body, though:
    # one announced on those is as gated as a POST's, or nginx would read
    # gigabytes for anyone.
    method = request.headers.get("X-Original-Method", "POST").upper()
    if (method in ("GET", "HEAD", "OPTIONS") and not announces_body(request)) or may_upload(request.user):
        return HttpResponse(status=204)
    return HttpResponse(status=403)
