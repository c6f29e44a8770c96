"""System checks for the video library: what would otherwise be a traceback
at the first upload or playback, or a private file a web server publishes.
Ids are ``private_video.<E|W>0xx``; none of them raises, whatever the settings.

- E001  STORAGES has no "private" entry (or it cannot be built)
- E002  the private storage is public (under MEDIA_ROOT/STATIC_ROOT, or it has a URL)
- E003  ffprobe is not on PATH (uploads cannot be validated)
- E004  PRIVATE_VIDEO_MODEL names no usable video model
- E005  the upload staging folder is public (under MEDIA_ROOT/STATIC_ROOT)
- W001  a page type holds videos without VideoChoicePageForm (its videos are not served)
- W002  the private bucket's CORS rule does not let the admin's browser PUT upload parts
        (only when the private storage is S3: it reads GetBucketCors; docs/s3.md)
"""

import shutil
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

ID = "private_video.{}"
INSTALL_HINT = "docs/install.md has the settings block"


def _private_storage_or_error():
    """(storage, None) or (None, the E001 error)."""
    from .storage import PRIVATE_STORAGE_ALIAS, configured_private_storage

    if PRIVATE_STORAGE_ALIAS not in (getattr(settings, "STORAGES", None) or {}):
        return None, Error(
            'STORAGES has no "private" entry: the video library keeps video originals and renditions there.',
            hint='Add STORAGES["private"] = {"BACKEND": "private_video.storage.PrivateFileSystemStorage", '
            '"OPTIONS": {"location": "<a folder outside MEDIA_ROOT and STATIC_ROOT>"}} '
            f"(or PrivateS3Storage for a private bucket); {INSTALL_HINT}.",
            id=ID.format("E001"),
        )
    try:
        return configured_private_storage(), None
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return None, Error(
            f'STORAGES["private"] cannot be built: {exc}',
            hint=f'Check its "BACKEND" and "OPTIONS"; {INSTALL_HINT}.',
            id=ID.format("E001"),
        )


def _public_roots():
    for name in ("MEDIA_ROOT", "STATIC_ROOT"):
        value = getattr(settings, name, None)
        if value:
            yield name, Path(value).resolve()
    # collectstatic copies the static source folders (STATICFILES_DIRS, every
    # app's static/) into STATIC_ROOT: a private folder in one is published too.
    yield from _static_source_folders()


def _static_source_folders():
    from django.apps import apps

    if not apps.is_installed("django.contrib.staticfiles"):
        return
    from django.contrib.staticfiles.finders import get_finders

    try:
        finders = list(get_finders())
    except Exception:  # noqa: BLE001 - staticfiles' own checks report a bad finder setting
        return
    for finder in finders:
        for key, storage in (getattr(finder, "storages", None) or {}).items():
            location = getattr(storage, "location", None)
            if location:
                label = "STATICFILES_DIRS" if type(finder).__name__ == "FileSystemFinder" else f"the static folder of app {key!r}"
                yield f"{label} (collectstatic copies it into STATIC_ROOT)", Path(location).resolve()


def _publicity(storage):
    """Why ``storage`` would let files out without media_access, or None."""
    from django.core.files.storage import FileSystemStorage

    if isinstance(storage, FileSystemStorage):
        location = Path(storage.location).resolve()
        for name, root in _public_roots():
            if location == root or location.is_relative_to(root):
                return f"its location {location} is inside {name} ({root}), which the web server publishes"
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:
        S3Storage = None
    if S3Storage is not None and isinstance(storage, S3Storage):
        if storage.custom_domain:
            return f"it serves objects from the custom domain {storage.custom_domain!r}"
        if not storage.querystring_auth:
            return "its objects are addressed without signatures (querystring_auth is off)"
        if storage.default_acl not in (None, "private", "bucket-owner-full-control"):
            return f"it uploads objects with the ACL {storage.default_acl!r}"
    try:
        url = storage.url("videos/check/original.mp4")
    except NotImplementedError:
        return None
    except Exception:  # noqa: BLE001 - no working URL (e.g. no credentials here): not public
        return None
    return f"it hands out URLs ({url!r}) that skip the access policy"


@register(Tags.files)
def check_private_storage(app_configs, **kwargs):
    """E001: no private storage; E002: a private storage that is public."""
    storage, error = _private_storage_or_error()
    if error is not None:
        return [error]
    reason = _publicity(storage)
    if reason is None:
        return []
    return [Error(
        f'STORAGES["private"] is public: {reason}.',
        hint="Use private_video.storage.PrivateFileSystemStorage with a location outside MEDIA_ROOT and "
        "STATIC_ROOT (and outside any folder the web server serves), or private_video.storage.PrivateS3Storage "
        f"on a private bucket; both refuse url(). {INSTALL_HINT}.",
        id=ID.format("E002"),
    )]


