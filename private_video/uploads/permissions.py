"""Who may start, see and finish an upload: the library's collection
permissions (private_video.permissions), checked per object."""

from django.db.models import Q
from django.utils.translation import gettext as _
from wagtail.models import Collection
from wagtail.permissions import policy_registry


def _policy():
    from .. import get_video_model

    return policy_registry.get_by_type(get_video_model())


def collections_user_may_add_to(user):
    if not user.is_active:
        return Collection.objects.none()
    return _policy().collections_user_has_permission_for(user, "add")


def may_add_to(user, collection):
    """Whether ``user`` may add videos to ``collection`` (checked when an
    upload starts and again when it completes)."""
    return collection is not None and collections_user_may_add_to(user).filter(pk=collection.pk).exists()


def upload_user_may_still_add(upload):
    """``may_add_to`` for an upload's own user and collection, both read
    again: Wagtail's permission policy keeps what it found on the user object
    it was given, so a second check on the same object would answer from
    before a change."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=upload.user_id).first()
    collection = Collection.objects.filter(pk=upload.collection_id).first()
    return user is not None and may_add_to(user, collection)


def lost_right_message(upload):
    """Why an upload takes no more bytes, or makes no Video: its user may no
    longer add to its collection (a chunk, a part URL, completion)."""
    return _("You may no longer add videos to the collection “%(name)s”.") % {"name": upload.collection.name}


def default_collection(user):
    """The collection an upload goes to when the client names none: the
    topmost one the user may add to (as the upload form picks), or None."""
    return collections_user_may_add_to(user).order_by("path").first()


def uploads_visible_to(user):
    """The uploads ``user`` may see (and cancel): their own, and those in
    collections where they may change any video (superusers: all)."""
    from .models import Upload

    if not user.is_active:
        return Upload.objects.none()
    if user.is_superuser:
        return Upload.objects.all()
    # Only an explicit "change" grant: the ownership policy's own lookup counts
    # "add" as "change" (adders may edit their own videos), which would show
    # every adder the others' uploads.
    from wagtail.permission_policies.collections import CollectionPermissionLookupMixin

    changeable = CollectionPermissionLookupMixin.collections_user_has_any_permission_for(_policy(), user, ["change"])
    return Upload.objects.filter(Q(user=user) | Q(collection__in=changeable))
