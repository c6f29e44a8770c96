from django.db import transaction
from django.db.models.signals import post_delete


def delete_original_on_commit(sender, instance, **kwargs):
    # After commit only: a rolled-back delete must not lose the file.
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))


def register_signal_handlers():
    from . import get_video_model

    post_delete.connect(
        delete_original_on_commit, sender=get_video_model(), dispatch_uid="private_video_delete_file"
    )
