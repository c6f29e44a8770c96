from django.db import transaction
from django.db.models.signals import post_delete


def delete_original_on_commit(sender, instance, **kwargs):
    # After commit only: a rolled-back delete must not lose the file.
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))


def delete_poster_on_commit(sender, instance, **kwargs):
    # The editor's poster goes with its video.
    name = instance.poster_file.name
    if name:
        storage = instance.poster_file.storage
        transaction.on_commit(lambda: delete_with_empty_folder(storage, name))


def delete_caption_file_on_commit(sender, instance, **kwargs):
    # A caption's file goes with its row (deleted, or cascaded with its video).
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: delete_with_empty_folder(storage, name))


def discard_upload_bytes_on_commit(sender, instance, **kwargs):
    """An upload row deleted any other way than by expiry or cancel (its
    collection deleted, by hand): its staged file or S3 multipart upload goes
    too, once the delete has committed, instead of staying on disk or in the
    bucket with nothing left to find it by. robust: an unreachable S3 logs,
    and does not fail the delete that already happened."""
    if getattr(instance, "bytes_discarded", False):
        return
    import copy

    from .uploads.completion import discard_bytes

    # A copy: Django sets the deleted instance's pk to None after the signal.
    upload = copy.copy(instance)
    transaction.on_commit(lambda: discard_bytes(upload), robust=True)


def delete_with_empty_folder(storage, name):
    """Delete a caption or poster file and, on a local disk, its version folder once empty."""
    import os

    storage.delete(name)
    try:
        os.rmdir(os.path.dirname(storage.path(name)))
    except (NotImplementedError, OSError):
        pass


def register_signal_handlers():
    from . import get_video_model

    post_delete.connect(
        delete_original_on_commit, sender=get_video_model(), dispatch_uid="private_video_delete_file"
    )
    post_delete.connect(
        delete_poster_on_commit, sender=get_video_model(), dispatch_uid="private_video_delete_poster"
    )
    from .tracks import Caption

    post_delete.connect(delete_caption_file_on_commit, sender=Caption, dispatch_uid="private_video_delete_caption")
    from .uploads.models import Upload

    post_delete.connect(
        discard_upload_bytes_on_commit, sender=Upload, dispatch_uid="private_video_discard_upload_bytes"
    )
