"""Settings for the demo site that `make run` serves.

Every choice has a safe embedded default (SQLite, local private files, the
database task queue) and an environment variable for production. The video
apps' own settings have their defaults in each app's conf.py; this file sets
one only when its environment variable is given. Every variable and setting:
docs/settings.md.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_list, env_overrides, parse_bool, parse_size

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# Everything the running site writes (database, private files, static files,
# nginx runtime) lives below one folder, outside any public web root.
DATA_DIR = Path(os.environ.get("CMS_DATA_DIR", BASE_DIR / "var")).resolve()


def _secret_key():
    if key := os.environ.get("SECRET_KEY"):
        return key
    # Embedded setup: one random key per data folder, kept across restarts so
    # sessions survive; never a key committed to the repository.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "cms",
    "private_video",
    "media_access",
    "transcoding",
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_tasks",
    "django_tasks_db",
    "django_tasks_rq",
    "django_rq",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "cms.urls"
WSGI_APPLICATION = "cms.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
        # A kept connection the server dropped (a PostgreSQL restart) is
        # replaced before the next request uses it, instead of failing it.
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the task worker and management commands share one file:
    # WAL lets readers run beside the single writer, and the timeout waits out
    # short write locks instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", DATA_DIR / "static"))

# Public media: only Wagtail's own images and documents. Videos never go here.
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))

# Private files: video originals and renditions. Not under MEDIA_ROOT, not
# under any nginx public root; the storage refuses to build URLs.
PRIVATE_MEDIA_ROOT = Path(os.environ.get("PRIVATE_MEDIA_ROOT", DATA_DIR / "private"))
# The rendered nginx config reaches gunicorn on the socket deploy/gunicorn.conf.py binds.
MEDIA_ACCESS_NGINX_UPSTREAM = f"unix:{DATA_DIR / 'run' / 'gunicorn.sock'}"

STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    },
    "private": {
        "BACKEND": "private_video.storage.PrivateFileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT)},
    },
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    },
}

# storage: S3
# STORAGE=s3 keeps originals and renditions in a private bucket through
# django-storages' S3 backend. Viewers still never see a bucket URL:
# media_access answers with an X-Accel-Redirect that nginx proxies to a
# short-lived presigned URL (media_access/s3.py). Credentials come from the
# usual AWS environment variables (or an instance role), never from here.
STORAGE = os.environ.get("STORAGE", "local").strip().lower() or "local"
if STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured(f"STORAGE must be 'local' or 's3', not {STORAGE!r}.")
if STORAGE == "s3":
    if not os.environ.get("AWS_STORAGE_BUCKET_NAME"):
        raise ImproperlyConfigured("STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME (a private bucket).")
    # No ACL header by default: objects are as private as the bucket. Never public.
    _s3_acl = os.environ.get("AWS_DEFAULT_ACL") or None
    if _s3_acl not in (None, "private", "bucket-owner-full-control"):
        raise ImproperlyConfigured("AWS_DEFAULT_ACL may only be 'private' or 'bucket-owner-full-control'.")
    from botocore.config import Config as _BotoConfig

    _s3_addressing = os.environ.get("AWS_S3_ADDRESSING_STYLE") or None
    STORAGES["private"] = {
        "BACKEND": "private_video.storage.PrivateS3Storage",
        "OPTIONS": {
            "bucket_name": os.environ["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("AWS_S3_REGION_NAME") or None,
            "addressing_style": _s3_addressing,
            # botocore's defaults (60 s to connect, 60 s per read, 5 attempts)
            # let an unreachable bucket hold a web worker for minutes, past
            # gunicorn's timeout; these bound each call to about a minute.
            # (client_config replaces django-storages' own Config, so it
            # carries the addressing style and signature version too.)
            "client_config": _BotoConfig(
                s3={"addressing_style": _s3_addressing},
                signature_version="s3v4",
                connect_timeout=float(os.environ.get("AWS_S3_CONNECT_TIMEOUT", "5")),
                read_timeout=float(os.environ.get("AWS_S3_READ_TIMEOUT", "20")),
                retries={"mode": "standard", "total_max_attempts": int(os.environ.get("AWS_S3_MAX_ATTEMPTS", "3"))},
            ),
            "location": os.environ.get("AWS_LOCATION", ""),
            "default_acl": _s3_acl,
            "querystring_auth": True,
            "file_overwrite": False,
            "signature_version": "s3v4",
            "custom_domain": None,
        },
    }


# Uploads stream to a temporary file from the first byte: videos are large,
# and ffprobe needs a path to validate the content.
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = os.environ.get("FILE_UPLOAD_TEMP_DIR") or None
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
DATA_UPLOAD_MAX_NUMBER_FIELDS = 2000

TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": [],
    }
}

# Scale-out: `TRANSCODING_TASKS_BACKEND=django_tasks_rq.RQBackend` puts
# transcode jobs on Redis, for transcoder workers on any number of machines
# that share the database and storage.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL,
        # RQ kills a job after this; a full ladder of a long film takes hours.
        "DEFAULT_TIMEOUT": int(os.environ.get("RQ_JOB_TIMEOUT", str(12 * 3600))),
    }
}
# Transcoding on RQ: quick playable versions and full ladders on their own
# queues; transcoding workers read the playable queue first.
RQ_QUEUES["transcoding-playable"] = RQ_QUEUES["transcoding-ladder"] = RQ_QUEUES["default"]

WAGTAIL_SITE_NAME = os.environ.get("WAGTAIL_SITE_NAME", "Private video")
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILDOCS_EXTENSIONS = ["csv", "docx", "key", "odt", "pdf", "pptx", "rtf", "txt", "xlsx", "zip"]
WAGTAIL_FRONTEND_LOGIN_URL = "/login/"
LOGIN_URL = "/login/"

# Behind the bundled nginx: it sets X-Forwarded-Proto; trust it only when told.
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", str(365 * 24 * 3600)))
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "SAMEORIGIN"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "WARNING"},
        # Wagtail logs every page action at INFO; the admin's history has them.
        "wagtail": {"level": "WARNING"},
    },
}

# transcoding
# Transcode jobs have their own task backend so transcoder workers
# (`manage.py transcoding_worker`, the Procfile's "transcoder") can be run
# and scaled apart from the default queue.
TASKS["transcoding"] = {
    "BACKEND": os.environ.get("TRANSCODING_TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    "QUEUES": [],
}
# The ffmpeg slot locks, shared by every worker of this site's data folder.
TRANSCODING_LOCK_DIR = str(DATA_DIR / "transcoding-locks")

# The video apps' settings that production may give as environment variables
# (docs/settings.md). An absent variable leaves the app's default in place;
# with no nginx in front (runserver) set MEDIA_ACCESS_SERVE_MODE=django.
globals().update(
    env_overrides(
        {
            # private_video
            "PRIVATE_VIDEO_MAX_UPLOAD_SIZE": parse_size,
            "PRIVATE_VIDEO_UPLOAD_CHUNK_SIZE": parse_size,
            "PRIVATE_VIDEO_TUS_CHUNK_SIZE": parse_size,
            # transcoding
            "TRANSCODING_AUTO_ENQUEUE": parse_bool,
            "TRANSCODING_MAX_FFMPEG_PROCESSES": int,
            "TRANSCODING_LEASE_SECONDS": int,
            "TRANSCODING_X264_PRESET": str,
            "TRANSCODING_TEMP_DIR": str,
            # media_access
            "MEDIA_ACCESS_SERVE_MODE": str,
            "MEDIA_ACCESS_RESPONSE_BUILDER": str,
            "MEDIA_ACCESS_ACCEL_PREFIX": str,
            "MEDIA_ACCESS_ADMIN_MAX_BODY_SIZE": parse_size,
            "MEDIA_ACCESS_LOG_WINDOW": int,
            "MEDIA_ACCESS_TOKEN_LIFETIME": int,
            "MEDIA_ACCESS_TOKEN_SECRET": str,
            "MEDIA_ACCESS_TOKEN_URL_PREFIX": str,
            "MEDIA_ACCESS_S3_URL_LIFETIME": int,
            "MEDIA_ACCESS_S3_RESOLVER": str,
        }
    )
)
