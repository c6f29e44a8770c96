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


@never_cache
def upload_gate(request):
    # Only a body-carrying method needs the check; a GET gets Django's own
    # answer (the sign-in redirect, the upload page).
    method = request.headers.get("X-Original-Method", "POST").upper()
    if method in ("GET", "HEAD", "OPTIONS") or may_upload(request.user):
        return HttpResponse(status=204)
    return HttpResponse(status=403)
