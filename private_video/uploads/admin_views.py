"""The admin's list of resumable uploads that have not become videos (yet):
who, file, size, progress, age, state; and the cancel button.

Rights are checked on the server per object: the list and the cancel view
look the upload up among ``uploads_visible_to(user)`` (their own, and those
in collections where the user may change any video; superusers all), so
another editor's upload is a 404 whatever is posted."""

from django.contrib import messages
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST
from wagtail.permissions import policy_registry

from .. import get_video_model
from ..conf import setting
from .completion import cancel_upload
from .models import Upload
from .permissions import uploads_visible_to

# Finished uploads are videos (the Videos listing shows them); the rest stay
# listed until expire_uploads removes them, so a failure or a cancel is seen.
LISTED_STATES = [
    Upload.State.RECEIVING,
    Upload.State.PROCESSING,
    Upload.State.FAILED,
    Upload.State.CANCELLED,
]
CANCELLABLE_STATES = [Upload.State.RECEIVING]
# URL patterns with these in place of an upload id / part number, which the
# page's script replaces (private_video/js/upload.js).
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_PART = 99999


def _no_video_rights(request):
    policy = policy_registry.get_by_type(get_video_model())
    if policy.user_has_any_permission(request.user, ["add", "change"]):
        return None
    return HttpResponseForbidden(gettext("You have no rights on videos."), content_type="text/plain")


def upload_backend():
    """"s3" when the private storage is an S3 bucket (the browser sends parts
    straight to it), else "tus" (chunks to our tus endpoint, staged locally)."""
    from .s3_multipart import s3_storage

    return "s3" if s3_storage() is not None else "tus"


def upload_page_context():
    """What the upload page's script needs, as data attributes on its form:
    which path to take, its endpoints, and the chunk (tus PATCH / S3 part) size."""
    # A URL with a placeholder id, which the script replaces with an upload's id.
    # (A path not served by this install, e.g. a custom viewset without it, is
    # left empty and the script falls back to the plain one-request upload.)
    def url(name, *args):
        try:
            return reverse(f"private_video:{name}", args=args)
        except NoReverseMatch:
            return ""

    return {
        "upload_placeholder_id": PLACEHOLDER_ID,
        "upload_placeholder_part": PLACEHOLDER_PART,
        "upload_backend": upload_backend(),
        "upload_chunk_size": setting("UPLOAD_CHUNK_SIZE"),
        "tus_chunk_size": setting("TUS_CHUNK_SIZE"),
        "upload_urls": {
            "tus": url("tus_create"),
            "status": url("upload_status", PLACEHOLDER_ID),
            "s3_create": url("s3_create"),
            "s3_sign": url("s3_sign_part", PLACEHOLDER_ID, PLACEHOLDER_PART),
            "s3_parts": url("s3_list_parts", PLACEHOLDER_ID),
            "s3_complete": url("s3_complete", PLACEHOLDER_ID),
            "s3_abort": url("s3_abort", PLACEHOLDER_ID),
            "list": url("uploads"),
        },
    }


@require_GET
def upload_list(request):
    refusal = _no_video_rights(request)
    if refusal:
        return refusal
    uploads = (
        uploads_visible_to(request.user)
        .filter(state__in=LISTED_STATES)
        .select_related("user", "collection")
        .order_by("-created_at")
    )
    rows = [
        {
            "upload": upload,
            "owner": upload.user.get_full_name() or upload.user.get_username(),
            "percent": int(upload.progress * 100),
            "cancellable": upload.state in CANCELLABLE_STATES,
        }
        for upload in uploads
    ]
    return TemplateResponse(
        request,
        "private_video/uploads/index.html",
        {
            "rows": rows,
            "page_title": gettext("Uploads in progress"),
            "header_icon": "upload",
            "add_url": reverse("private_video:add"),
        },
    )


@require_POST
def upload_cancel(request, upload_id):
    refusal = _no_video_rights(request)
    if refusal:
        return refusal
    upload = get_object_or_404(uploads_visible_to(request.user), pk=upload_id)
    if upload.state not in CANCELLABLE_STATES:
        messages.warning(
            request,
            gettext("“%(name)s” is %(state)s: only an upload still receiving can be cancelled.")
            % {"name": upload.filename, "state": upload.get_state_display()},
        )
    else:
        cancel_upload(upload)
        messages.success(request, gettext("Upload “%(name)s” cancelled.") % {"name": upload.filename})
    return redirect("private_video:uploads")


urlpatterns = [
    path("uploads/", upload_list, name="uploads"),
    path("uploads/<uuid:upload_id>/cancel/", upload_cancel, name="upload_cancel"),
]
