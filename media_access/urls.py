from django.urls import path

from .views import playback, serve

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
    # media_access: HLS - the player's description and the signed playlists.
    path("playback/<int:page_id>/<int:video_id>/", playback.playback, name="playback"),
    path("hls/<int:page_id>/<int:video_id>/<slug:name>.m3u8", playback.playlist, name="hls_playlist"),
]
