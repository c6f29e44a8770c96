from django.http import Http404
from django.urls import include, path, reverse
from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.admin.menu import MenuItem

from . import admin_urls, page_checks
from .policy import is_expired


@hooks.register("register_admin_urls")
def register_media_access_admin_urls():
    return [path("reports/video-playback/", include(admin_urls, namespace="media_access_reports"))]


class PlaybackReportMenuItem(MenuItem):
    def is_shown(self, request):
        return request.user.has_perm("private_video_access.view_playbacklogentry")


@hooks.register("register_reports_menu_item")
def register_playback_report_menu_item():
    return PlaybackReportMenuItem(
        _("Video playback"),
        reverse("media_access_reports:playback"),
        name="video-playback",
        icon_name="media",
        order=800,
    )


class WatchAnalyticsMenuItem(MenuItem):
    def is_shown(self, request):
        from private_video.permissions import video_permission_policy

        return video_permission_policy().user_has_permission(request.user, "change")


@hooks.register("register_reports_menu_item")
def register_watch_analytics_menu_item():
    return WatchAnalyticsMenuItem(
        _("Watch analytics"),
        reverse("media_access_reports:video_analytics_index"),
        name="watch-analytics",
        icon_name="media",
        order=810,
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


@hooks.register("before_serve_page")
def refuse_expired_page(page, request, serve_args, serve_kwargs):
    """A page past its ``expire_at`` is gone at once, as its videos are
    (``policy.is_expired``), not only when ``publish_scheduled`` next runs."""
    if is_expired(page):
        raise Http404


# A viewer grant that allows downloads needs change permission on the page's videos.
hooks.register("clean_video_page_form", page_checks.refuse_download_grants_without_change)
hooks.register("check_video_page_revert", page_checks.refuse_download_grants_in_revert)
hooks.register("check_video_page_copy", page_checks.refuse_download_grants_in_copy)


@hooks.register("transcoding_signed_url_lifetime")
def signed_url_lifetime():
    """Transcoding keeps a replaced rendition file while a signed URL to it may be valid."""
    from .tokens import token_lifetime

    return token_lifetime()


def video_analytics_panel(request, video):
    """The video edit view's link to its watch analytics (the library's ``insert_video_edit_panels``)."""
    from .views.analytics import analytics_panel

    return analytics_panel(request, video)


hooks.register("insert_video_edit_panels", video_analytics_panel)


@hooks.register("render_video_player")
def render_video_player(context, page, video):
    """The library's ``{% video_player %}`` (its block, a site's templates)
    renders media_access's player, which asks the policy for this viewer."""
    from django.template.loader import render_to_string

    return render_to_string(
        "media_access/player.html", {"page": page, "video": video}, request=context.get("request")
    )
