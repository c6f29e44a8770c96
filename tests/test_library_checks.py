"""The video library's system checks (private_video.E001-E005): a
misconfigured site gets a message with an id and a hint, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.files.storage import FileSystemStorage

from private_video import checks
from private_video.storage import PrivateFileSystemStorage, PrivateS3Storage

REPO = Path(__file__).resolve().parent.parent


def ids(errors):
    return [error.id for error in errors]


def _with_private(settings, backend, **options):
    settings.STORAGES = {**settings.STORAGES, "private": {"BACKEND": backend, "OPTIONS": options}}


# --- E001: no private storage -----------------------------------------------------------


def test_no_private_storage_is_e001(settings):
    settings.STORAGES = {k: v for k, v in settings.STORAGES.items() if k != "private"}
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E001"]
    assert 'STORAGES has no "private" entry' in errors[0].msg
    assert "docs/install.md" in errors[0].hint


def test_unbuildable_private_storage_is_e001(settings):
    _with_private(settings, "private_video.storage.NoSuchStorage")
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E001"]
    assert "cannot be built" in errors[0].msg and "NoSuchStorage" in errors[0].msg


def _manage_check(tmp_path, settings_source):
    """``manage.py check`` under a settings module written for the test."""
    (tmp_path / "h1_check_settings.py").write_text(settings_source)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}",
           "DJANGO_SETTINGS_MODULE": "h1_check_settings"}
    return subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "check"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120,
    )


def test_manage_check_without_private_storage_prints_e001_not_a_traceback(tmp_path):
    """The issue's first symptom: a site with the apps but no STORAGES["private"]."""
    result = _manage_check(tmp_path, (
        "from cms.settings.test import *  # noqa\n"
        "STORAGES = {k: v for k, v in STORAGES.items() if k != 'private'}\n"
    ))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "InvalidStorageError" not in output, output
    assert "(private_video.E001)" in output, output
    assert "HINT:" in output


def test_manage_check_with_a_model_that_is_no_video_model_prints_e004_not_a_traceback(tmp_path):
    """Nothing that loads (apps, models, admin hooks, URLs) asks for the model before the check speaks."""
    result = _manage_check(tmp_path, (
        "from cms.settings.test import *  # noqa\n"
        "PRIVATE_VIDEO_MODEL = 'auth.User'\n"
    ))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output, output
    assert "(private_video.E004) PRIVATE_VIDEO_MODEL refers to 'auth.User'" in output, output


# --- E005: an upload staging folder the web server publishes --------------------------------


def test_the_default_staging_folder_passes(settings):
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = None
    assert checks.check_upload_staging(None) == []


@pytest.mark.parametrize("root_setting", ["MEDIA_ROOT", "STATIC_ROOT"])
@pytest.mark.parametrize("inside", ["", "uploads/staging"])
def test_a_staging_folder_in_a_public_root_is_e005_and_nothing_is_made(settings, tmp_path, root_setting, inside):
    public = tmp_path / "public"
    setattr(settings, root_setting, str(public))
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(public / inside) if inside else str(public)
    errors = checks.check_upload_staging(None)
    assert ids(errors) == ["private_video.E005"]
    assert f"inside {root_setting}" in errors[0].msg and "PRIVATE_VIDEO_UPLOAD_STAGING_DIR" in errors[0].hint
    assert not public.exists()  # the check only looks
    assert "private_video.E005" in ids(run_checks())


