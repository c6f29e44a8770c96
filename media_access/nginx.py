"""Rendering the bundled nginx config from settings.

The same template serves `make run`, the integration tests and production,
so what is tested is what is shipped.
"""

import getpass
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Engine

from . import s3, tokens

TEMPLATE_PATH = Path(settings.BASE_DIR) / "deploy" / "nginx" / "site.conf.template"
# Multipart envelope and form fields on top of the largest allowed file.
_UPLOAD_OVERHEAD = 16 * 1024 * 1024


def nginx_context(**overrides):
    data_dir = Path(settings.DATA_DIR)
    runtime_dir = Path(overrides.pop("runtime_dir", data_dir / "nginx"))
    context = {
        "standalone": True,
        "worker_processes": "auto",
        "runtime_dir": runtime_dir,
        "error_log": "stderr",
        "access_log": "/dev/stdout",
        # Running as root (make run in a container): keep workers as this
        # user so they can read the private files gunicorn wrote.
        "user": getpass.getuser() if os.geteuid() == 0 else "",
        "mime_types": "/etc/nginx/mime.types",
        "listen": "127.0.0.1:8000",
        "server_name": "_",
        # Production TLS (HTTP/2); empty keeps plain HTTP (make run, tests).
        "tls_certificate": "",
        "tls_certificate_key": "",
        "http_listen": "80",
        "upstream_name": "django_app",
        "upstream": f"unix:{data_dir / 'run' / 'gunicorn.sock'}",
        "static_root": Path(settings.STATIC_ROOT),
        "media_root": Path(settings.MEDIA_ROOT),
        "private_root": Path(settings.PRIVATE_MEDIA_ROOT),
        "private_location": _accel_prefix(),
        "client_max_body_size": settings.CMS_VIDEO_MAX_UPLOAD_SIZE + _UPLOAD_OVERHEAD,
        # media_access: HLS - nginx checks the signed rendition URLs with this secret.
        "token_url_prefix": tokens.url_prefix(),
        "token_secret": tokens.token_secret(),
        # storage: S3 - the bucket endpoint nginx proxies presigned requests to (None: local files).
        "s3": s3.nginx_context(),
    }
    context.update(overrides)
    return context


def render_nginx_config(**overrides):
    engine = Engine(autoescape=False)
    template = engine.from_string(TEMPLATE_PATH.read_text())
    return template.render(Context(nginx_context(**overrides)))


def _accel_prefix():
    prefix = getattr(settings, "MEDIA_ACCESS_ACCEL_PREFIX", "/_private/")
    if not (prefix.startswith("/") and prefix.endswith("/")) or any(c in prefix for c in " ;{}\"'"):
        raise ImproperlyConfigured(
            "MEDIA_ACCESS_ACCEL_PREFIX must be a plain path that starts and ends with '/'."
        )
    return prefix
