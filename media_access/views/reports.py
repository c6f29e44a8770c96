from django.utils.translation import gettext_lazy as _
from wagtail.admin.ui.tables import BooleanColumn, Column, DateColumn
from wagtail.admin.views.reports import ReportView
from wagtail.permission_policies import ModelPermissionPolicy

from private_video.spreadsheets import CsvFormulaGuardMixin

from ..models import PlaybackLogEntry


class PlaybackReportView(CsvFormulaGuardMixin, ReportView):
    """Who watched (or was refused) which video on which page, once per session.
    No CSV cell starts a formula (page and video titles are editors' text)."""

    page_title = _("Video playback")
    header_icon = "media"
    index_url_name = "media_access_reports:playback"
    index_results_url_name = "media_access_reports:playback_results"
    model = PlaybackLogEntry
    permission_policy = ModelPermissionPolicy(PlaybackLogEntry)
    permission_required = "view"
    columns = [
        DateColumn("started_at", label=_("Started")),
        Column("username", label=_("User")),
        Column("page_title", label=_("Page")),
        Column("video_title", label=_("Video")),
        Column("rendition", label=_("Rendition")),
        BooleanColumn("allowed", label=_("Allowed")),
        Column("reason", label=_("Reason")),
    ]
    list_export = ["started_at", "username", "page_id", "page_title", "video_id", "video_title",
                   "rendition", "allowed", "reason"]

    def get_queryset(self):
        return PlaybackLogEntry.objects.order_by("-started_at", "-pk")

    def get_filename(self):
        return "video-playback"