def test_a_private_staging_folder_beside_a_public_root_passes(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PRIVATE_VIDEO_UPLOAD_STAGING_DIR = str(tmp_path / "media-staging")
    assert checks.check_upload_staging(None) == []


# --- E002: a private storage that is public --------------------------------------------


def test_the_configured_private_storage_passes(settings):
    assert checks.check_private_storage(None) == []


@pytest.mark.parametrize("root_setting", ["MEDIA_ROOT", "STATIC_ROOT"])
def test_private_storage_under_a_public_root_is_e002(settings, tmp_path, root_setting):
    setattr(settings, root_setting, str(tmp_path / "public"))
    _with_private(settings, "private_video.storage.PrivateFileSystemStorage",
                  location=str(tmp_path / "public" / "videos-private"))
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E002"]
    assert f"inside {root_setting}" in errors[0].msg


def test_private_storage_equal_to_media_root_is_e002(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    _with_private(settings, "private_video.storage.PrivateFileSystemStorage", location=str(tmp_path / "media"))
    assert ids(checks.check_private_storage(None)) == ["private_video.E002"]


def test_private_storage_with_a_url_is_e002(settings, tmp_path):
    """A plain FileSystemStorage answers url() (MEDIA_URL or its base_url): every file would have a link."""
    _with_private(settings, "django.core.files.storage.FileSystemStorage",
                  location=str(tmp_path / "private"), base_url="/private/")
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E002"]
    assert "/private/videos/check/original.mp4" in errors[0].msg
    assert "PrivateFileSystemStorage" in errors[0].hint


def test_private_storage_beside_the_public_roots_passes(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    _with_private(settings, "private_video.storage.PrivateFileSystemStorage", location=str(tmp_path / "media-private"))
    assert checks.check_private_storage(None) == []


S3_OPTIONS = dict(bucket_name="b", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                  access_key="k", secret_key="s")


def test_private_s3_storage_passes(settings):
    _with_private(settings, "private_video.storage.PrivateS3Storage", **S3_OPTIONS)
    assert checks.check_private_storage(None) == []


@pytest.mark.parametrize("options,reason", [
    ({"custom_domain": "cdn.example.com"}, "custom domain"),
    ({"querystring_auth": False}, "without signatures"),
    ({"default_acl": "public-read"}, "'public-read'"),
])
def test_public_s3_storage_is_e002(settings, options, reason):
    _with_private(settings, "private_video.storage.PrivateS3Storage", **S3_OPTIONS, **options)
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E002"] and reason in errors[0].msg


def test_plain_s3_storage_hands_out_urls_so_is_e002(settings):
    _with_private(settings, "storages.backends.s3.S3Storage", **S3_OPTIONS)
    errors = checks.check_private_storage(None)
    assert ids(errors) == ["private_video.E002"] and "hands out URLs" in errors[0].msg


# --- E003: ffprobe missing --------------------------------------------------------------


def test_no_ffprobe_on_path_is_e003(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    errors = checks.check_ffprobe(None)
    assert ids(errors) == ["private_video.E003"]
    assert "ffprobe" in errors[0].msg and "apt-get install ffmpeg" in errors[0].hint


def test_ffprobe_on_path_passes():
    assert checks.check_ffprobe(None) == []


# --- all together ---------------------------------------------------------------------


def test_the_test_settings_raise_no_library_check():
    assert [e.id for e in run_checks() if e.id.startswith("private_video.")] == []


def test_no_check_raises_whatever_the_settings(settings, monkeypatch, tmp_path):
    """Every library problem at once still makes messages, one per check."""
    settings.STORAGES = {k: v for k, v in settings.STORAGES.items() if k != "private"}
    settings.PRIVATE_VIDEO_MODEL = "not a model"
    monkeypatch.setenv("PATH", str(tmp_path))
    found = sorted(e.id for e in run_checks() if e.id.startswith("private_video."))
    assert found == ["private_video.E001", "private_video.E003", "private_video.E004"]


def test_storage_classes_refuse_url(tmp_path):
    """E002 leans on this: the library's own storages have no url()."""
    with pytest.raises(NotImplementedError):
        PrivateFileSystemStorage(location=str(tmp_path)).url("x")
    with pytest.raises(NotImplementedError):
        PrivateS3Storage(**S3_OPTIONS).url("x")
    assert FileSystemStorage(location=str(tmp_path), base_url="/m/").url("x") == "/m/x"
