"""Transcoding's admin UI, plugged into the video library through Wagtail
hooks (transcoding.wagtail_hooks): the status column, the processing panel
on the edit view, its polling endpoint and the re-run action."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from wagtail.log_actions import log
from wagtail.permissions import policy_registry

from wagtail.admin.ui.tables import Column

from private_video import get_video_model
from private_video.permissions import videos_user_may

from .status import video_status
from .tasks import rerun


def _video_policy():
    # Looked up per request: importing this module must not need a valid PRIVATE_VIDEO_MODEL.
    return policy_registry.get_by_type(get_video_model())


def user_can_rerun(user, video):
    return _video_policy().user_has_permission_for_instance(user, "change", video)


def processing_context(request, video):
    status = video_status(video)
    return {
        "status": status,
        "job": video.transcode_jobs.first(),
        "renditions": list(video.renditions.order_by("content_type", "-height", "name")),
        "can_rerun": status.can_rerun and user_can_rerun(request.user, video),
        "rerun_url": reverse("private_video_transcoding:rerun", args=[video.pk]),
        "status_url": reverse("private_video_transcoding:processing_status", args=[video.pk]),
    }


@require_GET
def processing_status(request, pk):
    """The badge's current rendering, polled by processing-status.js. Only for
    videos the user may change or choose: any other id is a 404."""
    video = get_object_or_404(videos_user_may(request.user, "change", "choose"), pk=pk)
    status = video_status(video)
    html = render_to_string(
        "transcoding/status_badge.html",
        {"status": status, "status_url": request.path},
        request=request,
    )
    response = JsonResponse(
        {"code": status.code, "progress": status.progress, "eta_seconds": status.eta_seconds,
         "error": status.error, "html": html}
    )
    response["Cache-Control"] = "private, no-store"
    return response


@require_POST
def rerun_transcode(request, pk):
    # No video rights at all: refused before any lookup. Otherwise the id is
    # looked up among the videos this user may change: another's is a 404.
    if not _video_policy().user_has_permission(request.user, "change"):
        raise PermissionDenied
    video = get_object_or_404(videos_user_may(request.user, "change"), pk=pk)
    if not video_status(video).can_rerun:
        messages.warning(
            request, _("“%(title)s” is already being processed or is up to date.") % {"title": video.title}
        )
    else:
        rerun(video)
        log(video, "transcoding.rerun", user=request.user)
        messages.success(request, _("Processing of “%(title)s” was queued again.") % {"title": video.title})
    return redirect("private_video:edit", video.pk)


def processing_panel(request, video):
    """The edit view's processing panel (the ``insert_video_edit_panels`` hook)."""
    return render_to_string(
        "transcoding/processing_panel.html", {"processing": processing_context(request, video)}, request=request
    )


class StatusColumn(Column):
    """The listing's status column (the ``register_video_listing_columns`` hook)."""

    cell_template_name = "transcoding/status_cell.html"

    class Media:
        js = ["transcoding/js/processing-status.js"]

    def get_value(self, instance):
        return video_status(instance)
