"""The upload URLs, under the video viewset's /admin/videos/ (namespace
``private_video``). The admin views (in-progress list, cancel) and the S3
multipart views add theirs through their modules' ``urlpatterns``."""

import importlib

from django.urls import path

from . import tus


def urlpatterns():
    patterns = [
        path("uploads/tus/", tus.tus_create, name="tus_create"),
        path("uploads/tus/<uuid:upload_id>", tus.tus_upload, name="tus_upload"),
        path("uploads/<uuid:upload_id>/", tus.upload_status, name="upload_status"),
    ]
    for name in ("admin_views", "s3_multipart"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        patterns += list(getattr(module, "urlpatterns", []))
    return patterns
