import os
import threading

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save

from .conf import setting

# File names the publisher is retiring in this thread (see transcoding.publish).
retiring = threading.local()


def remember_previous_file(sender, instance, raw=False, **kwargs):
    instance._transcoding_previous_file = None
    if instance.pk and not raw:
        instance._transcoding_previous_file = (
            sender.objects.filter(pk=instance.pk).values_list("file", flat=True).first()
        )


def transcode_new_original(sender, instance, created, raw=False, **kwargs):
    if raw or not instance.file.name:
        return
    previous = getattr(instance, "_transcoding_previous_file", None)
    if not created and previous == instance.file.name:
        return
    if not created:
        # The renditions show the old original: they go with it.
        instance.renditions.all().delete()
    if setting("AUTO_ENQUEUE"):
        from .tasks import enqueue_transcode

        enqueue_transcode(instance)


def delete_rendition_file_on_commit(sender, instance, **kwargs):
    # After commit only: a rolled-back delete must not lose the file. A file
    # the publisher retires (replaced by a newer set) stays for the grace
    # period; its RetiredFile row deletes it later.
    name = instance.file.name
    if name and name not in getattr(retiring, "names", ()):
        storage = instance.file.storage
        transaction.on_commit(lambda: _delete_with_empty_folder(storage, name))


def delete_retired_file_on_commit(sender, instance, **kwargs):
    from private_video.storage import private_storage

    name, storage = instance.name, private_storage()
    transaction.on_commit(lambda: _delete_with_empty_folder(storage, name))


def _delete_with_empty_folder(storage, name):
    storage.delete(name)
    # Each publication has its own folder; on local disks, drop it with its
    # last file (object stores have no folders to leave behind).
    try:
        folder = os.path.dirname(storage.path(name))
    except NotImplementedError:
        return
    try:
        os.rmdir(folder)
    except OSError:
        pass  # not empty yet, or already gone


def register_signal_handlers():
    from private_video import get_video_model, video_model_problem

    if video_model_problem():
        return  # no video model to listen to: the check private_video.E004 says why
    Video = get_video_model()

    from .models import Rendition, RetiredFile

    pre_save.connect(remember_previous_file, sender=Video, dispatch_uid="transcoding_previous_file")
    post_save.connect(transcode_new_original, sender=Video, dispatch_uid="transcoding_enqueue")
    post_delete.connect(
        delete_rendition_file_on_commit, sender=Rendition, dispatch_uid="transcoding_rendition_file"
    )
    post_delete.connect(
        delete_retired_file_on_commit, sender=RetiredFile, dispatch_uid="transcoding_retired_file"
    )
