from django.urls import path

from . import views

app_name = "private_video_transcoding"
urlpatterns = [
    path("<int:pk>/rerun/", views.rerun_transcode, name="rerun"),
    path("<int:pk>/processing/", views.processing_status, name="processing_status"),
]
