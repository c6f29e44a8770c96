"""Settings for the test suite: the production settings, pointed at a
throwaway data folder, with a SQLite test database in a file so that the
gunicorn and nginx started by integration tests see what tests create."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Always a fresh folder, never the developer's var/ (make exports CMS_DATA_DIR
# for make run). Set in the environment so the stacks tests start share it.
_test_data = Path(tempfile.mkdtemp(prefix="pv-test-"))
os.environ["CMS_DATA_DIR"] = str(_test_data)
atexit.register(shutil.rmtree, _test_data, ignore_errors=True)
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_test_data / 'db.sqlite3'}")

from .base import *  # noqa: E402,F403
from .base import DATABASES, STORAGES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory: gunicorn in integration tests opens the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(_test_data / "test-db.sqlite3")}
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

# transcoding
# Uploads in the unit tests don't start transcodes; transcoding tests opt
# in with TRANSCODING_AUTO_ENQUEUE or call the pipeline directly, and run
# jobs in-process.
TASKS["transcoding"] = {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
TRANSCODING_AUTO_ENQUEUE = False
