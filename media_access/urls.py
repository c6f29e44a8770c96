import re

from django.urls import path, re_path

from private_video import layout

from .conf import setting
from .tokens import valid_url_prefix
from .views import analytics, playback, serve, signed, upload_gate

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
    path("playback/<int:page_id>/<int:video_id>/chapters.vtt", playback.chapters, name="chapters"),
    path("playback/<int:page_id>/<int:video_id>/position/", playback.save_position, name="playback_position"),
    # media_access: watch analytics - the player's played ranges (views/analytics.py).
    path("playback/<int:page_id>/<int:video_id>/watched/", analytics.watch_beacon, name="watch_beacon"),
    # nginx's auth_request before it reads a video upload's body.
    path("_upload-gate/", upload_gate.upload_gate, name="upload_gate"),
]

# storage: S3 - signed rendition files nginx checked but cannot presign
# (and every signed URL when no nginx is in front); the view checks the token again.
# An invalid MEDIA_ACCESS_TOKEN_URL_PREFIX leaves the route out (the system
# check private_video_access.E002 names it) instead of breaking the import.
_token_url_prefix = setting("TOKEN_URL_PREFIX")
if valid_url_prefix(_token_url_prefix):
    urlpatterns.append(re_path(
        r"^" + re.escape(_token_url_prefix.lstrip("/"))
        + r"(?P<token>[A-Za-z0-9_-]{22})/(?P<expires>[0-9]{1,12})/(?P<name>" + layout.RENDITIONS_PREFIX_PATTERN + r".+)$",
        signed.rendition_file,
        name="signed_file",
    ))
