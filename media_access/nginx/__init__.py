"""Rendering the bundled nginx config from settings.

The same template serves `make run`, the integration tests and production,
so what is tested is what is shipped.
"""

import os
import pwd
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Engine
from django.urls import reverse

from private_video import layout
from private_video.storage import private_storage
from private_video.conf import setting as private_video_setting
from private_video.validation import max_upload_request_size

from .. import s3, tokens
from ..conf import setting
from ..responses import NOT_AN_NGINX_STORAGE, accel_prefix

# Shipped inside the package (deploy/nginx/site.conf.template links here).
TEMPLATE_PATH = Path(__file__).resolve().parent / "site.conf.template"
# Request bodies anywhere but the admin: login forms, page passwords.
SITE_BODY_LIMIT = 1024 * 1024
# The video library's upload endpoints, the only URLs that take a video-sized
# body: the upload view, the chooser's upload tab, and the edit view (its
# form replaces the file). By URL name; the site decides where the admin lives.
VIDEO_UPLOAD_URLS = ("private_video:add", "private_video_chooser:create")
VIDEO_REPLACE_URLS = ("private_video:edit",)
# nginx workers when the master runs as root: the first of these that exists.
UNPRIVILEGED_USERS = ("www-data", "nginx", "nobody")


def private_root(storage=None):
    """The folder nginx's internal location reads private files from, or
    None when they are not local files (a bucket)."""
    storage = storage or private_storage()
    if not hasattr(storage, "nginx_root"):
        raise ImproperlyConfigured(NOT_AN_NGINX_STORAGE)
    root = storage.nginx_root()
    return Path(root) if root else None


def default_runtime_dir(output=None):
    """nginx's pid and temp files: MEDIA_ACCESS_NGINX_RUNTIME_DIR, else beside
    the rendered config, else ./nginx."""
    configured = setting("NGINX_RUNTIME_DIR")
    if configured:
        return Path(configured)
    if output:
        return Path(output).resolve().parent
    return Path.cwd() / "nginx"


def nginx_context(**overrides):
    runtime_dir = Path(overrides.pop("runtime_dir", None) or default_runtime_dir())
    storage = private_storage()
    root = private_root(storage)
    context = {
        "standalone": True,
        "worker_processes": "auto",
        "runtime_dir": runtime_dir,
        "error_log": "stderr",
        "access_log": "/dev/stdout",
        # A master started as root hands the requests to workers running as
        # an unprivileged user, who read the files through a shared group
        # (docs/deploy.md, "Files and who may read them"); not root, nginx
        # cannot switch and ignores it.
        "user": default_worker_user(),
        "mime_types": setting("NGINX_MIME_TYPES"),
        "listen": setting("NGINX_LISTEN"),
        "server_name": setting("NGINX_SERVER_NAME"),
        # Production TLS (HTTP/2); empty keeps plain HTTP (make run, tests).
        "tls_certificate": "",
        "tls_certificate_key": "",
        "http_listen": "80",
        "upstream_name": "django_app",
        "upstream": setting("NGINX_UPSTREAM"),
        "static_root": Path(settings.STATIC_ROOT) if settings.STATIC_ROOT else None,
        "media_root": Path(settings.MEDIA_ROOT) if settings.MEDIA_ROOT else None,
        # Folders of MEDIA_ROOT that only Django may hand out (Wagtail's documents).
        "private_media_folders": private_media_folders(),
        # Local private files (None: in a bucket, reached through the S3 location).
        "private_root": root,
        "private_location": accel_prefix(),
        "site_body_limit": SITE_BODY_LIMIT,
        "app_locations": app_locations(),
        # Where nginx asks whether a POST to an upload URL may send its body.
        "upload_gate_path": _nginx_path(reverse("media_access:upload_gate")),
        # media_access: HLS - nginx checks the signed rendition URLs with this secret.
        "token_url_prefix": tokens.url_prefix(),
        # The storage layout the signed URLs may reach (private_video.layout).
        "renditions_prefix_pattern": layout.RENDITIONS_PREFIX_PATTERN,
        "rendition_file_pattern": layout.RENDITION_FILE_PATTERN,
        "token_secret": tokens.token_secret(),
        # ... and binds them to this cookie (a name nginx reads as $cookie_<name>) when it holds a valid value.
        "viewer_cookie": tokens.viewer_cookie_name(),
        "viewer_pattern": tokens.VIEWER_PATTERN,
        # storage: S3 - the bucket endpoint nginx proxies presigned requests to (None: local files).
        "s3": s3.nginx_context(storage) if root is None else None,
    }
    context.update(overrides)
    return context


