"""Transcoding's admin UI, plugged into the video library's views."""

from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from wagtail import hooks

from . import admin_urls, posters, views


@hooks.register("register_log_actions")
def register_transcoding_log_actions(actions):
    actions.register_action("transcoding.rerun", _("Re-run processing"), _("Re-ran video processing"))


@hooks.register("register_admin_urls")
def register_transcoding_admin_urls():
    return [path("video-processing/", include(admin_urls, namespace="private_video_transcoding"))]


@hooks.register("register_video_listing_columns")
def register_status_column():
    return [views.StatusColumn("status", label=_("Status"))]


@hooks.register("construct_video_listing_queryset")
def prefetch_jobs(queryset, request):
    return queryset.prefetch_related("transcode_jobs")


hooks.register("insert_video_edit_panels", views.processing_panel)
hooks.register("extract_video_frame", posters.extract_video_frame)
