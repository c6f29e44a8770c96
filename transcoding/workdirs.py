"""Each running job's scratch folder on the worker's disk (outputs before
they are published; on S3 also the local copy of the original), and the
removal of folders a killed worker left behind.

A folder is ``transcode-<job id>-<random>`` under ``TRANSCODING_TEMP_DIR``
(the system's temporary folder by default). The process working in it holds
an exclusive ``flock`` on its ``.lock`` file; the kernel drops the lock when
the process dies, however it dies, so a folder whose lock can be taken
belongs to nobody. Folders are made under a dotted staging name and renamed
once locked, so a cleaner never sees a live folder without its lock.
"""

import fcntl
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .conf import temp_dir

logger = logging.getLogger(__name__)

PREFIX = "transcode-"
LOCK_NAME = ".lock"
# A staging folder younger than this may be between creation and its lock.
STAGING_GRACE_SECONDS = 60


def temp_root():
    return temp_dir()


@contextmanager
def job_workdir(job_id):
    """A fresh folder for the job, locked while this process uses it and
    removed afterwards."""
    root = temp_root()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{PREFIX}{job_id}-", dir=root))
    lock = open(staging / LOCK_NAME, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        folder = root / staging.name[1:]
        os.rename(staging, folder)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        lock.close()


def remove_abandoned_workdirs():
    """Remove the job folders under the temp root whose process is gone.
    Returns the removed paths."""
    root = temp_root()
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    for path in sorted(root.iterdir()):
        name = path.name
        staging = name.startswith("." + PREFIX)
        if not (staging or name.startswith(PREFIX)) or path.is_symlink() or not path.is_dir():
            continue
        try:
            if staging and now - path.stat().st_mtime < STAGING_GRACE_SECONDS:
                continue
            handle = open(path / LOCK_NAME, "a")
        except OSError:
            continue  # removed meanwhile, or not ours to open
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live process works in it
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        logger.warning("removed job folders left by stopped workers: %s", [str(p) for p in removed])
    return removed
