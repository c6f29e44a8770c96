"""Bench-only views, mounted in front of the site's URLs by bench/serve_settings.py."""

from django.http import FileResponse, HttpResponse, HttpResponseForbidden, HttpResponseNotFound
from django.urls import path
from wagtail.models import Page

from private_video.models import Video
from cms.urls import urlpatterns as site_urlpatterns
from media_access.policy import can_watch


def bare(request):
    """The floor: a Django view that does nothing."""
    return HttpResponse(b"")


def bare_user(request):
    """A bare view that also loads the signed-in user (session + user queries)."""
    return HttpResponse(b"" if request.user.is_authenticated else b"anonymous")


def file_response(request, page_id, video_id):
    """The same policy, then the bytes through Python (Django's FileResponse)."""
    page = Page.objects.filter(pk=page_id).first()
    video = Video.objects.filter(pk=video_id).first()
    if page is None or video is None:
        return HttpResponseNotFound()
    if not can_watch(request, page.specific, video).allowed:
        return HttpResponseForbidden()
    response = FileResponse(video.file.storage.open(video.file.name, "rb"), content_type="video/mp4")
    # As when Django faces the viewer itself: nginx must not soak the file
    # up into its proxy buffers, so a slow viewer holds a worker.
    response["X-Accel-Buffering"] = "no"
    return response


urlpatterns = [
    path("bench/bare/", bare),
    path("bench/bare-user/", bare_user),
    path("bench/file/<int:page_id>/<int:video_id>/", file_response),
    *site_urlpatterns,
]
