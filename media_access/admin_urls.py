from django.urls import path

from .views.reports import PlaybackReportView

app_name = "media_access_reports"
urlpatterns = [
    path("playback/", PlaybackReportView.as_view(), name="playback"),
    path("playback/results/", PlaybackReportView.as_view(results_only=True), name="playback_results"),
]