@register(Tags.files)
def check_upload_staging(app_configs, **kwargs):
    """E005: resumable uploads are received where the web server publishes
    files (half an upload, then the whole one, until it is moved into storage)."""
    from .uploads.staging import staging_path

    try:
        folder = staging_path().resolve()
    except Exception:  # noqa: BLE001 - a setting that is no path: reported, not raised
        return [Error(
            "PRIVATE_VIDEO_UPLOAD_STAGING_DIR is not a folder path.",
            hint="A private folder outside MEDIA_ROOT and STATIC_ROOT, or None (docs/settings.md).",
            id=ID.format("E005"),
        )]
    for name, root in _public_roots():
        if folder == root or folder.is_relative_to(root):
            return [Error(
                f"The upload staging folder {folder} is inside {name} ({root}), which the web server publishes: "
                "uploads would be readable there before they are checked and stored.",
                hint="Set PRIVATE_VIDEO_UPLOAD_STAGING_DIR to a private folder outside MEDIA_ROOT and STATIC_ROOT "
                "(or leave it None: beside the private storage's folder).",
                id=ID.format("E005"),
            )]
    return []


@register()
def check_ffprobe(app_configs, **kwargs):
    """Every upload is validated by ffprobe: without it every upload is refused."""
    if shutil.which("ffprobe"):
        return []
    return [Error(
        "ffprobe was not found on PATH: no upload can be validated, so every video upload is refused.",
        hint="Install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg; it includes ffprobe) on every host "
        "that runs the web server, and make sure it is on the PATH of its process.",
        id=ID.format("E003"),
    )]


@register(Tags.models)
def check_video_model(app_configs, **kwargs):
    from . import video_model_problem
    from .conf import DEFAULTS

    problem = video_model_problem()
    if problem is None:
        return []
    return [Error(
        problem,
        hint=f"Set PRIVATE_VIDEO_MODEL to {DEFAULTS['MODEL']!r} (the default) or to your own subclass of "
        "private_video.models.AbstractVideo, in an installed app, before its first migrate.",
        id=ID.format("E004"),
    )]


@register(Tags.models)
def check_page_types_check_video_choices(app_configs, **kwargs):
    """W001: a page type that holds videos without VideoChoicePageForm. Wagtail's
    own page form takes any video id, so media_access serves none of its videos."""
    from wagtail.models import get_page_models

    from . import video_model_problem
    from .page_forms import checks_video_choices

    if video_model_problem():
        return []
    warnings = []
    for model in get_page_models():
        if model._meta.abstract or not _holds_video_fields(model) or checks_video_choices(model):
            continue
        warnings.append(Warning(
            f"The page type {model._meta.label} holds videos, but its admin form does not check that the "
            "editor may choose them: media_access serves none of its videos.",
            hint="Mix in private_video.pages.VideoPageMixin (or give its edit handler "
            f"base_form_class=private_video.page_forms.VideoChoicePageForm); {INSTALL_HINT} (step 5).",
            obj=model,
            id=ID.format("W001"),
        ))
    return warnings


def _holds_video_fields(model):
    """A foreign key or many-to-many field to the video model, a video chooser
    anywhere in a StreamField, or the same in its inline children."""
    from django.db.models import ForeignKey
    from modelcluster.models import get_all_child_relations
    from wagtail.fields import StreamField

    from . import get_video_model

    video_model = get_video_model()
    for field in model._meta.get_fields():
        if isinstance(field, StreamField):
            if _block_chooses_videos(field.stream_block):
                return True
        elif (isinstance(field, ForeignKey) or (field.many_to_many and not field.auto_created)) and isinstance(
            field.related_model, type
        ) and issubclass(field.related_model, video_model):
            return True
    return any(_holds_video_fields(relation.related_model) for relation in get_all_child_relations(model))


def _block_chooses_videos(block):
    from .blocks import is_video_chooser

    if is_video_chooser(block):
        return True
    children = list(getattr(block, "child_blocks", {}).values())
    if getattr(block, "child_block", None) is not None:
        children.append(block.child_block)
    return any(_block_chooses_videos(child) for child in children)


@register(Tags.files, "private_video_s3")
def check_bucket_cors(app_configs, **kwargs):
    """W002: browsers PUT multipart upload parts straight to the private
    bucket (uploads.s3_multipart), which S3 allows only if the bucket's CORS
    rule lets the site's origin PUT and shows the browser each part's ETag.
    Only with an S3 private storage (no network otherwise); one GetBucketCors
    with the storage's own client."""
    from .uploads.s3_multipart import s3_storage

    try:
        storage = s3_storage()
    except Exception:  # noqa: BLE001 - E001 reports a storage that cannot be built
        return []
    if storage is None:
        return []
    from .uploads.s3_multipart import cors_problem

    problem = cors_problem(storage, getattr(settings, "WAGTAILADMIN_BASE_URL", "") or "")
    if problem is None:
        return []
    return [Warning(
        f"Uploads straight to the private bucket {storage.bucket_name!r} will fail in the browser: {problem}.",
        hint="Give the bucket a CORS rule with AllowedOrigins [your site's origin, as in WAGTAILADMIN_BASE_URL], "
        'AllowedMethods ["PUT"], AllowedHeaders ["Content-Type"], ExposeHeaders ["ETag"] '
        "(docs/s3.md, 'Multipart uploads: the bucket's CORS rule').",
        id=ID.format("W002"),
    )]