_MEDIA_FOLDER = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*$")


def private_media_folders():
    """The folders under MEDIA_ROOT that nginx must not publish at /media/:
    Wagtail's documents, which its own view (/documents/<id>/<name>) hands
    out after their collection's privacy, unless the site hands out the
    file's own URL: ``WAGTAILDOCS_SERVE_METHOD = "direct"`` (no privacy
    anyway) or ``"redirect"`` (the view checks the privacy, then redirects
    to /media/documents/<name>, which must answer)."""
    from django.apps import apps

    method = getattr(settings, "WAGTAILDOCS_SERVE_METHOD", None)
    if not apps.is_installed("wagtail.documents") or method in ("direct", "redirect"):
        return []
    from wagtail.documents import get_document_model

    upload_to = get_document_model()._meta.get_field("file").upload_to
    folder = upload_to.strip("/") if isinstance(upload_to, str) else ""
    return [folder if _MEDIA_FOLDER.match(folder) and ".." not in folder.split("/") else "documents"]


def app_locations():
    """The locations proxied to Django, most specific first, each with its body limit."""
    # The same figure the upload views check the Content-Length against.
    video_limit = max_upload_request_size()
    admin_limit = setting("ADMIN_MAX_BODY_SIZE")
    locations = [
        {"match": f"= {_nginx_path(reverse(name))}", "body_limit": video_limit, "upload": True}
        for name in VIDEO_UPLOAD_URLS
    ]
    for name in VIDEO_REPLACE_URLS:
        # Any object id: reverse with a marker, then make the marker a digit run.
        marker = 918273645
        pattern = re.escape(_nginx_path(reverse(name, args=[marker]))).replace(str(marker), "[0-9]+")
        locations.append({"match": f"~ ^{pattern}$", "body_limit": video_limit, "upload": True})
    # Resumable (tus) uploads: bounded chunks streamed to Django as they
    # arrive (proxy_request_buffering off), never a whole file in one body.
    locations.insert(0, {
        "match": f"^~ {_nginx_path(reverse('private_video:tus_create'))}",
        "body_limit": tus_body_limit(), "upload": True, "stream": True,
    })
    locations.append({"match": _nginx_path(reverse("wagtailadmin_home")), "body_limit": admin_limit})
    locations.append({"match": "/", "body_limit": None})
    return locations


def tus_body_limit():
    """nginx's body limit on the tus URLs: one chunk (PRIVATE_VIDEO_TUS_CHUNK_SIZE) and 1 MiB of slack."""
    return private_video_setting("TUS_CHUNK_SIZE") + 1024 * 1024


def _nginx_path(path):
    if not re.fullmatch(r"/[A-Za-z0-9._~/-]*", path):
        raise ImproperlyConfigured(f"The admin URL {path!r} cannot be written into the nginx config.")
    return path


def default_worker_user():
    if os.geteuid() != 0:
        return ""
    for name in UNPRIVILEGED_USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ImproperlyConfigured(
        "No unprivileged user for nginx's workers: create www-data, or pass --user."
    )


def render_nginx_config(**overrides):
    engine = Engine(autoescape=False)
    template = engine.from_string(TEMPLATE_PATH.read_text())
    return template.render(Context(nginx_context(**overrides), autoescape=False))
