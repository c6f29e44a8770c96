from django.urls import path

from .views.analytics import video_analytics, video_analytics_index
from .views.reports import PlaybackReportView

app_name = "media_access_reports"
urlpatterns = [
    path("playback/", PlaybackReportView.as_view(), name="playback"),
    path("playback/results/", PlaybackReportView.as_view(results_only=True), name="playback_results"),
    # Watch analytics of one video (for users who may change it).
    path("videos/<int:video_id>/analytics/", video_analytics, name="video_analytics"),
    path("videos/analytics/", video_analytics_index, name="video_analytics_index"),
]
