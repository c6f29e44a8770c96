from django.urls import include, path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from . import admin_urls


@hooks.register("register_admin_urls")
def register_media_access_admin_urls():
    return [path("reports/video-playback/", include(admin_urls, namespace="media_access_reports"))]


class PlaybackReportMenuItem(MenuItem):
    def is_shown(self, request):
        return request.user.has_perm("media_access.view_playbacklogentry")


@hooks.register("register_reports_menu_item")
def register_playback_report_menu_item():
    return PlaybackReportMenuItem(
        _("Video playback"),
        reverse("media_access_reports:playback"),
        name="video-playback",
        icon_name="media",
        order=800,
    )


@hooks.register("register_log_actions")
def register_grant_log_actions(actions):
    actions.register_action(
        "media_access.grant_add", _("Grant viewer access"), _("Viewer access granted")
    )
    actions.register_action(
        "media_access.grant_change", _("Change viewer access"), _("Viewer access changed")
    )
    actions.register_action(
        "media_access.grant_revoke", _("Revoke viewer access"), _("Viewer access revoked")
    )
