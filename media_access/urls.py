from django.urls import path

from .views import serve

app_name = "media_access"
urlpatterns = [
    path("watch/<int:page_id>/<int:video_id>/<slug:rendition>/", serve.watch, name="watch"),
    # Without the slash too: HLS playlists name their siblings by relative
    # rendition name, which resolves against ".../<rendition>" URLs.
    path("watch/<int:page_id>/<int:video_id>/<slug:rendition>", serve.watch, name="watch_bare"),
    path(
        "watch/<int:page_id>/<int:video_id>/<slug:rendition>/download/",
        serve.download,
        name="download",
    ),
]
