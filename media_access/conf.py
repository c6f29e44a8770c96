"""media_access's settings and their defaults: the one table (docs/settings.md
documents every entry). Read them with ``setting("NAME")``; the Django setting
is ``MEDIA_ACCESS_<NAME>``. Nothing here is read at import time, so a missing
or invalid setting never breaks an import: ``checks.py`` reports it."""

from django.conf import settings
from django.core.signals import setting_changed

PREFIX = "MEDIA_ACCESS_"

DEFAULTS = {
    # How an allowed request is answered: "xaccel" (nginx sends the bytes) or "django" (Python streams them).
    "SERVE_MODE": "xaccel",
    # A response builder class (dotted path) that replaces SERVE_MODE's; empty: SERVE_MODE decides.
    "RESPONSE_BUILDER": "",
    # The nginx internal location X-Accel-Redirect points into for local files.
    "ACCEL_PREFIX": "/_private/",
    # The nginx internal location that proxies to presigned S3 URLs.
    "S3_ACCEL_PREFIX": "/_s3/",
    # Seconds a presigned S3 URL handed to nginx stays valid (nginx uses it at once).
    "S3_URL_LIFETIME": 60,
    # DNS resolver nginx uses for an S3 endpoint given by host name; empty: /etc/resolv.conf's.
    "S3_RESOLVER": "",
    # Extra or overriding extension -> Content-Type pairs for served files, e.g. {".ogv": "video/ogg"}.
    "CONTENT_TYPES": {},
    # Seconds a signed rendition URL (HLS segment, poster, caption) stays valid.
    "TOKEN_LIFETIME": 300,
    # The secret nginx checks signed URLs with (32+ of A-Z a-z 0-9 _ -); empty: derived from SECRET_KEY.
    "TOKEN_SECRET": "",
    # The URL prefix of signed rendition URLs (one plain path segment).
    "TOKEN_URL_PREFIX": "/stream/",
    # The cookie a signed URL is bound to (one random value per browser; nginx reads $cookie_<name>).
    "VIEWER_COOKIE": "pv_viewer",
    # A session's playback of a video on a page is logged once in this many seconds.
    "LOG_WINDOW": 30 * 60,
    # Days a playback-log entry is kept (delete_playback_log).
    "PLAYBACK_LOG_RETENTION_DAYS": 365,
    # Days a viewing's watch analytics are kept after its last beacon (delete_watch_analytics).
    "ANALYTICS_RETENTION_DAYS": 365,
    # New viewings (player sessions) one viewer may start of one video an hour; more are merged into the latest.
    "ANALYTICS_VIEWINGS_PER_HOUR": 20,
    # Allowed decisions remembered per process (0: none).
    "DECISION_CACHE_SIZE": 10_000,
    # Seconds a remembered decision is used at most.
    "DECISION_CACHE_TTL": 300,
    # Published playlists and storyboard cue lists kept in memory per process, by storage name.
    "PUBLISHED_TEXT_CACHE_SIZE": 512,
    # ... and at most this many characters of them in all, per process.
    "PUBLISHED_TEXT_CACHE_CHARS": 16 * 1024 * 1024,
    # nginx's request body limit on the admin (Wagtail image and document uploads), in bytes.
    "ADMIN_MAX_BODY_SIZE": 32 * 1024 * 1024,
    # Where the rendered nginx config listens (render_nginx_config --listen).
    "NGINX_LISTEN": "127.0.0.1:8000",
    # nginx's server_name (render_nginx_config --server-name).
    "NGINX_SERVER_NAME": "_",
    # Where nginx reaches the site's gunicorn: "host:port" or "unix:/path" (render_nginx_config --upstream).
    "NGINX_UPSTREAM": "127.0.0.1:8001",
    # nginx's pid and temp files; None: the folder of render_nginx_config --output (else ./nginx).
    "NGINX_RUNTIME_DIR": None,
    # The mime.types file the standalone config includes.
    "NGINX_MIME_TYPES": "/etc/nginx/mime.types",
}


# name -> value, read once per process: every media request reads several,
# and a missing Django setting costs an AttributeError each time. Emptied on
# setting_changed (override_settings in tests); settings do not change while
# a server runs.
_values = {}


def setting(name):
    try:
        return _values[name]
    except KeyError:
        value = _values[name] = getattr(settings, PREFIX + name, DEFAULTS[name])
        return value


def _forget(**kwargs):
    _values.clear()


setting_changed.connect(_forget, dispatch_uid="media_access_conf_forget")
