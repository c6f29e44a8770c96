"""media_access's system checks: each misconfiguration is a message with its
id, never a traceback (at import, at URL loading or in `manage.py check`)."""

import importlib
import os
import subprocess

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings
from django.urls import clear_url_caches

from media_access import decisions

from .stack import REPO, VENV_BIN

# For test_w001: a site whose urls.py forgot media_access.
urlpatterns = []

GOOD_SECRET = "a" * 20 + "B" * 12 + "_-9"


def ids(**kwargs):
    return sorted({message.id for message in run_checks(**kwargs) if message.id.startswith("private_video_access.")})


def test_the_demo_settings_pass_every_check(db):
    assert ids(databases=["default"]) == []


@pytest.mark.parametrize("secret", ["short", "x" * 31, "a" * 32 + " ", "a" * 32 + '";', "é" * 40, 42])
def test_e001_token_secret(secret):
    with override_settings(MEDIA_ACCESS_TOKEN_SECRET=secret):
        assert ids() == ["private_video_access.E001"]


@pytest.mark.parametrize("secret", ["", None, GOOD_SECRET])
def test_e001_accepts_empty_or_a_long_plain_secret(secret):
    with override_settings(MEDIA_ACCESS_TOKEN_SECRET=secret):
        assert ids() == []


@pytest.mark.parametrize("prefix", ["stream", "/stream", "stream/", "/a/b/", "/a b/", "/", None])
def test_e002_token_url_prefix(prefix):
    with override_settings(MEDIA_ACCESS_TOKEN_URL_PREFIX=prefix):
        assert ids() == ["private_video_access.E002"]


def test_urls_import_cleanly_with_a_bad_token_prefix():
    import media_access.urls

    try:
        with override_settings(MEDIA_ACCESS_TOKEN_URL_PREFIX="no slashes"):
            module = importlib.reload(media_access.urls)
            names = [pattern.name for pattern in module.urlpatterns]
            assert "watch" in names and "signed_file" not in names
        module = importlib.reload(media_access.urls)
        assert "signed_file" in [pattern.name for pattern in module.urlpatterns]
    finally:
        importlib.reload(media_access.urls)
        clear_url_caches()


@pytest.mark.parametrize(
    "name, value",
    [("ACCEL_PREFIX", "/_private"), ("ACCEL_PREFIX", "_private/"), ("ACCEL_PREFIX", "/a;b/"),
     ("ACCEL_PREFIX", "/a{b}/"), ("S3_ACCEL_PREFIX", "/_s3"), ("S3_ACCEL_PREFIX", "/a/b/")],
)
def test_e003_accel_prefixes(name, value):
    with override_settings(**{f"MEDIA_ACCESS_{name}": value}):
        messages = [m for m in run_checks() if m.id == "private_video_access.E003"]
    assert len(messages) == 1 and f"MEDIA_ACCESS_{name}" in messages[0].msg


@pytest.mark.parametrize(
    "overrides",
    [{"MEDIA_ACCESS_SERVE_MODE": "nginx"}, {"MEDIA_ACCESS_SERVE_MODE": ["xaccel"]},
     {"MEDIA_ACCESS_RESPONSE_BUILDER": "media_access.responses.NoSuchBuilder"},
     {"MEDIA_ACCESS_RESPONSE_BUILDER": "nodots"}, {"MEDIA_ACCESS_RESPONSE_BUILDER": 5},
     {"MEDIA_ACCESS_RESPONSE_BUILDER": "media_access.responses.ServedFile"}],
)
def test_e005_serve_mode_and_response_builder(overrides):
    with override_settings(**overrides):
        assert ids() == ["private_video_access.E005"]


@pytest.mark.parametrize(
    "overrides",
    [{"MEDIA_ACCESS_SERVE_MODE": "django"},
     {"MEDIA_ACCESS_SERVE_MODE": "nginx", "MEDIA_ACCESS_RESPONSE_BUILDER": "media_access.responses.XAccelResponseBuilder"}],
)
def test_e005_accepts_a_mode_or_a_builder(overrides):
    with override_settings(**overrides):
        assert ids() == []


def test_e004_names_a_missing_decision_trigger(db):
    assert connection.vendor == "sqlite", "this test drops a SQLite trigger"
    assert ids(databases=["default"]) == []
    victim = decisions.trigger_names(connection)[0]
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TRIGGER "{victim}"')
        messages = [m for m in run_checks(databases=["default"]) if m.id == "private_video_access.E004"]
        assert len(messages) == 1 and victim in messages[0].msg
        assert "migrate" in messages[0].hint
        # Only with the database tag: a plain `check` does not touch the database.
        assert "private_video_access.E004" not in ids()
    finally:
        decisions.install_triggers()
    assert ids(databases=["default"]) == []


def test_w001_media_access_urls_not_included():
    assert ids() == []
    with override_settings(ROOT_URLCONF=__name__):
        clear_url_caches()
        try:
            assert ids() == ["private_video_access.W001"]
        finally:
            clear_url_caches()


def test_manage_py_check_prints_every_message_and_no_traceback(tmp_path):
    (tmp_path / "bad_access_settings.py").write_text(
        "from cms.settings.test import *  # noqa\n"
        "MEDIA_ACCESS_TOKEN_SECRET = 'too-short'\n"
        "MEDIA_ACCESS_TOKEN_URL_PREFIX = 'stream'\n"
        "MEDIA_ACCESS_ACCEL_PREFIX = '/a b/'\n"
    )
    result = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check", "--settings", "bad_access_settings"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}:{REPO}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    for check_id in ("E001", "E002", "E003"):
        assert f"(private_video_access.{check_id})" in output, output
    assert "SystemCheckError" in output  # Django's own summary, not a crash
