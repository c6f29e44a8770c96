"""The private staging folder tus uploads are received in.

One file per upload, named from the upload's UUID alone (never from anything
the client sent): ``<staging dir>/<uuid hex>.part``. The folder is created
0700 and files 0600, so other local users can neither list nor read what is
being uploaded."""

import os
import tempfile
import uuid
from pathlib import Path

from django.core.files.storage import FileSystemStorage

from ..conf import setting
from ..storage import configured_private_storage

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def staging_dir():
    """The staging folder (created on first use): ``PRIVATE_VIDEO_UPLOAD_STAGING_DIR``,
    else ``upload-staging`` beside a local private storage's folder (the same
    file system, so a finished upload is renamed into storage, not copied),
    else a folder in the system temp directory."""
    configured = setting("UPLOAD_STAGING_DIR")
    if configured:
        folder = Path(configured)
    else:
        try:
            storage = configured_private_storage()
        except Exception:  # noqa: BLE001 - no private storage: the check private_video.E001 says so
            storage = None
        if isinstance(storage, FileSystemStorage):
            folder = Path(storage.location).resolve().parent / "upload-staging"
        else:
            folder = Path(tempfile.gettempdir()) / "private-video-upload-staging"
    if not folder.is_dir():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    # Private whatever made it (a folder made by hand, a lax umask).
    if folder.stat().st_mode & 0o777 != FOLDER_MODE:
        os.chmod(folder, FOLDER_MODE)
    return folder


def path_for(upload_id):
    """The staged file of an upload, from its UUID (a str is parsed as one)."""
    if not isinstance(upload_id, uuid.UUID):
        upload_id = uuid.UUID(str(upload_id))
    return staging_dir() / f"{upload_id.hex}.part"


def create(upload_id):
    """An empty staged file for a new upload (it must not exist yet)."""
    fd = os.open(path_for(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)


def size(upload_id):
    """Bytes on disk for the upload, or None when its file is gone."""
    try:
        return os.stat(path_for(upload_id)).st_size
    except FileNotFoundError:
        return None


def discard(upload_id):
    """Delete the staged bytes (nothing if already gone)."""
    try:
        os.unlink(path_for(upload_id))
    except FileNotFoundError:
        pass


class lock:
    """An exclusive lock on an upload's staged file, held while one request
    writes it (``fcntl.flock``, released when the file is closed, also when
    the worker dies). ``with lock(upload_id) as fd``: ``fd`` is the file
    opened for writing, or None when another holder has it (``blocking=False``);
    FileNotFoundError when the file is gone."""

    def __init__(self, upload_id, blocking=False):
        self.path = path_for(upload_id)
        self.blocking = blocking
        self.fd = None

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_WRONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if self.blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
        return self.fd

    def __exit__(self, *exc_info):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None
        return False
