from django.urls import path

from .views import serve

app_name = "media_access"
urlpatterns = [
    path(
        "watch/<int:page_id>/<int:video_id>/<slug:rendition>/",
        serve.watch,
        name="watch",
    ),
    path(
        "watch/<int:page_id>/<int:video_id>/<slug:rendition>/download/",
        serve.download,
        name="download",
    ),
]
