"""Test media made once per run and handed out as copies.

``make_test_video`` (ffmpeg lavfi) and a real transcode (ffmpeg, a few
seconds each) are the slow part of many tests that only need "a small
transcoded video" to exist. Both are done for real the first time a recipe
is asked for; every later test gets its own copy:

- ``test_video(path, **recipe)``: the clip ``make_test_video(path, **recipe)``
  writes, copied from the run's cache (same bytes, the test's own file).
- ``shared_transcode(recipe, make, ...)``: ``make()`` transcodes for real
  once; later calls get a new Video row with a fresh key whose original,
  renditions and jobs are copies of the first one's (files copied into the
  new key's folder, every stored name moved there). Nothing is shared at
  run time: each test may change, delete or serve its copy as if it had
  transcoded it, and per-process caches keyed by video id and key never
  see an old answer. Only for the local-disk private storage; a test whose
  subject is transcoding itself must transcode.
"""

import atexit
import copy
import json
import shutil
import tempfile
import uuid
from pathlib import Path

from transcoding.testmedia import make_test_video

_root = None
_clips = {}
_transcodes = {}


def _cache_dir():
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="pv-test-media-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def test_video(path, **recipe):
    """``make_test_video(path, **recipe)``, generated once per run per recipe (and file type)."""
    path = Path(path)
    key = (path.suffix.lower(), tuple(sorted((name, repr(value)) for name, value in recipe.items())))
    cached = _clips.get(key)
    if cached is None or not cached.exists():
        cached = _cache_dir() / "clips" / f"{len(_clips)}{path.suffix}"
        make_test_video(cached, **recipe)
        _clips[key] = cached
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, path)
    return path


test_video.__test__ = False  # a helper, not a test


class _Snapshot:
    def __init__(self, video, renditions, jobs, folder, files):
        self.video, self.renditions, self.jobs, self.folder, self.files = video, renditions, jobs, folder, files


def _moved(value, old, new):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, (dict, list)):
        return json.loads(json.dumps(value).replace(old, new))
    return value


def _copy_row(row, old, new, **fields):
    from django.db.models import CharField, FileField, JSONField, TextField

    row = copy.deepcopy(row)
    row.pk = None
    row._state.adding = True
    for field in row._meta.concrete_fields:
        if isinstance(field, (CharField, TextField, FileField, JSONField)):
            value = getattr(row, field.attname)
            name = getattr(value, "name", value) if isinstance(field, FileField) else value
            setattr(row, field.attname, _moved(name, old, new))
    for name, value in fields.items():
        setattr(row, name, value)
    # raw: as loaddata does; the original's post_save would enqueue a new transcode.
    row.save_base(raw=True)
    return row


def shared_transcode(recipe, make, **fields):
    """A ready transcoded Video: ``make()`` (which transcodes for real) the
    first time ``recipe`` (a hashable description of the clip and the
    settings it was transcoded with) is asked for, then copies of it.
    ``fields`` (title, original_filename...) are set on the copy."""
    from django.core.files.storage import FileSystemStorage

    from private_video import get_video_model
    from private_video.layout import video_folder
    from private_video.storage import private_storage
    from private_video.tracks import Caption, Chapter
    from transcoding.models import Rendition, TranscodeJob

    from private_video.storage import configured_private_storage

    storage = private_storage()
    assert isinstance(configured_private_storage(), FileSystemStorage), (
        "shared_transcode copies files on the local private storage only")
    snapshot = _transcodes.get(recipe)
    if snapshot is None:
        video = make()
        Video = get_video_model()
        video = Video.objects.get(pk=video.pk)
        assert not Caption.objects.filter(video=video).exists() and not Chapter.objects.filter(video=video).exists()
        folder = video_folder(video.key)
        files = _cache_dir() / "transcodes" / str(len(_transcodes))
        shutil.copytree(storage.path(folder), files)
        snapshot = _Snapshot(
            copy.deepcopy(video),
            [copy.deepcopy(r) for r in Rendition.objects.filter(video=video).order_by("pk")],
            [copy.deepcopy(j) for j in TranscodeJob.objects.filter(video=video).order_by("pk")],
            folder, files,
        )
        assert snapshot.renditions and all(j.status == "ready" for j in snapshot.jobs)
        _transcodes[recipe] = snapshot
        if not fields:
            return video
        for name, value in fields.items():
            setattr(video, name, value)
        video.save(update_fields=list(fields))
        return video

    key = uuid.uuid4()
    old, new = snapshot.folder, video_folder(key)
    shutil.copytree(snapshot.files, storage.path(new))
    video = _copy_row(snapshot.video, old, new, key=key, **fields)
    for rendition in snapshot.renditions:
        _copy_row(rendition, old, new, video_id=video.pk)
    for job in snapshot.jobs:
        _copy_row(job, old, new, video_id=video.pk)
    return get_video_model().objects.get(pk=video.pk)


def transcoded_video(path, *, title, clip, settings):
    """``make_test_video(path, **clip)`` uploaded as a Video titled ``title``
    and transcoded with ``override_settings(**settings)`` (the job runs at
    once, or at the test's commit inside a test transaction): for real once
    per run per recipe, then ``shared_transcode`` copies."""
    from django.test import TestCase, override_settings

    from transcoding.tasks import enqueue_transcode

    from .helpers import make_video

    path = Path(path)

    def make():
        video = make_video(test_video(path, **clip), title=title)
        with override_settings(**settings), TestCase.captureOnCommitCallbacks(execute=True):
            job = enqueue_transcode(video)
        job.refresh_from_db()
        assert job.status == "ready", (job.error, job.stderr_tail)
        return video

    recipe = (
        path.suffix.lower(),
        tuple(sorted((name, repr(value)) for name, value in clip.items())),
        tuple(sorted((name, repr(value)) for name, value in settings.items())),
    )
    return shared_transcode(recipe, make, title=title, original_filename=path.name)
